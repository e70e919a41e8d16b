"""A keeping OpenSearch for the verify bench: the null sink's bookkeeping, plus the documents.

`python -m bench.store_sink --port N` serves on 127.0.0.1. Bulk sources are kept as the
raw bytes flusso sent (never parsed), each with a sequence number, and served back by
what `flusso verify` reads: `_mget`, a `_doc`-sorted scroll of ids, a random sample,
`_count`, and conditional bulk items (`if_seq_no`/`if_primary_term`, `create`). Like the
null sink, it shows flusso's own cost rather than a search engine's; osmem-server ingests
too slowly to hold the bench's indexes.

Benchmark endpoints (not OpenSearch): `POST /_bench/tamper?index=I&missing=N&stale=N&orphaned=N`
deletes, alters and adds documents (every k-th one, deterministically) and answers the ids.
"""

from __future__ import annotations

import argparse
import json
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bench.null_sink import NullSink, _body_json, _json, _missing, build_app

PRIMARY_TERM = 1
_SHARDS = {"total": 1, "successful": 1, "failed": 0}


@dataclass
class _Store:
    sources: dict[str, tuple[bytes, int]] = field(default_factory=dict)  # id → (source, seq_no)


@dataclass
class _Scroll:
    index: str
    ids: list[str]
    size: int
    position: int = 0


