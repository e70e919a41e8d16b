"""How a planned lifecycle step maps onto the `IndexAdmin` primitives.

One executor for every caller: the online rebuild (which also journals and gates around
each step) and a sink that plans its own start. Deciding stays in `domain.reindex`.
"""

from __future__ import annotations

from flusso.app.ports.errors import SinkError
from flusso.app.ports.rebuild import IndexAdmin
from flusso.domain.generations import (
    CreateGeneration,
    DropGenerations,
    EndDualWrite,
    MarkSeeded,
    Refresh,
    RouteWrites,
    StageTarget,
    StartDualWrite,
    Step,
    SwapAliases,
)
from flusso.domain.types import IndexMapping


async def perform(admin: IndexAdmin, mapping: IndexMapping, step: Step) -> SinkError | None:
    """Carry `step` out on `admin`'s sink; `Backfill` and `RebuildTouched` are the caller's.

    Returns the error a best-effort bare-alias move met (the hash alias was then moved on
    its own), else None. Route changes take effect at once: a caller that shares the sink
    with a running pipeline holds its commit gate around them.
    """
    if isinstance(step, StageTarget | MarkSeeded):
        await admin.write_marker(step.hash_alias, step.generation, isinstance(step, MarkSeeded))
    elif isinstance(step, CreateGeneration):
        await admin.create_generation(mapping, step.index)
    elif isinstance(step, StartDualWrite):
        admin.route_writes(step.logical, tuple(g for g in (step.serving, step.target) if g))
    elif isinstance(step, EndDualWrite):
        admin.route_writes(step.logical, (step.target,))
    elif isinstance(step, RouteWrites):
        admin.route_writes(step.logical, step.generations)
    elif isinstance(step, Refresh):
        await admin.refresh(step.index, step.refresh_interval)
    elif isinstance(step, SwapAliases):
        return await _swap(admin, step)
    elif isinstance(step, DropGenerations):
        await admin.drop(step.indexes)
    return None


async def _swap(admin: IndexAdmin, step: SwapAliases) -> SinkError | None:
    try:
        await admin.swap_aliases(step.actions)
    except SinkError as exc:
        if not step.bare_actions:
            raise
        await admin.swap_aliases(step.hash_actions)
        return exc
    return None
