"""The errors a port may raise; each surface (CLI, HTTP) maps them once."""

from __future__ import annotations

from flusso.domain.errors import FlussoError


class SourceError(FlussoError):
    """Postgres: unreachable, missing privilege, slot trouble, a failed query or bad WAL data."""


class SourceUnavailableError(SourceError):
    """The connection dropped or could not be opened; restarting the run may succeed."""


class SinkError(FlussoError):
    """The destination failed as a whole; nothing in the batch may be confirmed."""


class SinkWriteError(SinkError):
    """A write or flush failed (`write failed: …`)."""

    def __init__(self, detail: str, *, hint: str | None = None) -> None:
        super().__init__(f"write failed: {detail}", hint=hint)


class SinkSerializeError(SinkError):
    """A document could not be serialised (`serialization failed: …`)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"serialization failed: {detail}")


class SinkUnavailableError(SinkWriteError):
    """Transient: the destination did not answer; retrying is safe."""


class DocumentsRejectedError(FlussoError):
    """The sink refused items whose index policy is `stop`."""

    def __init__(self, count: int, example: str) -> None:
        super().__init__(
            f"sink rejected {count} document(s) (e.g. {example}); stopping. "
            "set on-error=skip to quarantine rejected documents and continue"
        )
        self.count = count
        self.example = example


class JournalError(FlussoError):
    """The lifecycle journal could not be read or written."""


class JournalConflictError(JournalError):
    """Someone else moved the index first."""
