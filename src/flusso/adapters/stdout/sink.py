"""`StdoutSink`: one JSON envelope per document operation on a text stream.

Writes are emitted at once; `flush` only flushes the stream and never rejects.
Seeding operations keep the port defaults: never seeded, so a backfill runs each start.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from flusso import __version__
from flusso.app.ports import FlushReport, SinkContext, SinkSerializeError, SinkWriteError
from flusso.domain.config.model import StdoutSinkConfig
from flusso.domain.documents.change import Delete, DocumentOp, Upsert
from flusso.domain.documents.render import render_json, to_json_value
from flusso.domain.types import IndexMapping

SINK_NAME = "stdout"


def _now() -> datetime:
    return datetime.now(UTC)


def format_timestamp(moment: datetime) -> str:
    """UTC RFC 3339 with exactly three fraction digits and `Z`."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


class StdoutSink:
    """Envelopes on `stream` (normally `sys.stdout`); logs never go there."""

    def __init__(
        self,
        stream: TextIO,
        *,
        pretty: bool = False,
        version: str = __version__,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._stream = stream
        self._pretty = pretty
        self._version = version
        self._clock = clock
        self._seq = 0
        self._lock = threading.Lock()

    async def ensure_index(self, mapping: IndexMapping) -> None:
        return None

    async def write(self, ops: Sequence[DocumentOp]) -> None:
        for op in ops:
            self._emit(op)

    async def flush(self, caught_up: bool) -> FlushReport:
        with self._lock:
            try:
                self._stream.flush()
            except (OSError, ValueError) as exc:
                raise SinkWriteError(f"stdout: {exc}") from exc
        return FlushReport()

    async def is_seeded(self, index: str) -> bool:
        return False

    async def mark_seeded(self, index: str) -> None:
        return None

    async def reindex(self, mapping: IndexMapping) -> None:
        return None

    async def close(self) -> None:
        return None

    def _emit(self, op: DocumentOp) -> None:
        if isinstance(op, Upsert):
            try:
                document = to_json_value(op.document)
                compact = render_json(document)
            except (TypeError, ValueError) as exc:
                raise SinkSerializeError(f"document {op.id.index}/{op.id.render()}: {exc}") from exc
            fields = len(document) if isinstance(document, dict) else None
            body: dict[str, Any] = {
                "document": document,
                "meta": {"bytes": len(compact.encode("utf-8")), "fields": fields},
                "op": "upsert",
            }
        elif isinstance(op, Delete):
            body = {"op": "delete"}
        else:
            raise SinkWriteError(f"cannot write {type(op).__name__}: not a document op")
        with self._lock:
            self._seq += 1
            envelope = {
                **body,
                "id": op.id.render(),
                "index": op.id.index,
                "seq": self._seq,
                "sink": SINK_NAME,
                "ts": format_timestamp(self._clock()),
                "version": self._version,
            }
            line = render_json(envelope, pretty=self._pretty)
            try:
                self._stream.write(line + "\n")
            except (OSError, ValueError) as exc:
                raise SinkWriteError(f"stdout: {exc}") from exc


def open_stdout_sink(name: str, config: StdoutSinkConfig, context: SinkContext) -> StdoutSink:
    """Envelopes on the process's standard output; the name and context change nothing."""
    return StdoutSink(sys.stdout, pretty=config.pretty)
