"""Several sinks behind one Sink port, in sink-name order.

Calls go to each sink in turn and the first error aborts; `is_seeded` is an AND;
`reindex` is forwarded to every sink, so every destination is rebuilt from the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from flusso.app.ports import FlushReport, RejectedDocument, Sink
from flusso.domain.documents.change import DocumentOp
from flusso.domain.errors import FlussoError
from flusso.domain.types import IndexMapping


class FanOutSink:
    """The named sinks, ordered by name (`audit` before `primary`)."""

    def __init__(self, sinks: Mapping[str, Sink]) -> None:
        self.names = tuple(sorted(sinks))
        self._sinks = tuple(sinks[name] for name in self.names)

    async def ensure_index(self, mapping: IndexMapping) -> None:
        for sink in self._sinks:
            await sink.ensure_index(mapping)

    async def write(self, ops: Sequence[DocumentOp]) -> None:
        for sink in self._sinks:
            await sink.write(ops)

    async def flush(self, caught_up: bool) -> FlushReport:
        rejected: list[RejectedDocument] = []
        for sink in self._sinks:
            rejected.extend((await sink.flush(caught_up)).rejected)
        return FlushReport(tuple(rejected))

    async def is_seeded(self, index: str) -> bool:
        for sink in self._sinks:
            if not await sink.is_seeded(index):
                return False
        return True

    async def mark_seeded(self, index: str) -> None:
        for sink in self._sinks:
            await sink.mark_seeded(index)

    async def reindex(self, mapping: IndexMapping) -> None:
        for sink in self._sinks:
            await sink.reindex(mapping)

    async def close(self) -> None:
        """Close every sink, even after one failed; the first failure is raised."""
        first: FlussoError | None = None
        for sink in self._sinks:
            try:
                await sink.close()
            except FlussoError as exc:  # the others must still be closed
                first = first or exc
        if first is not None:
            raise first


def combine_sinks(sinks: Mapping[str, Sink], *, fallback: Callable[[], Sink]) -> Sink:
    """No sink: `fallback()` (the stdout sink); one: itself; more: a FanOutSink."""
    if not sinks:
        return fallback()
    if len(sinks) == 1:
        return next(iter(sinks.values()))
    return FanOutSink(sinks)
