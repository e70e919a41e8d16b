"""An embedded, in-memory OpenSearch-compatible server (osmem-server) for tests and the demo.

Listens on a free 127.0.0.1 port only; the process exits when `stop()` is called,
when this interpreter exits (atexit), or when its parent process disappears.
Needs the `osmem-server` package (a development dependency).
"""

from __future__ import annotations

import atexit
import subprocess
from types import TracebackType
from typing import Any


class OpenSearchNotInstalledError(RuntimeError):
    """The `osmem-server` package is not installed."""


class EmbeddedOpenSearch:
    """One osmem-server process; `url` is `http://127.0.0.1:<port>` once started."""

    def __init__(self, *, startup_timeout: float = 30.0) -> None:
        self._startup_timeout = startup_timeout
        self._server: Any = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the embedded OpenSearch is not running; call start() first")
        return str(self._server.url)

    @property
    def process(self) -> subprocess.Popen[str] | None:
        """The server process while running (for liveness checks)."""
        return None if self._server is None else self._server.process

    @property
    def running(self) -> bool:
        return self._server is not None and self._server.process.poll() is None

    def start(self) -> EmbeddedOpenSearch:
        if self._server is not None:
            return self
        try:
            from osmem_server import OsmemServer
        except ImportError as exc:
            raise OpenSearchNotInstalledError(
                "the embedded OpenSearch needs the osmem-server package; "
                "install it with: pip install osmem-server"
            ) from exc
        # Loopback and an OS-chosen port; the server also watches our pid and its stdin.
        self._server = OsmemServer.start(
            addr="127.0.0.1:0", japanese=False, startup_timeout=self._startup_timeout
        )
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        atexit.unregister(self.stop)
        server.close(grace=2.0)

    def __enter__(self) -> EmbeddedOpenSearch:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
