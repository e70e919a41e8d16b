"""SQLAlchemy Core tables of the lifecycle journal.

They mirror the migrations in top-level `alembic/` (shipped as
`flusso.adapters.journal.migrations`); a schema change is a new migration, never an edit here alone.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Boolean, Column, Index, Integer, MetaData, Table, Text

SCHEMA_VERSION = 1


def stored_timestamp(moment: datetime) -> str:
    """How the journal stores a moment: UTC RFC 3339 with milliseconds and `Z`."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

metadata = MetaData()

journal_info = Table(
    "journal_info",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

lifecycle_events = Table(
    "lifecycle_events",
    metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=True),
    Column("recorded_at", Text, nullable=False),
    Column("run_id", Text, nullable=False),
    Column("sink", Text, nullable=False),
    Column("logical", Text, nullable=False),
    Column("hash_alias", Text, nullable=False),
    Column("event", Text, nullable=False),
    Column("state_before", Text, nullable=False),
    Column("state_after", Text, nullable=False),
    Column("serving_generation", Integer),
    Column("target_generation", Integer),
    Column("op_id", Text),
    Column("detail", Text, nullable=False),
    sqlite_autoincrement=True,
)

Index("lifecycle_events_by_key", lifecycle_events.c.sink, lifecycle_events.c.hash_alias,
      lifecycle_events.c.event_id)

lifecycle_state = Table(
    "lifecycle_state",
    metadata,
    Column("sink", Text, primary_key=True),
    Column("hash_alias", Text, primary_key=True),
    Column("logical", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("serving_generation", Integer),
    Column("target_generation", Integer),
    Column("op_id", Text),
    Column("pending_request", Boolean, nullable=False),
    Column("configured", Boolean, nullable=False),
    Column("last_event_id", Integer, nullable=False),
    Column("updated_at", Text, nullable=False),
)

# What the migrations add beyond the tables (see `migrate.create_fresh`).
APPEND_ONLY_TRIGGERS = tuple(
    f"CREATE TRIGGER lifecycle_events_no_{verb.lower()} BEFORE {verb} ON lifecycle_events "
    "BEGIN SELECT RAISE(ABORT, 'lifecycle_events is append-only'); END"
    for verb in ("UPDATE", "DELETE")
)
