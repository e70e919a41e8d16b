"""How a planned lifecycle step maps onto the `IndexAdmin` primitives.

One executor for every caller: the online rebuild (which also journals and gates around
each step) and a sink that plans its own start. Deciding stays in `domain.reindex`.
"""

from __future__ import annotations

from flusso.app.ports.errors import SinkError
from flusso.app.ports.rebuild import IndexAdmin
from flusso.domain import generations as g
from flusso.domain.types import IndexMapping


async def perform(admin: IndexAdmin, mapping: IndexMapping, step: g.Step) -> SinkError | None:
    """Carry `step` out on `admin`'s sink; `Backfill` and `RebuildTouched` are the caller's.

    Returns the error a best-effort bare-alias move met (the hash alias was then moved on
    its own), else None. Route changes take effect at once: a caller that shares the sink
    with a running pipeline holds its commit gate around them.
    """
    if isinstance(step, g.StageTarget | g.MarkSeeded):
        await admin.write_marker(step.hash_alias, step.generation, isinstance(step, g.MarkSeeded))
    elif isinstance(step, g.CreateGeneration):
        await admin.create_generation(mapping, step.index)
    elif isinstance(step, g.StartDualWrite):
        admin.route_writes(step.logical, tuple(i for i in (step.serving, step.target) if i))
    elif isinstance(step, g.EndDualWrite):
        admin.route_writes(step.logical, (step.target,))
    elif isinstance(step, g.RouteWrites):
        admin.route_writes(step.logical, step.generations)
    elif isinstance(step, g.Refresh):
        await admin.refresh(step.index, step.refresh_interval)
    elif isinstance(step, g.SwapAliases):
        return await _swap(admin, step)
    elif isinstance(step, g.DropGenerations):
        await admin.drop(step.indexes)
    return None


async def _swap(admin: IndexAdmin, step: g.SwapAliases) -> SinkError | None:
    try:
        await admin.swap_aliases(step.actions)
    except SinkError as exc:
        if not step.bare_actions:
            raise
        await admin.swap_aliases(step.hash_actions)
        return exc
    return None
