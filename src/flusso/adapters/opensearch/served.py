"""`OpenSearchServedIndex`: what an OpenSearch sink serves, read through each index's hash alias,
and repairs written with optimistic concurrency (`if_seq_no` / `if_primary_term`, `create`).

Reads by id use `_mget` (real time); the id scan is a `_doc`-sorted scroll without
sources. Documents are compared as the sink writes them: rendered with the same codec,
then compared as parsed JSON with the served `_source`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import SerializationError, TransportError

from flusso.adapters.opensearch.bulk import TRANSIENT_ITEM_STATUSES
from flusso.adapters.opensearch.cluster import describe_failure, destination
from flusso.adapters.opensearch.codec import ORJSON_CODEC
from flusso.app.ports import (
    Comparison,
    Repair,
    RepairResult,
    ServedCopy,
    ServedId,
    SinkSerializeError,
    SinkUnavailableError,
    SinkWriteError,
    Version,
)
from flusso.domain.documents.change import Delete, DocumentOp, Upsert
from flusso.domain.documents.render import render_document
from flusso.domain.naming import hash_alias
from flusso.domain.types import IndexMapping

logger = logging.getLogger(__name__)

SCROLL_KEEP_ALIVE = "5m"
"""How long the cluster keeps a scan's view between two pages."""
_REPAIR_ATTEMPTS = 4
_META = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _version(hit: Mapping[str, Any]) -> Version | None:
    seq_no, term = hit.get("_seq_no"), hit.get("_primary_term")
    if isinstance(seq_no, int) and isinstance(term, int):
        return Version(seq_no, term)
    return None