class StoreSink(NullSink):
    def reset(self) -> None:
        super().reset()
        self.stores: dict[str, _Store] = {}
        self.scrolls: dict[str, _Scroll] = {}
        self.seq_no = 0

    def store(self, name: str) -> _Store:
        concrete = self.resolve(name)
        return self.stores.setdefault(concrete[0] if concrete else name, _Store())

    def next_seq(self) -> int:
        self.seq_no += 1
        return self.seq_no

    def bulk(self, body: bytes, default_index: str | None) -> dict[str, Any]:
        self.bulk_requests += 1
        self.bytes += len(body)
        items: list[dict[str, Any]] = []
        errors = False
        lines = body.split(b"\n")
        i = 0
        while i < len(lines):
            line = lines[i]
            i += 1
            if not line.strip():
                continue
            ((op, meta),) = json.loads(line).items()
            source = b""
            if op != "delete":
                source = lines[i]
                i += 1
            name = meta.get("_index") or default_index or "_unknown"
            self.target(name)  # auto-create, as OpenSearch does
            store = self.store(name)
            doc_id = str(meta["_id"])
            held = store.sources.get(doc_id)
            status, result = self._apply(store, op, doc_id, source, held, meta)
            self.actions += 1
            item: dict[str, Any] = {"_index": name, "_id": doc_id, "status": status}
            if status >= 400:
                errors = True
                item["error"] = {"type": "version_conflict_engine_exception",
                                 "reason": f"[{doc_id}]: version conflict"}
            else:
                item.update(result=result, _seq_no=self.seq_no, _primary_term=PRIMARY_TERM,
                            _shards=_SHARDS, _version=1)
            items.append({op: item})
        return {"took": 0, "errors": errors, "items": items}

    def _apply(self, store: _Store, op: str, doc_id: str, source: bytes,
               held: tuple[bytes, int] | None, meta: dict[str, Any]) -> tuple[int, str]:
        if "if_seq_no" in meta and (held is None or held[1] != meta["if_seq_no"]):
            return 409, ""
        if op == "create" and held is not None:
            return 409, ""
        if op == "delete":
            if held is None:
                return 404, "not_found"
            del store.sources[doc_id]
            self.next_seq()
            return 200, "deleted"
        store.sources[doc_id] = (source, self.next_seq())
        return (201, "created") if held is None else (200, "updated")

    def mget(self, name: str, ids: list[str]) -> bytes:
        store = self.store(name)
        parts: list[bytes] = []
        for doc_id in ids:
            held = store.sources.get(doc_id)
            head = json.dumps({"_index": name, "_id": doc_id})[:-1].encode()
            if held is None:
                parts.append(head + b',"found":false}')
            else:
                parts.append(head + b',"found":true,"_seq_no":%d,"_primary_term":%d,"_source":'
                             % (held[1], PRIMARY_TERM) + held[0] + b"}")
        return b'{"docs":[' + b",".join(parts) + b"]}"

    def hits(self, name: str, ids: list[str], scroll_id: str | None) -> dict[str, Any]:
        store = self.store(name)
        hits = [{"_index": name, "_id": i, "_score": None, "_seq_no": store.sources[i][1],
                 "_primary_term": PRIMARY_TERM} for i in ids if i in store.sources]
        reply: dict[str, Any] = {"took": 0, "timed_out": False, "_shards": _SHARDS,
                                 "hits": {"total": {"value": len(store.sources), "relation": "eq"},
                                          "hits": hits}}
        if scroll_id is not None:
            reply["_scroll_id"] = scroll_id
        return reply

    def tamper(self, name: str, missing: int, stale: int, orphaned: int) -> dict[str, list[str]]:
        store = self.store(name)
        ids = sorted(store.sources)
        chosen: dict[str, list[str]] = {"missing": [], "stale": [], "orphaned": []}
        step = max(1, len(ids) // max(1, missing + stale))
        picks = ids[::step][: missing + stale]
        for doc_id in picks[:missing]:
            del store.sources[doc_id]
            chosen["missing"].append(doc_id)
        for doc_id in picks[missing:]:
            source = json.loads(store.sources[doc_id][0])
            source["fullName"] = "tampered"
            store.sources[doc_id] = (json.dumps(source).encode(), self.next_seq())
            chosen["stale"].append(doc_id)
        for n in range(orphaned):
            doc_id = f"orphan-{n}"
            store.sources[doc_id] = (b'{"id":0}', self.next_seq())
            chosen["orphaned"].append(doc_id)
        return chosen


def build_store_app(sink: StoreSink) -> web.Application:
    routes = web.RouteTableDef()

    def raw(data: bytes) -> web.Response:
        return web.Response(body=data, content_type="application/json")

    @routes.post("/_bulk")
    @routes.put("/_bulk")
    async def bulk(request: web.Request) -> web.Response:
        return _json(sink.bulk(await request.read(), None))

    @routes.post("/{index}/_mget")
    @routes.get("/{index}/_mget")
    async def mget(request: web.Request) -> web.Response:
        name = request.match_info["index"]
        if not sink.resolve(name):
            return _missing(name)
        body = await _body_json(request) or {}
        ids = [str(i) for i in body.get("ids") or [d["_id"] for d in body.get("docs", [])]]
        return raw(sink.mget(name, ids))

    @routes.get("/{index}/_count")
    @routes.post("/{index}/_count")
    async def count(request: web.Request) -> web.Response:
        name = request.match_info["index"]
        if not sink.resolve(name):
            return _missing(name)
        return _json({"count": len(sink.store(name).sources), "_shards": _SHARDS})

    @routes.post("/_search/scroll")
    async def scroll_next(request: web.Request) -> web.Response:
        body = await _body_json(request) or {}
        scroll = sink.scrolls.get(body.get("scroll_id", ""))
        if scroll is None:
            return _json({"error": "no such scroll", "status": 404}, 404)
        return _json(_scroll_page(sink, body["scroll_id"], scroll))

    @routes.delete("/_search/scroll")
    async def scroll_clear(request: web.Request) -> web.Response:
        body = await _body_json(request) or {}
        for scroll_id in body.get("scroll_id") or []:
            sink.scrolls.pop(scroll_id, None)
        return _json({"succeeded": True, "num_freed": 1})

    @routes.post("/{index}/_search")
    @routes.get("/{index}/_search")
    async def search(request: web.Request) -> web.Response:
        name = request.match_info["index"]
        if not sink.resolve(name):
            return _missing(name)
        body = await _body_json(request) or {}
        size = int(body.get("size", 10))
        ids = list(sink.store(name).sources)
        if "scroll" in request.query:
            scroll_id = uuid.uuid4().hex
            scroll = _Scroll(name, ids, size)
            sink.scrolls[scroll_id] = scroll
            return _json(_scroll_page(sink, scroll_id, scroll))
        if "function_score" in json.dumps(body.get("query", {})):
            return _json(sink.hits(name, random.sample(ids, min(size, len(ids))), None))
        return _json(sink.hits(name, ids[:size], None))

    @routes.post("/_bench/tamper")
    async def tamper(request: web.Request) -> web.Response:
        q = request.query
        return _json(sink.tamper(q["index"], int(q.get("missing", 0)), int(q.get("stale", 0)),
                                 int(q.get("orphaned", 0))))

    return build_app(sink, first=routes)


def _scroll_page(sink: StoreSink, scroll_id: str, scroll: _Scroll) -> dict[str, Any]:
    page = scroll.ids[scroll.position : scroll.position + scroll.size]
    scroll.position += len(page)
    return sink.hits(scroll.index, page, scroll_id)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.store_sink", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    web.run_app(build_store_app(StoreSink()), host=args.host, port=args.port, print=None,
                access_log=None)


if __name__ == "__main__":
    main()
