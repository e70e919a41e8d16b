"""What happens to documents a sink refused: stop the run, or quarantine and go on."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from flusso.app.ports import DocumentsRejectedError, FlushReport, Observer

logger = logging.getLogger(__name__)

Policy = Literal["stop", "skip"]


def settle_rejections(
    report: FlushReport, on_error: Callable[[str], Policy], observer: Observer | None
) -> None:
    """Raise when any refused document's index says `stop`; otherwise quarantine them all.

    Decided before any quarantine event: a skip-policy document in a batch that stops
    must not be counted now and again when the batch is redelivered.
    """
    stops = [r for r in report.rejected if on_error(r.index) == "stop"]
    if stops:
        first = stops[0]
        raise DocumentsRejectedError(len(stops), f"{first.index}/{first.id}: {first.reason}")
    for rejected in report.rejected:
        logger.warning(
            "document rejected by sink; quarantining and continuing",
            extra={"index": rejected.index, "id": rejected.id, "reason": rejected.reason},
        )
        if observer is not None:
            observer.on_document_quarantined(rejected.index, rejected.id, rejected.reason)
