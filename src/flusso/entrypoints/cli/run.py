"""`flusso run`: compile (or load the lock), backfill, then follow live changes."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

import rich_click as click

from flusso import __version__
from flusso.entrypoints.cli.console import user_errors
from flusso.entrypoints.cli.files import LocalFiles
from flusso.entrypoints.logs import configure_logging
from flusso.entrypoints.settings import RunSettings, parse_socket_address

if TYPE_CHECKING:
    from flusso.entrypoints.daemon import Daemon


def _socket_address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parse_socket_address(value)
    except ValueError as exc:
        raise click.BadParameter(
            f"{exc}; write an IP literal with a port, e.g. 127.0.0.1:9464 or [::1]:9465"
        ) from None
    return value.strip()


@click.command("run")
@click.option("-c", "--config", envvar="FLUSSO_CONFIG", show_envvar=True, default=None,
              help="Config to compile before running; the lock is rewritten. "
                   "Without it, ./flusso.toml is compiled if present, else the lock is loaded.")
@click.option("--lock", envvar="FLUSSO_LOCK", show_envvar=True, default="flusso.lock",
              show_default=True, help="Compiled lock to write, or to load.")
@click.option("--locked", envvar="FLUSSO_LOCKED", show_envvar=True, is_flag=True,
              help="Run the lock as it is: never compile, never write it.")
@click.option("--slot", envvar="FLUSSO_SLOT", show_envvar=True, default="flusso",
              show_default=True, help="Logical replication slot name.")
@click.option("--publication", envvar="FLUSSO_PUBLICATION", show_envvar=True,
              default="flusso", show_default=True, help="Publication name.")
@click.option("--manage-publication", envvar="FLUSSO_MANAGE_PUBLICATION", show_envvar=True,
              type=click.BOOL, default=None,
              help="Create or extend the publication when the role may "
                   "(default: [source] manage_publication, else true).")
@click.option("--skip-backfill", envvar="FLUSSO_SKIP_BACKFILL", show_envvar=True, is_flag=True,
              help="Do not seed indexes from existing rows; follow live changes only.")
@click.option("--pretty", envvar="FLUSSO_PRETTY", show_envvar=True, is_flag=True,
              help="Pretty-print envelopes of the fallback stdout sink.")
@click.option("--queue-capacity", envvar="FLUSSO_QUEUE_CAPACITY", show_envvar=True,
              type=click.IntRange(min=0), default=1024, show_default=True,
              help="Changes buffered between capture and the worker (0 means 1).")
@click.option("--public-address", envvar="FLUSSO_PUBLIC_ADDRESS", show_envvar=True,
              callback=_socket_address, default=None,
              help="Public HTTP surface (health, status, metrics) "
                   "[default: [server] public_address, else 127.0.0.1:9464].")
@click.option("--private-address", envvar="FLUSSO_PRIVATE_ADDRESS", show_envvar=True,
              callback=_socket_address, default=None,
              help="Private control surface (indexes, reindex) "
                   "[default: [server] private_address, else 127.0.0.1:9465].")
@click.option("--admin-user", envvar="FLUSSO_ADMIN_USER", show_envvar=True, default="admin",
              show_default=True, help="User of the private surface (HTTP Basic).")
@click.option("--admin-password", envvar="FLUSSO_ADMIN_PASSWORD", show_envvar=True,
              default="flusso", show_default=True,
              help="Password of the private surface; change it before exposing it (a "
                   "non-loopback --private-address with the default or an empty password "
                   "is refused).")
@click.option("--public-user", envvar="FLUSSO_PUBLIC_USER", show_envvar=True,
              default="flusso", show_default=True,
              help="User of the public surface when --public-password is set.")
@click.option("--public-password", envvar="FLUSSO_PUBLIC_PASSWORD", show_envvar=True,
              default=None,
              help="Require HTTP Basic for /status and /metrics (probes stay open) "
                   "[default: no auth].")
@click.option("--tls-cert-file", envvar="FLUSSO_TLS_CERT_FILE", show_envvar=True,
              default=None,
              help="PEM certificate (chain): serve both surfaces over HTTPS.")
@click.option("--tls-key-file", envvar="FLUSSO_TLS_KEY_FILE", show_envvar=True,
              default=None,
              help="PEM private key of --tls-cert-file (when not in the same file).")
@click.option("--lag-poll-secs", envvar="FLUSSO_LAG_POLL_SECS", show_envvar=True,
              type=click.IntRange(min=1), default=15, show_default=True,
              help="Seconds between replication slot lag samples.")
@click.option("--index-prefix", envvar="FLUSSO_INDEX_PREFIX", show_envvar=True, default=None,
              help="Prefix of every index, alias and meta name (overrides config `prefix`).")
@click.option("--journal", envvar="FLUSSO_JOURNAL", show_envvar=True,
              default="flusso-journal.sqlite3", show_default=True,
              help="SQLite file of the index lifecycle journal.")
@click.pass_context
def run(ctx: click.Context, **options: object) -> None:
    """Backfill every unseeded index, then follow live changes until stopped.

    SIGINT/SIGTERM stop gracefully (the open batch is committed and confirmed);
    a second signal exits at once.
    """
    debug = bool((ctx.find_root().obj or {}).get("debug"))
    configure_logging()
    settings = RunSettings(
        config=options["config"],  # type: ignore[arg-type]
        lock=str(options["lock"]),
        locked=bool(options["locked"]),
        slot=str(options["slot"]),
        publication=str(options["publication"]),
        manage_publication=options["manage_publication"],  # type: ignore[arg-type]
        skip_backfill=bool(options["skip_backfill"]),
        pretty=bool(options["pretty"]),
        queue_capacity=max(1, int(options["queue_capacity"])),  # type: ignore[call-overload]
        public_address=options["public_address"],  # type: ignore[arg-type]
        private_address=options["private_address"],  # type: ignore[arg-type]
        admin_user=str(options["admin_user"]),
        admin_password=str(options["admin_password"]),
        public_user=str(options["public_user"]),
        public_password=options["public_password"],  # type: ignore[arg-type]
        tls_cert_file=options["tls_cert_file"],  # type: ignore[arg-type]
        tls_key_file=options["tls_key_file"],  # type: ignore[arg-type]
        lag_poll_secs=float(options["lag_poll_secs"]),  # type: ignore[arg-type]
        index_prefix=options["index_prefix"],  # type: ignore[arg-type]
        journal=str(options["journal"]),
    )
    # Imported here: the run stack is heavy, and `flusso --help` should stay instant.
    from flusso.app.services.compile import load_deployment
    from flusso.entrypoints.container import Container
    from flusso.entrypoints.daemon import Daemon

    with user_errors(debug):
        plan = load_deployment(
            settings.config, settings.lock, settings.locked, LocalFiles(), __version__
        )
        container = Container(deployment=plan.deployment, settings=settings, env=dict(os.environ))
        asyncio.run(_serve(Daemon(container)))


async def _serve(daemon: Daemon) -> None:
    daemon.install_signal_handlers()
    await daemon.run()
