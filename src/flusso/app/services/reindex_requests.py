"""On-demand reindex requests: the check a request passes and the queue the run loop drains.

This module only accepts and queues requests; rebuilding an index is the run loop's job.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from flusso.app.ports import Journal, JournalRow, ReindexOutcome
from flusso.domain.lifecycle import State

QUEUE_CAPACITY = 8
INDEX_NAME_MAX = 63
_INDEX_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def normalize_index_name(raw: str) -> str | None:
    """The logical index name a request means (trimmed, lowercased), or None when it is not one."""
    name = raw.strip().lower()
    if len(name) > INDEX_NAME_MAX or _INDEX_NAME.fullmatch(name) is None:
        return None
    return name


class ReindexRequests:
    """In-process `ReindexControl`: a bounded queue plus a per-index in-progress guard.

    A name stays guarded from the moment it is queued until the run loop calls
    `finished(name)` (swap done or rebuild abandoned). `is_busy`, when given, is
    asked too (for instance "not `serving` in every OpenSearch sink").
    """

    def __init__(
        self,
        enabled: Iterable[str],
        *,
        skip_backfill: bool = False,
        capacity: int = QUEUE_CAPACITY,
        journal: Journal | None = None,
        is_busy: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self._enabled = frozenset(enabled)
        self._skip_backfill = skip_backfill
        self._queue: asyncio.Queue[str] = asyncio.Queue(maxsize=max(1, capacity))
        self._journal = journal
        self._is_busy = is_busy
        self._queued: set[str] = set()
        self._active: set[str] = set()
        self._closed = False

    def attach(
        self,
        *,
        journal: Journal | None = None,
        is_busy: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        """Late binding: the journal and the rebuild coordinator exist after the listeners."""
        if journal is not None:
            self._journal = journal
        if is_busy is not None:
            self._is_busy = is_busy

    # -- ReindexControl ---------------------------------------------------------------

    def enabled_indexes(self) -> frozenset[str]:
        return self._enabled

    async def request(self, name: str) -> ReindexOutcome:
        if self._skip_backfill:
            return "needs_backfill"
        if name in self._active or name in self._queued:
            return "in_progress"
        if self._is_busy is not None and await self._is_busy(name):
            return "in_progress"
        if self._closed:
            return "full"
        try:
            self._queue.put_nowait(name)
        except asyncio.QueueFull:
            return "full"
        self._queued.add(name)
        return "queued"

    async def detail(self) -> dict[str, dict[str, dict[str, Any]]]:
        rows = await self._journal.all_current() if self._journal is not None else []
        chosen: dict[tuple[str, str], JournalRow] = {}
        for row in rows:
            key = (row.logical, row.sink)
            if key not in chosen or _prefer(row, chosen[key]):
                chosen[key] = row
        detail: dict[str, dict[str, dict[str, Any]]] = {}
        for (logical, sink), row in sorted(chosen.items()):
            entry = row.to_detail()
            entry["pending_request"] = bool(entry["pending_request"]) or logical in self._queued
            detail.setdefault(logical, {})[sink] = entry
        return detail

    # -- the run loop's side ----------------------------------------------------------

    async def next(self) -> str:
        """Wait for the next queued request; its index counts as in progress until `finished`."""
        name = await self._queue.get()
        self._take(name)
        return name

    def take_pending(self) -> list[str]:
        """Every queued request, without waiting (consecutive requests coalesce)."""
        names: list[str] = []
        while not self._queue.empty():
            name = self._queue.get_nowait()
            self._take(name)
            names.append(name)
        return names

    def finished(self, name: str) -> None:
        """The rebuild of `name` ended; a new request for it may be accepted."""
        self._active.discard(name)

    def close(self) -> None:
        """Refuse every further request (shutdown)."""
        self._closed = True

    def _take(self, name: str) -> None:
        self._queued.discard(name)
        self._active.add(name)


def _prefer(row: JournalRow, other: JournalRow) -> bool:
    """Of two rows for one (logical, sink), a live hash alias wins over a retired one, then the newest."""
    retired, other_retired = row.lifecycle.state is State.RETIRED, other.lifecycle.state is State.RETIRED
    if retired != other_retired:
        return other_retired
    return row.last_event_id > other.last_event_id
