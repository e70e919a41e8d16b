"""The bulk wire format without I/O: action fragments, request chunking, reply classification.

Also the `_aliases` body that moves an alias onto exactly one index.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

# Item statuses that mean "try again later" rather than "this document is wrong": the
# items are re-sent, never reported as rejected.
TRANSIENT_ITEM_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class BulkAction:
    """One buffered bulk action: its NDJSON fragment and who it is for."""

    op: Literal["index", "delete"]
    index: str  # the concrete generation written to
    logical: str
    id: str
    fragment: str

    @property
    def size(self) -> int:
        return len(self.fragment.encode("utf-8"))


_META = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
"""Built once: `json.dumps` with options builds a new encoder on every call (one per action)."""


def _meta_line(op: str, index: str, doc_id: str) -> str:
    return _META.encode({op: {"_index": index, "_id": doc_id}})


def index_action(index: str, logical: str, doc_id: str, source: str) -> BulkAction:
    """An `index` action; `source` is the already rendered document line."""
    return BulkAction(
        "index", index, logical, doc_id, f"{_meta_line('index', index, doc_id)}\n{source}\n"
    )


def delete_action(index: str, logical: str, doc_id: str) -> BulkAction:
    return BulkAction("delete", index, logical, doc_id, f"{_meta_line('delete', index, doc_id)}\n")


def plan_chunks(sizes: Sequence[int], batch_size: int, max_bytes: int) -> list[int]:
    """Action counts per request, in order, bounded by `batch_size` actions and `max_bytes` bytes.

    A new request starts before an action when the current one is non-empty and
    is full or would overflow; an oversized action therefore travels alone.
    """
    chunks: list[int] = []
    count = 0
    used = 0
    for size in sizes:
        if count and (count >= batch_size or used + size > max_bytes):
            chunks.append(count)
            count, used = 0, 0
        count += 1
        used += size
    if count:
        chunks.append(count)
    return chunks


def bulk_params(pipeline: str | None, refresh: bool) -> dict[str, str]:
    """Query parameters in wire order: `pipeline` then `refresh`."""
    params: dict[str, str] = {}
    if pipeline:
        params["pipeline"] = pipeline
    if refresh:
        params["refresh"] = "true"
    return params


@dataclass(frozen=True)
class ItemRejection:
    action: BulkAction | None
    index: str
    id: str
    reason: str


@dataclass(frozen=True)
class BulkOutcome:
    """What a 2xx bulk reply says about the actions sent, by position."""

    rejected: tuple[ItemRejection, ...] = ()
    transient: tuple[int, ...] = ()  # positions to re-send
    transient_reason: str | None = None


def _item_op(item: Any) -> Mapping[str, Any] | None:
    if not isinstance(item, Mapping):
        return None
    for key in ("index", "create", "delete", "update"):
        op = item.get(key)
        if isinstance(op, Mapping):
            return op
    return None


def _status(op: Mapping[str, Any]) -> int:
    status = op.get("status")
    return status if isinstance(status, int) and not isinstance(status, bool) else 0


def _reason(op: Mapping[str, Any], status: int) -> str:
    error = op.get("error")
    if isinstance(error, Mapping) and isinstance(error.get("reason"), str):
        return str(error["reason"])
    return f"rejected with status {status}"


def classify_bulk_reply(reply: Any, actions: Sequence[BulkAction]) -> BulkOutcome:
    """Sort the items of a 2xx bulk reply into permanent rejections and transient ones.

    A delete answered 404 succeeded (the document is already gone, which is what a delete
    wants); 429/502/503/504 are re-sent; any other status ≥ 400 is a rejection of that document.
    """
    if not isinstance(reply, Mapping) or reply.get("errors") is not True:
        return BulkOutcome()
    items = reply.get("items")
    if not isinstance(items, list):
        return BulkOutcome()
    rejected: list[ItemRejection] = []
    transient: list[int] = []
    transient_reason: str | None = None
    for position, item in enumerate(items):
        op = _item_op(item)
        if op is None:
            continue
        status = _status(op)
        if status < 400:
            continue
        action = actions[position] if position < len(actions) else None
        is_delete = (action.op == "delete") if action is not None else "delete" in item
        if is_delete and status == 404:
            continue
        reason = _reason(op, status)
        if status in TRANSIENT_ITEM_STATUSES and action is not None:
            transient.append(position)
            transient_reason = transient_reason or reason
            continue
        if action is not None:
            rejected.append(ItemRejection(action, action.index, action.id, reason))
        else:
            rejected.append(
                ItemRejection(None, str(op.get("_index") or ""), str(op.get("_id") or ""), reason)
            )
    return BulkOutcome(tuple(rejected), tuple(transient), transient_reason)
