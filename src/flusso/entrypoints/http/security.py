"""TLS and authentication of flusso's own HTTP surfaces: the server certificate, the Basic
auth gate (constant-time comparison, failed logins counted), and the rule that the private
surface never listens beyond loopback with default or empty credentials.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import ssl
from collections.abc import Callable, Collection
from dataclasses import dataclass

from litestar.types import ASGIApp, Receive, Scope, Send

from flusso.domain.errors import ConfigError, FlussoError
from flusso.entrypoints.settings import DEFAULT_ADMIN_PASSWORD, parse_socket_address

CHALLENGE = b'Basic realm="flusso", charset="UTF-8"'

PROBE_PATHS = frozenset({"/healthz", "/readyz"})
"""Public routes that stay open when the public surface has a password (kubelet probes)."""


class ExposedControlSurfaceError(FlussoError):
    """The private surface would listen beyond loopback with credentials anyone can guess."""


@dataclass(frozen=True)
class ServerTls:
    """The certificate and key both surfaces serve HTTPS with."""

    cert_file: str
    key_file: str


def server_tls(cert_file: str | None, key_file: str | None) -> ServerTls | None:
    """Checked TLS settings (None: plain HTTP); loads the pair once so a bad file fails now."""
    if cert_file is None and key_file is None:
        return None
    if not cert_file:
        raise ConfigError(
            "--tls-key-file is set without --tls-cert-file",
            hint="set FLUSSO_TLS_CERT_FILE to the PEM certificate (chain) the surfaces serve",
        )
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file or None)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"--tls-cert-file {cert_file}"
            + (f" / --tls-key-file {key_file}" if key_file else "")
            + f": cannot load the server certificate: {reason}",
            hint="both must be readable PEM files, the key unencrypted and matching the "
            "certificate (FLUSSO_TLS_CERT_FILE, FLUSSO_TLS_KEY_FILE)",
        ) from None
    return ServerTls(cert_file, key_file or cert_file)


def is_loopback(address: str) -> bool:
    host, _ = parse_socket_address(address)
    return ipaddress.ip_address(host).is_loopback


def check_private_exposure(address: str, user: str, password: str) -> None:
    """Refuse a private surface on a non-loopback address with default or empty credentials."""
    try:
        loopback = is_loopback(address)
    except ValueError:
        return  # binding reports a malformed address with its own message
    if loopback:
        return
    if not user or not password or password == DEFAULT_ADMIN_PASSWORD:
        what = "an empty user name" if not user else (
            "an empty password" if not password else 'the DEFAULT admin password ("flusso")'
        )
        raise ExposedControlSurfaceError(
            f"refusing to serve the private control surface on {address} with {what}: "
            "anyone who reaches that address could list indexes and start rebuilds",
            hint="set --admin-password / FLUSSO_ADMIN_PASSWORD to a strong secret, or bind "
            "--private-address / FLUSSO_PRIVATE_ADDRESS to 127.0.0.1",
        )


def credentials_match(authorization: bytes | None, user: str, password: str) -> bool:
    """True for `Basic <base64 of user:password>` naming exactly these credentials."""
    if authorization is None or not authorization.startswith(b"Basic "):
        return False
    try:
        decoded = base64.b64decode(authorization[len(b"Basic "):].strip(), validate=True)
        given_user, sep, given_password = decoded.decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    if not sep:
        return False
    # `&`, not `and`: both comparisons always run, so timing tells nothing about which failed.
    return hmac.compare_digest(given_user.encode(), user.encode()) & hmac.compare_digest(
        given_password.encode(), password.encode()
    )


async def refuse_unauthorized(scope: Scope, send: Send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})  # type: ignore[typeddict-item]
        return
    body = b"unauthorized\n"
    await send({
        "type": "http.response.start",
        "status": 401,
        "headers": [
            (b"www-authenticate", CHALLENGE),
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ],
    })  # type: ignore[typeddict-item]
    await send({"type": "http.response.body", "body": body})  # type: ignore[typeddict-item]


class BasicAuthGate:
    """ASGI middleware answering 401 to requests without the right Basic credentials.

    It wraps the whole listener, before routing, so an unknown path answers 401 to a
    stranger. Paths in `open_paths` pass without credentials. Each refused request with
    an `Authorization` header, or without one, calls `on_failure` (a metric).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        user: str,
        password: str,
        on_failure: Callable[[], None] = lambda: None,
        open_paths: Collection[str] = (),
    ) -> None:
        self._app = app
        self._user = user
        self._password = password
        self._on_failure = on_failure
        self._open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope.get("path") not in self._open_paths:
            header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
            if not credentials_match(header, self._user, self._password):
                self._on_failure()
                await refuse_unauthorized(scope, send)
                return
        await self._app(scope, receive, send)
