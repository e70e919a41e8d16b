"""The lifecycle journal: info, append-only events, state per hash alias.

Revision ID: 0001
Revises:
Create Date: 2026-06-03
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    info = op.create_table(
        "journal_info",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "lifecycle_events",
        sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("recorded_at", sa.Text, nullable=False),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("sink", sa.Text, nullable=False),
        sa.Column("logical", sa.Text, nullable=False),
        sa.Column("hash_alias", sa.Text, nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("state_before", sa.Text, nullable=False),
        sa.Column("state_after", sa.Text, nullable=False),
        sa.Column("serving_generation", sa.Integer),
        sa.Column("target_generation", sa.Integer),
        sa.Column("op_id", sa.Text),
        sa.Column("detail", sa.Text, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "lifecycle_events_by_key", "lifecycle_events", ["sink", "hash_alias", "event_id"]
    )
    op.create_table(
        "lifecycle_state",
        sa.Column("sink", sa.Text, primary_key=True),
        sa.Column("hash_alias", sa.Text, primary_key=True),
        sa.Column("logical", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("serving_generation", sa.Integer),
        sa.Column("target_generation", sa.Integer),
        sa.Column("op_id", sa.Text),
        sa.Column("pending_request", sa.Boolean, nullable=False),
        sa.Column("configured", sa.Boolean, nullable=False),
        sa.Column("last_event_id", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
    )
    # The events are the record of what flusso did to a cluster; nothing may rewrite them.
    for verb in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER lifecycle_events_no_{verb.lower()} "
            f"BEFORE {verb} ON lifecycle_events "
            "BEGIN SELECT RAISE(ABORT, 'lifecycle_events is append-only'); END"
        )
    now = datetime.now(UTC)
    created = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    op.bulk_insert(
        info,
        [{"key": "schema_version", "value": "1"}, {"key": "created_at", "value": created}],
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS lifecycle_events_no_update")
    op.execute("DROP TRIGGER IF EXISTS lifecycle_events_no_delete")
    op.drop_table("lifecycle_state")
    op.drop_index("lifecycle_events_by_key", table_name="lifecycle_events")
    op.drop_table("lifecycle_events")
    op.drop_table("journal_info")