class OpenSearchServedIndex:
    """The ServedIndex port over one OpenSearch sink: `mappings` name each index's hash alias."""

    def __init__(
        self,
        client: AsyncOpenSearch,
        *,
        sink_name: str,
        mappings: Sequence[IndexMapping],
        prefix: str = "",
        pipeline: str | None = None,
        url: str = "",
        owns_client: bool = False,
        backoff_base: float = 0.2,
    ) -> None:
        self.sink_name = sink_name
        self._client = client
        self._aliases = {m.index: hash_alias(prefix, m.index, m.hash) for m in mappings}
        self._pipeline = pipeline
        self._url = url
        self._owns_client = owns_client
        self._backoff_base = backoff_base
        self._warned_pipeline = False

    def alias(self, index: str) -> str:
        """The hash alias readers of the current config see for `index`."""
        alias = self._aliases.get(index)
        if alias is None:
            raise SinkWriteError(f"sink {self.sink_name} has no mapping for index {index!r}")
        return alias

    def _where(self) -> str:
        return destination(self.sink_name, self._url)

    def _absent(self, index: str) -> SinkWriteError:
        alias = self.alias(index)
        return SinkWriteError(
            f"index {index}: {alias} does not exist ({self._where()})",
            hint="flusso run creates and seeds it; verify compares an index that exists "
            "(is the index prefix the one flusso run uses? see --index-prefix)",
        )

    async def _call(
        self, context: str, method: str, path: str, *, body: Any = None,
        params: Mapping[str, str] | None = None, index: str | None = None,
    ) -> Any:
        try:
            return await self._client.transport.perform_request(
                method, path, params=dict(params) if params else None, body=body
            )
        except TransportError as exc:
            if exc.status_code == 404 and index is not None and "index_not_found" in str(exc.error):
                raise self._absent(index) from exc
            raise describe_failure(context, exc, self.sink_name, self._url) from exc
        except SerializationError as exc:
            raise SinkWriteError(f"{context}: unreadable reply: {exc}") from exc

    # -- reads -------------------------------------------------------------------------------

    async def count(self, index: str) -> int:
        alias = self.alias(index)
        reply = await self._call(
            f"counting {alias} failed", "GET", f"/{quote(alias, safe='')}/_count", index=index
        )
        return int(reply.get("count", 0)) if isinstance(reply, Mapping) else 0

    async def fetch(self, index: str, ids: Sequence[str]) -> dict[str, ServedCopy]:
        if not ids:
            return {}
        alias = self.alias(index)
        reply = await self._call(
            f"reading documents of {alias} failed", "POST", f"/{quote(alias, safe='')}/_mget",
            body={"ids": list(ids)}, index=index,
        )
        docs = reply.get("docs") if isinstance(reply, Mapping) else None
        if not isinstance(docs, list):
            raise SinkWriteError(f"reading documents of {alias}: reply without docs")
        copies: dict[str, ServedCopy] = {}
        for doc in docs:
            if not isinstance(doc, Mapping):
                continue
            error = doc.get("error")
            if error is not None:
                if "index_not_found" in json.dumps(error):
                    raise self._absent(index)
                raise SinkWriteError(
                    f"reading {alias}/{doc.get('_id')} failed: {json.dumps(error)[:300]} "
                    f"({self._where()})"
                )
            version = _version(doc)
            source = doc.get("_source")
            if doc.get("found") is True and version is not None and isinstance(source, Mapping):
                copies[str(doc["_id"])] = ServedCopy(source, version)
        return copies

    def compare(
        self, ops: Sequence[DocumentOp], served: Mapping[str, ServedCopy]
    ) -> list[Comparison]:
        comparisons: list[Comparison] = []
        for op in ops:
            copy = served.get(op.id.render())
            version = copy.version if copy is not None else None
            if isinstance(op, Delete):
                verdict = "same" if copy is None else "orphaned"
            elif copy is None:
                verdict = "missing"
            else:
                verdict = "same" if self._same(op, copy) else "stale"
            comparisons.append(Comparison(op, verdict, version))
        return comparisons

    def _same(self, op: Upsert, copy: ServedCopy) -> bool:
        if self._pipeline:
            # An ingest pipeline rewrites documents on the way in, so the served body
            # cannot be compared with the built one; presence is still checked.
            if not self._warned_pipeline:
                self._warned_pipeline = True
                logger.warning(
                    "sink %s writes through ingest pipeline %s: verify checks that documents "
                    "exist, not their contents", self.sink_name, self._pipeline,
                )
            return True
        return _parse(self._render(op)) == copy.source

    def _render(self, op: Upsert) -> str:
        try:
            return render_document(op.document, ORJSON_CODEC)
        except (TypeError, ValueError) as exc:
            raise SinkSerializeError(f"document {op.id.index}/{op.id.render()}: {exc}") from exc

    async def scan(self, index: str, page_size: int) -> AsyncIterator[list[ServedId]]:
        alias = self.alias(index)
        reply = await self._call(
            f"scanning {alias} failed", "POST", f"/{quote(alias, safe='')}/_search",
            params={"scroll": SCROLL_KEEP_ALIVE},
            body={
                "size": max(1, page_size), "_source": False, "sort": ["_doc"],
                "seq_no_primary_term": True, "query": {"match_all": {}},
            },
            index=index,
        )
        scroll_ids: set[str] = set()
        try:
            while True:
                scroll_id = reply.get("_scroll_id") if isinstance(reply, Mapping) else None
                if isinstance(scroll_id, str):
                    scroll_ids.add(scroll_id)
                page = _served_ids(reply)
                if not page:
                    return
                yield page
                if not isinstance(scroll_id, str):
                    return
                reply = await self._call(
                    f"scanning {alias} failed", "POST", "/_search/scroll",
                    body={"scroll": SCROLL_KEEP_ALIVE, "scroll_id": scroll_id},
                )
        finally:
            if scroll_ids:
                await self._clear_scroll(alias, sorted(scroll_ids))

    async def _clear_scroll(self, alias: str, scroll_ids: list[str]) -> None:
        try:
            await self._client.transport.perform_request(
                "DELETE", "/_search/scroll", body={"scroll_id": scroll_ids}
            )
        except (TransportError, SerializationError) as exc:
            logger.debug("clearing the scan of %s failed (it expires on its own): %s", alias, exc)

    async def sample(self, index: str, count: int) -> list[ServedId]:
        if count <= 0:
            return []
        alias = self.alias(index)
        reply = await self._call(
            f"sampling {alias} failed", "POST", f"/{quote(alias, safe='')}/_search",
            body={
                "size": count, "_source": False, "seq_no_primary_term": True,
                "query": {"function_score": {
                    "query": {"match_all": {}}, "random_score": {}, "boost_mode": "replace",
                }},
            },
            index=index,
        )
        return _served_ids(reply)

    # -- repairs -----------------------------------------------------------------------------

    async def repair(self, index: str, repairs: Sequence[Repair]) -> list[RepairResult]:
        alias = self.alias(index)
        results: list[RepairResult | None] = [None] * len(repairs)
        lines: dict[int, str] = {}
        for position, repair in enumerate(repairs):
            line = self._action(alias, repair)
            if line is None:
                results[position] = RepairResult()  # nothing to delete: already absent
            else:
                lines[position] = line
        params = {"pipeline": self._pipeline} if self._pipeline else {}
        for attempt in range(_REPAIR_ATTEMPTS):
            if not lines:
                break
            if attempt:
                await asyncio.sleep(self._backoff_base * 2 ** (attempt - 1))
            order = list(lines)
            reply = await self._bulk(alias, "".join(lines[p] for p in order), params)
            items = reply.get("items") if isinstance(reply, Mapping) else None
            if not isinstance(items, list) or len(items) != len(order):
                raise SinkWriteError(f"repairing {alias}: the bulk reply does not match the request")
            for position, item in zip(order, items, strict=True):
                outcome = _item_outcome(item)
                if outcome is not None:
                    results[position] = outcome
                    del lines[position]
        if lines:
            raise SinkUnavailableError(
                f"repairing {alias}: {len(lines)} write(s) still refused as transient after "
                f"{_REPAIR_ATTEMPTS} attempts ({self._where()})",
                hint="run verify --repair again later; repairs are safe to repeat",
            )
        return [r if r is not None else RepairResult() for r in results]

    def _action(self, alias: str, repair: Repair) -> str | None:
        op, expected = repair.op, repair.expected
        meta: dict[str, Any] = {"_index": alias, "_id": op.id.render()}
        if expected is not None:
            meta["if_seq_no"] = expected.seq_no
            meta["if_primary_term"] = expected.primary_term
        if isinstance(op, Delete):
            if expected is None:
                return None
            return _META.encode({"delete": meta}) + "\n"
        kind = "index" if expected is not None else "create"
        return f"{_META.encode({kind: meta})}\n{self._render(op)}\n"

    async def _bulk(self, alias: str, body: str, params: Mapping[str, str]) -> Any:
        try:
            return await self._client.transport.perform_request(
                "POST", "/_bulk", params=dict(params) or None, body=body,
                headers={"content-type": "application/x-ndjson"},
            )
        except TransportError as exc:
            raise describe_failure(
                f"repairing {alias} failed", exc, self.sink_name, self._url
            ) from exc
        except SerializationError as exc:
            raise SinkWriteError(f"repairing {alias}: unreadable reply: {exc}") from exc

    async def close(self) -> None:
        if self._owns_client:
            await self._client.close()


