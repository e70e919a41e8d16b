"""`flusso indexes` and `flusso reindex`: thin clients of a running server's private surface.

They hold no privilege of their own: the same requests curl would send, with Basic auth.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeVar

import rich_click as click
from rich.table import Table

from flusso.domain.errors import FlussoError
from flusso.entrypoints.cli.console import err, out, run_guarded

if TYPE_CHECKING:  # httpx (and what it pulls in) loads only when a client command runs
    import httpx

DEFAULT_SERVER = "127.0.0.1:9465"
F = TypeVar("F", bound=Callable[..., Any])


class AdminRequestError(FlussoError):
    """The private surface could not be reached, or answered with a non-2xx status."""


def base_url(server: str) -> str:
    """`127.0.0.1:9465` → `http://127.0.0.1:9465`; a URL keeps its scheme; trailing `/` dropped."""
    server = server.rstrip("/")
    if server.startswith(("http://", "https://")):
        return server
    return f"http://{server}"


def _server_option(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A usage error (exit 2) for a `--server` no request could be sent to."""
    if "://" in value and not value.startswith(("http://", "https://")):
        raise click.BadParameter(
            f"{value!r} is not an http:// or https:// URL; give host:port "
            f"(e.g. {DEFAULT_SERVER}) or a base URL such as http://host:9465"
        )
    import httpx

    try:
        url = httpx.URL(base_url(value))
    except httpx.InvalidURL as exc:
        raise click.BadParameter(
            f"{value!r} is not a valid address ({exc}); give host:port (e.g. {DEFAULT_SERVER}) "
            "or a base URL such as http://host:9465"
        ) from None
    if not url.host:
        raise click.BadParameter(
            f"{value!r} names no host; give host:port (e.g. {DEFAULT_SERVER})"
        )
    return value


class AdminClient:
    """Requests to the private surface; every failure is an AdminRequestError."""

    def __init__(self, server: str, user: str, password: str, timeout: float) -> None:
        self._base = base_url(server)
        self._timeout = timeout
        import httpx

        self._client = httpx.Client(base_url=self._base, auth=(user, password), timeout=timeout)

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def indexes(self, detail: bool = False) -> str:
        return self._send("GET", "/indexes", {"detail": "true"} if detail else {})

    def reindex(self, name: str) -> str:
        return self._send("POST", "/reindex", {"index": name})

    def _send(self, method: str, path: str, params: dict[str, str]) -> str:
        import httpx

        try:
            response = self._client.request(method, path, params=params)
        except httpx.HTTPError as exc:
            raise AdminRequestError(
                f"requesting {path}", hint=self._transport_hint(exc)
            ) from exc
        body = response.text
        if not response.is_success:
            reason = response.reason_phrase or _phrase(response.status_code)
            raise AdminRequestError(
                f"server returned {response.status_code} {reason}: {body.strip()}",
                hint=_STATUS_HINTS.get(response.status_code),
            )
        return body

    def _transport_hint(self, exc: httpx.HTTPError) -> str:
        import httpx

        if isinstance(exc, httpx.TimeoutException):
            return (
                f"{self._base} did not answer within {self._timeout:g}s; "
                "raise --timeout, or check the address"
            )
        text = str(exc).lower()
        if self._base.startswith("https://") and ("ssl" in text or "tls" in text):
            return (
                f"the TLS handshake with {self._base} failed; the private surface serves "
                "HTTPS only when `flusso run` has --tls-cert-file (else try --server "
                "http://…), and a private CA must be named in SSL_CERT_FILE"
            )
        return (
            f"is `flusso run` running with its private surface at {self._base}? "
            "Point --server / FLUSSO_SERVER at its --private-address"
        )


_STATUS_HINTS = {
    401: "check --admin-user and --admin-password (FLUSSO_ADMIN_USER, FLUSSO_ADMIN_PASSWORD); "
    "they must match the ones `flusso run` was started with",
}


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return ""


def connection_options(command: F) -> F:
    """`--server`, `--admin-user`, `--admin-password`, `--timeout`, shared by the client commands."""
    options = [
        click.option("--timeout", envvar="FLUSSO_TIMEOUT", show_envvar=True,
                     type=click.FloatRange(min=0, min_open=True), default=30.0,
                     show_default=True, help="Seconds to wait for each answer."),
        click.option("--admin-password", envvar="FLUSSO_ADMIN_PASSWORD", show_envvar=True,
                     default="flusso", show_default=True, help="Password (HTTP Basic)."),
        click.option("--admin-user", envvar="FLUSSO_ADMIN_USER", show_envvar=True,
                     default="admin", show_default=True, help="User (HTTP Basic)."),
        click.option("--server", envvar="FLUSSO_SERVER", show_envvar=True,
                     default=DEFAULT_SERVER, show_default=True, callback=_server_option,
                     help="Private control surface: host:port (http:// assumed) or a base URL."),
    ]
    for option in options:
        command = option(command)
    return command


