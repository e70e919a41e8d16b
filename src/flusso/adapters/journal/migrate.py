"""Bring a journal database to the newest schema.

The migrations live in the top-level `alembic/` directory and ship inside the
package as `flusso.adapters.journal.migrations` (a link that setuptools copies
into the wheel). Alembic is imported only when a migration has to run: a file
already at the newest revision is left alone, and a brand-new file gets the
newest schema from `tables.py` directly and is stamped with the head revision,
which is what `alembic upgrade head` would leave behind (a test holds the two
paths to the same schema). Importing Alembic costs about 0.2 s of start-up.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text

from flusso.adapters.journal import tables

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection, Engine

HEAD_REVISION = "0001"
"""The newest revision under `alembic/versions` (a test keeps it in step)."""


class UnknownJournalSchemaError(Exception):
    """The file carries a revision this flusso's migrations do not know."""


def migrations_dir() -> Path:
    return Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return config


def current_revision(connection: Connection) -> str | None:
    """The stamped revision, or None when the file has never been migrated."""
    has_table = connection.execute(
        text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'")
    ).first()
    if has_table is None:
        return None
    row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
    return None if row is None else str(row[0])


def _is_empty(connection: Connection) -> bool:
    row = connection.execute(
        text("SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
    ).first()
    return row is not None and row[0] == 0


def create_fresh(connection: Connection) -> None:
    """The head schema on an empty database, stamped, as `upgrade head` leaves it."""
    tables.metadata.create_all(connection)
    for statement in tables.APPEND_ONLY_TRIGGERS:
        connection.exec_driver_sql(statement)
    created = tables.stored_timestamp(datetime.now(UTC))
    connection.execute(
        tables.journal_info.insert(),
        [{"key": "schema_version", "value": str(tables.SCHEMA_VERSION)},
         {"key": "created_at", "value": created}],
    )
    connection.exec_driver_sql(
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
        "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
    )
    connection.execute(
        text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": HEAD_REVISION}
    )


def upgrade(engine: Engine) -> None:
    """Bring `engine`'s database to the head revision, in one transaction.

    Raises `UnknownJournalSchemaError` when the file's revision is not one of ours
    (a newer flusso wrote it).
    """
    with engine.begin() as connection:
        revision = current_revision(connection)
        if revision == HEAD_REVISION:
            return
        if revision is None and _is_empty(connection):
            create_fresh(connection)
            return
    alembic_upgrade(engine)


def alembic_upgrade(engine: Engine) -> None:
    """Run every pending migration with Alembic, in one transaction."""
    from alembic import command
    from alembic.util import CommandError

    config = alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except CommandError as exc:
        raise UnknownJournalSchemaError(str(exc)) from exc
