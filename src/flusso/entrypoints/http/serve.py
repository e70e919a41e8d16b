"""Binding the two HTTP surfaces and serving them with uvicorn in the caller's event loop.

Sockets are bound here, before anything connects to a database or cluster, so a bad
or taken address fails the process at once. uvicorn never touches signal handlers:
the run loop owns them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import uvicorn
from litestar.types import ASGIApp

from flusso.domain.config.model import ServerConfig
from flusso.domain.errors import FlussoError
from flusso.entrypoints.http.security import ServerTls
from flusso.entrypoints.settings import (
    DEFAULT_PRIVATE_ADDRESS,
    DEFAULT_PUBLIC_ADDRESS,
    RunSettings,
    parse_socket_address,
)

logger = logging.getLogger("flusso.run")

_BACKLOG = 128
_GRACEFUL_SECONDS = 10


class HttpBindError(FlussoError):
    """A surface's socket could not be bound (`binding public HTTP surface to …: …`)."""


def choose_address(flag: str | None, env: str | None, configured: str | None, default: str) -> str:
    """Flag, else environment variable, else `[server]` value, else the default."""
    for candidate in (flag, env, configured):
        if candidate is not None:
            return candidate
    return default


def surface_addresses(settings: RunSettings, server: ServerConfig) -> tuple[str, str]:
    """(public, private) addresses; `settings` already holds flag-or-env (click reads the env twin)."""
    public = choose_address(
        settings.public_address, None, server.public_address, DEFAULT_PUBLIC_ADDRESS
    )
    private = choose_address(
        settings.private_address, None, server.private_address, DEFAULT_PRIVATE_ADDRESS
    )
    return public, private


@dataclass
class Listener:
    """A bound, listening socket for one surface; `address` is the one actually bound
    (the real port when `:0` was asked for)."""

    surface: str
    address: str
    sock: socket.socket

    def close(self) -> None:
        self.sock.close()


def bind_surface(surface: str, address: str) -> Listener:
    """Bind and listen on `address`; raises HttpBindError naming the surface and the OS error."""
    try:
        host, port = parse_socket_address(address)
    except ValueError as exc:
        raise HttpBindError(f"binding {surface} HTTP surface to {address}: {exc}") from None
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Lets a restarted process rebind while old connections sit in TIME_WAIT; a port
        # some other process is listening on still fails.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(_BACKLOG)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise HttpBindError(
            f"binding {surface} HTTP surface to {address}: {reason} (os error {exc.errno})"
        ) from None
    sock.setblocking(False)
    bound_host, bound_port = sock.getsockname()[:2]
    bound = f"[{bound_host}]:{bound_port}" if family == socket.AF_INET6 else f"{bound_host}:{bound_port}"
    return Listener(surface, bound, sock)


def bind_surfaces(public_address: str, private_address: str) -> tuple[Listener, Listener]:
    """Bind the public surface, then the private one; on failure nothing stays bound."""
    public = bind_surface("public", public_address)
    try:
        private = bind_surface("private", private_address)
    except HttpBindError:
        public.close()
        raise
    return public, private


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The run loop installs the process's signal handlers once; uvicorn must not.
        yield


@dataclass
class HttpSurfaces:
    """The uvicorn servers of the bound listeners; they outlive pipeline restarts."""

    served: Sequence[tuple[Listener, ASGIApp]]
    tls: ServerTls | None = None
    _servers: list[tuple[_EmbeddedServer, asyncio.Task[None]]] = field(default_factory=list)

    async def start(self) -> None:
        for listener, app in self.served:
            config = uvicorn.Config(
                app,
                lifespan="off",
                access_log=False,
                log_config=None,
                server_header=False,
                ws="none",
                timeout_graceful_shutdown=_GRACEFUL_SECONDS,
                ssl_certfile=self.tls.cert_file if self.tls else None,
                ssl_keyfile=self.tls.key_file if self.tls else None,
            )
            server = _EmbeddedServer(config)
            task = asyncio.create_task(
                server.serve(sockets=[listener.sock]), name=f"http-{listener.surface}"
            )
            task.add_done_callback(_report_crash(listener.surface))
            self._servers.append((server, task))
            while not server.started and not task.done():
                await asyncio.sleep(0.005)
            if task.done():
                task.result()
            logger.info(
                "HTTP surface listening",
                extra={
                    "addr": listener.address,
                    "surface": listener.surface,
                    "scheme": "https" if self.tls else "http",
                },
            )

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish, close the sockets."""
        for server, _ in self._servers:
            server.should_exit = True
        tasks = [task for _, task in self._servers]
        self._servers.clear()
        await asyncio.gather(*tasks, return_exceptions=True)
        for listener, _ in self.served:
            listener.close()


def _report_crash(surface: str) -> Callable[[asyncio.Task[None]], None]:
    def report(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "HTTP server stopped on error",
                extra={"surface": surface, "error": str(task.exception())},
            )

    return report