@click.command("indexes")
@click.option("--detail", envvar="FLUSSO_DETAIL", show_envvar=True, is_flag=True,
              help="Show each sink's lifecycle, generations and pending requests.")
@click.option("--format", "output_format", envvar="FLUSSO_FORMAT", show_envvar=True,
              type=click.Choice(["human", "json"], case_sensitive=False), default="human",
              show_default=True, help="A table, or the server's JSON re-indented.")
@connection_options
def indexes(
    detail: bool, output_format: str, server: str, admin_user: str, admin_password: str,
    timeout: float,
) -> None:
    """List the indexes of a running server and their state (pending, backfilling, seeded)."""

    def list_indexes() -> None:
        with AdminClient(server, admin_user, admin_password, timeout) as client:
            body = client.indexes(detail)
        _print_indexes(body, output_format.lower())

    run_guarded(list_indexes)


@click.command("reindex")
@click.argument("name")
@click.option("--wait", envvar="FLUSSO_WAIT", show_envvar=True, is_flag=True,
              help="Follow the rebuild until the index is seeded again.")
@click.option("--poll-interval", type=click.FloatRange(min=0, min_open=True), default=1.0,
              hidden=True)
@connection_options
def reindex(
    name: str, wait: bool, poll_interval: float, server: str, admin_user: str,
    admin_password: str, timeout: float,
) -> None:
    """Rebuild one index of a running server into a fresh generation, then swap to it.

    Reads stay on the current generation until the swap; live sync keeps running meanwhile.
    """

    def request() -> None:
        with AdminClient(server, admin_user, admin_password, timeout) as client:
            before = _entry(_parse(client.indexes(detail=True)), name) if wait else None
            out().out(client.reindex(name).strip(), highlight=False)
            if wait:
                _follow(client, name, before, poll_interval)

    run_guarded(request)


# -- output -----------------------------------------------------------------------------


def _parse(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _print_indexes(body: str, output_format: str) -> None:
    console = out()
    value = _parse(body)
    if value is None:
        console.out(body.strip(), highlight=False)
    elif output_format == "json" or not isinstance(value, dict):
        console.out(json.dumps(value, indent=2, ensure_ascii=False), highlight=False)
    elif not value:
        console.out("no enabled indexes", highlight=False)
    else:
        console.print(_table(value))


def _table(value: dict[str, Any]) -> Table:
    detailed = any(isinstance(entry, dict) for entry in value.values())
    table = Table(box=None, pad_edge=False)
    table.add_column("INDEX", style="bold")
    table.add_column("STATE")
    if not detailed:
        for name, state in value.items():
            table.add_row(name, str(state))
        return table
    for column in ("SINK", "LIFECYCLE", "SERVING", "TARGET", "PENDING", "UPDATED"):
        table.add_column(column)
    for name, entry in value.items():
        state, sinks = _state_and_sinks(entry)
        if not sinks:
            table.add_row(name, state, *["-"] * 6)
        for sink, info in sinks.items():
            table.add_row(
                name, state, sink, str(info.get("lifecycle", "-")),
                _cell(info.get("serving_generation")), _cell(info.get("target_generation")),
                "yes" if info.get("pending_request") else "no", _cell(info.get("updated_at")),
            )
    return table


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def _state_and_sinks(entry: Any) -> tuple[str, dict[str, dict[str, Any]]]:
    if isinstance(entry, dict):
        sinks = entry.get("sinks")
        return str(entry.get("state", "-")), sinks if isinstance(sinks, dict) else {}
    return str(entry), {}


# -- reindex --wait -----------------------------------------------------------------------


def _entry(listing: Any, name: str) -> Any:
    key = name.strip().lower()
    if not isinstance(listing, dict) or key not in listing:
        raise AdminRequestError(f"the server no longer lists index {key}")
    return listing[key]


def _generations(entry: Any) -> dict[str, Any]:
    _, sinks = _state_and_sinks(entry)
    return {sink: info.get("serving_generation") for sink, info in sinks.items()}


def _follow(client: AdminClient, name: str, before: Any, poll_interval: float) -> None:
    """Poll until the index is `seeded` again after leaving it (or its serving generation moved)."""
    key = name.strip().lower()
    generations = _generations(before)
    left_seeded = False
    shown: str | None = None
    progress = err()
    with progress.status(f"reindex of {key}: waiting", spinner="dots") as spinner:
        while True:
            entry = _entry(_parse(client.indexes(detail=True)), key)
            state, _ = _state_and_sinks(entry)
            if state != shown:
                progress.print(f"{key}: {state}", highlight=False, markup=False)
                spinner.update(f"reindex of {key}: {state}")
                shown = state
            left_seeded = left_seeded or state != "seeded"
            moved = bool(generations) and _generations(entry) != generations
            if state == "seeded" and (left_seeded or moved):
                break
            time.sleep(poll_interval)
    out().out(f"reindex of {key} complete", highlight=False)