def _parse(text: str) -> Any:
    """Parse as the client parses `_source` (orjson; the standard library for long numbers)."""
    try:
        return ORJSON_CODEC.loads(text)
    except ValueError:
        return json.loads(text)


def _served_ids(reply: Any) -> list[ServedId]:
    hits = reply.get("hits", {}).get("hits", []) if isinstance(reply, Mapping) else []
    page: list[ServedId] = []
    for hit in hits:
        if not isinstance(hit, Mapping) or not isinstance(hit.get("_id"), str):
            continue
        version = _version(hit)
        if version is not None:
            page.append(ServedId(hit["_id"], version))
    return page


def _item_outcome(item: Any) -> RepairResult | None:
    """The result of one bulk item; None when it is transient and should be sent again."""
    op = next((v for v in item.values() if isinstance(v, Mapping)), None) if isinstance(
        item, Mapping
    ) else None
    if op is None:
        return RepairResult(refused="the bulk reply has no result for this item")
    status = op.get("status")
    status = status if isinstance(status, int) else 0
    if status < 300:
        return RepairResult(version=_version(op))
    error = op.get("error")
    if status == 409 or (status == 404 and "index_not_found" not in json.dumps(error)):
        # A version conflict (or a copy deleted meanwhile): another write came first.
        return RepairResult()
    if status in TRANSIENT_ITEM_STATUSES:
        return None
    reason = error.get("reason") if isinstance(error, Mapping) else None
    return RepairResult(refused=str(reason or f"rejected with status {status}"))

