"""The seams the pipeline and the use cases depend on, and the errors they may raise.

One small module per concern; every name is importable from `flusso.app.ports`.
Adapters satisfy these by shape (`typing.Protocol`); fakes in `adapters/fakes` are
held to the same contract suites (`tests/contract/`) as the real adapters.
"""

from flusso.app.ports.capture import Ack, Change, ChangeCapture, NoAck, RowSnapshot
from flusso.app.ports.catalog import Catalog, Coverage
from flusso.app.ports.documents import DocumentBuilder
from flusso.app.ports.errors import (
    DocumentsRejectedError,
    JournalConflictError,
    JournalError,
    SinkError,
    SinkSerializeError,
    SinkUnavailableError,
    SinkWriteError,
    SourceError,
    SourceUnavailableError,
)
from flusso.app.ports.files import Files
from flusso.app.ports.journal import Journal, JournalRecord, JournalRow
from flusso.app.ports.observer import BatchStats, Observer
from flusso.app.ports.rebuild import IndexAdmin, IndexFacts, LiveWrites, WriteListener
from flusso.app.ports.reindex_control import ReindexControl, ReindexOutcome
from flusso.app.ports.sink import (
    DocumentSink,
    FlushReport,
    IndexSeeding,
    RejectedDocument,
    Sink,
    SinkContext,
)
from flusso.app.ports.verify import (
    Comparison,
    Repair,
    RepairResult,
    RootRows,
    ServedCopy,
    ServedId,
    ServedIndex,
    Verdict,
    Version,
)

__all__ = [
    "Ack",
    "BatchStats",
    "Catalog",
    "Change",
    "ChangeCapture",
    "Comparison",
    "Coverage",
    "DocumentBuilder",
    "DocumentSink",
    "DocumentsRejectedError",
    "Files",
    "FlushReport",
    "IndexAdmin",
    "IndexFacts",
    "IndexSeeding",
    "Journal",
    "JournalConflictError",
    "JournalError",
    "JournalRecord",
    "JournalRow",
    "LiveWrites",
    "NoAck",
    "Observer",
    "ReindexControl",
    "ReindexOutcome",
    "RejectedDocument",
    "Repair",
    "RepairResult",
    "RootRows",
    "RowSnapshot",
    "ServedCopy",
    "ServedId",
    "ServedIndex",
    "Sink",
    "SinkContext",
    "SinkError",
    "SinkSerializeError",
    "SinkUnavailableError",
    "SinkWriteError",
    "SourceError",
    "SourceUnavailableError",
    "Verdict",
    "Version",
    "WriteListener",
]
