"""What the private HTTP surface needs to accept on-demand reindex requests."""

from __future__ import annotations

from typing import Any, Literal, Protocol

ReindexOutcome = Literal["queued", "in_progress", "needs_backfill", "full"]


class ReindexControl(Protocol):
    """Accepting reindex requests without waiting for the rebuild.

    `request` is called with a normalized name of an enabled index and answers at
    once: `queued`, or refused with `in_progress` (the index is being rebuilt or
    already has a queued request, so a second rebuild would only repeat the
    first), `needs_backfill` (the process runs with `--skip-backfill`, so nothing
    could seed the rebuild) or `full` (the queue is full or closed). `detail`
    returns per logical index, per sink, the lifecycle object of
    `GET /indexes?detail=true`; indexes it knows nothing about are absent.
    """

    def enabled_indexes(self) -> frozenset[str]: ...

    async def request(self, name: str) -> ReindexOutcome: ...

    async def detail(self) -> dict[str, dict[str, dict[str, Any]]]: ...
