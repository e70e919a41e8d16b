"""Run-time settings of `flusso run`, as resolved from flags, `FLUSSO_*` variables and the config."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from flusso.domain.config.model import Deployment
from flusso.domain.naming import validate_prefix

DEFAULT_PUBLIC_ADDRESS = "127.0.0.1:9464"
DEFAULT_PRIVATE_ADDRESS = "127.0.0.1:9465"
DEFAULT_ADMIN_PASSWORD = "flusso"


@dataclass(frozen=True)
class RunSettings:
    config: str | None = None
    lock: str = "flusso.lock"
    locked: bool = False
    slot: str = "flusso"
    publication: str = "flusso"
    manage_publication: bool | None = None
    skip_backfill: bool = False
    pretty: bool = False
    queue_capacity: int = 1024
    public_address: str | None = None
    private_address: str | None = None
    admin_user: str = "admin"
    admin_password: str = DEFAULT_ADMIN_PASSWORD
    tls_cert_file: str | None = None  # HTTPS on both surfaces when set
    tls_key_file: str | None = None
    public_user: str = "flusso"
    public_password: str | None = None  # set: /status and /metrics need HTTP Basic
    lag_poll_secs: float = 15.0
    index_prefix: str | None = None
    journal: str = "flusso-journal.sqlite3"
    max_changes: int = 256
    max_delay: float = 0.05
    serve_http: bool = True


def effective_prefix(deployment: Deployment, settings: RunSettings) -> str:
    """`--index-prefix` / `FLUSSO_INDEX_PREFIX` > config `prefix` > empty; validated."""
    prefix = settings.index_prefix if settings.index_prefix is not None else deployment.prefix
    validate_prefix(prefix)
    return prefix


def parse_socket_address(text: str) -> tuple[str, int]:
    """`"0.0.0.0:9464"` or `"[::1]:9465"` → (host, port); host names are refused."""
    raw = text.strip()
    if raw.startswith("["):
        host, sep, port = raw[1:].partition("]:")
        if not sep:
            raise ValueError(f"{text!r} is not a socket address (expected [IPv6]:port)")
        ipaddress.IPv6Address(host)
    else:
        host, sep, port = raw.rpartition(":")
        if not sep:
            raise ValueError(f"{text!r} is not a socket address (expected IP:port)")
        ipaddress.IPv4Address(host)
    number = int(port)
    if not 0 <= number <= 65535:
        raise ValueError(f"{text!r} is not a socket address (port out of range)")
    return host, number
