"""The logical replication slot a capture streams from: its name, its owner and its existence.

Runs on the admin connection before any backfill; it never drops a slot (an operator
retires one, since Postgres keeps WAL for it until then).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import psycopg

from flusso.adapters.postgres.connection import translate
from flusso.app.ports import SourceError

logger = logging.getLogger(__name__)

_SLOT_NAME = re.compile(r"^[a-z0-9_]{1,63}$")
_RELEASE_GRACE = 2.0
"""Seconds a consumer that just disconnected may keep holding the slot."""


def check_slot_name(slot: str) -> None:
    """Refuse a name Postgres would reject, before anything is created under it.

    START_REPLICATION takes the slot name unquoted, so only names that need no
    quoting are accepted.
    """
    if not _SLOT_NAME.match(slot):
        raise SourceError(
            f"invalid replication slot name '{slot}'",
            hint="slot names use lowercase letters, digits and underscores (at most 63)",
        )


async def refuse_active_slot(conn: psycopg.AsyncConnection[Any], slot: str) -> None:
    """Fail before any backfill when another process is streaming from the slot.

    A consumer that just disconnected may hold the slot a moment longer, so the
    slot is polled for a short grace period before giving up.
    """
    deadline = time.monotonic() + _RELEASE_GRACE
    while True:
        try:
            row = await (
                await conn.execute(
                    "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s",
                    (slot,),
                )
            ).fetchone()
        except psycopg.Error as exc:
            raise translate(exc, f"cannot inspect replication slot '{slot}'") from exc
        if row is None or row[0] is None:
            return
        if time.monotonic() >= deadline:
            raise SourceError(
                f"replication slot '{slot}' is active for PID {row[0]}: another "
                "process is already streaming from it",
                hint="a slot serves one consumer at a time: stop the other `flusso run`, "
                "or give this deployment its own --slot / FLUSSO_SLOT "
                "(and --publication)",
            )
        await asyncio.sleep(0.2)


async def ensure_slot(conn: psycopg.AsyncConnection[Any], slot: str) -> None:
    """Create the permanent pgoutput slot, or check that the existing one can serve us.

    An existing slot must decode with pgoutput and belong to the connected database,
    or START_REPLICATION would fail later with a less helpful message.
    """
    check_slot_name(slot)
    try:
        row = await (
            await conn.execute(
                "SELECT plugin, database, current_database() FROM pg_replication_slots "
                "WHERE slot_name = %s",
                (slot,),
            )
        ).fetchone()
        if row is None:
            await conn.execute(
                "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,)
            )
            logger.info("created replication slot '%s' (pgoutput)", slot)
            return
    except psycopg.Error as exc:
        raise translate(exc, f"cannot create replication slot '{slot}'") from exc
    plugin, database, current = row
    if plugin != "pgoutput":
        raise SourceError(
            f"replication slot '{slot}' exists but uses plugin "
            f"'{plugin if plugin is not None else 'none (physical slot)'}', "
            "expected 'pgoutput'",
            hint=f"drop it (SELECT pg_drop_replication_slot('{slot}')) "
            "or choose another name with --slot",
        )
    if database != current:
        raise SourceError(
            f"replication slot '{slot}' belongs to database '{database}', "
            f"not '{current}'",
            hint="choose another slot name with --slot, or connect to that database",
        )
