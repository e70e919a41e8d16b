"""A null OpenSearch: accepts the calls flusso and PGSync make, keeps no documents.

`python -m bench.null_sink --port N` serves on 127.0.0.1. Index, alias and
`_doc` bookkeeping is kept in memory (flusso stores its lifecycle markers in a
meta index and reads them back); `_bulk` bodies are split into actions only to
answer item by item, count them and note each distinct id per index, then dropped.

Benchmark endpoints (not OpenSearch):

- `GET /_bench/stats` — bulk requests, actions, bytes, distinct ids per index;
- `POST /_bench/watch?token=T&count=N` — start looking for the bytes `T` in bulk bodies;
- `GET /_bench/wait?token=T&timeout=S` — block until `T` was seen `N` times; replies with
  `time.monotonic()` of the first and the last sighting (the clock is system-wide, so
  the harness can subtract its own commit time);
- `POST /_bench/reset` — forget everything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fnmatch
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

VERSION = {
    "name": "null-sink",
    "cluster_name": "null-sink",
    "version": {"distribution": "opensearch", "number": "2.11.0", "lucene_version": "9.7.0"},
    "tagline": "The OpenSearch Project: https://opensearch.org/",
}
_SHARDS = {"total": 1, "successful": 1, "failed": 0}


@dataclass
class _Watch:
    target: int
    seen: int = 0
    first: float | None = None
    last: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _Index:
    body: dict[str, Any]
    ids: set[str] = field(default_factory=set)
    docs: dict[str, Any] = field(default_factory=dict)
    actions: int = 0


class NullSink:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.indexes: dict[str, _Index] = {}
        self.aliases: dict[str, set[str]] = {}
        self.watches: dict[bytes, _Watch] = {}
        self.bulk_requests = 0
        self.actions = 0
        self.bytes = 0
        self.last_bulk_at: float | None = None

    # -- names ---------------------------------------------------------------------

    def resolve(self, name: str) -> list[str]:
        """Concrete indexes behind a name, alias, comma list or wildcard."""
        found: list[str] = []
        for part in name.split(","):
            if part in self.indexes:
                found.append(part)
            elif part in self.aliases:
                found.extend(sorted(self.aliases[part]))
            elif any(ch in part for ch in "*?"):
                found.extend(n for n in sorted(self.indexes) if fnmatch.fnmatchcase(n, part))
        return found

    def target(self, name: str) -> _Index:
        """Where a write to `name` lands; unknown names are auto-created like OpenSearch does."""
        concrete = self.resolve(name)
        if concrete:
            return self.indexes[concrete[0]]
        return self.indexes.setdefault(name, _Index({}))

    # -- bulk ----------------------------------------------------------------------

    def bulk(self, body: bytes, default_index: str | None) -> dict[str, Any]:
        now = time.monotonic()
        self.bulk_requests += 1
        self.bytes += len(body)
        self.last_bulk_at = now
        for token, watch in self.watches.items():
            hits = body.count(token)
            if hits:
                watch.seen += hits
                watch.first = watch.first if watch.first is not None else now
                watch.last = now
                if watch.seen >= watch.target:
                    watch.done.set()
        items: list[dict[str, Any]] = []
        lines = body.split(b"\n")
        i = 0
        while i < len(lines):
            line = lines[i]
            i += 1
            if not line.strip():
                continue
            action = json.loads(line)
            ((op, meta),) = action.items()
            if op != "delete":
                i += 1  # the source line
            name = meta.get("_index") or default_index or "_unknown"
            index = self.target(name)
            doc_id = str(meta.get("_id", f"auto-{self.actions}"))
            index.actions += 1
            if op == "delete":
                index.ids.discard(doc_id)
            else:
                index.ids.add(doc_id)
            self.actions += 1
            status = 200 if op == "delete" else 201
            items.append({op: {"_index": name, "_id": doc_id, "status": status, "result": "ok",
                               "_shards": _SHARDS, "_version": 1}})
        return {"took": 0, "errors": False, "items": items}

    def stats(self) -> dict[str, Any]:
        return {
            "bulk_requests": self.bulk_requests,
            "actions": self.actions,
            "bytes": self.bytes,
            "last_bulk_at": self.last_bulk_at,
            "indexes": {
                name: {"ids": len(ix.ids), "actions": ix.actions}
                for name, ix in sorted(self.indexes.items())
            },
            "aliases": {alias: sorted(held) for alias, held in sorted(self.aliases.items())},
        }


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d))


def _missing(name: str) -> web.Response:
    return _json(
        {"error": {"type": "index_not_found_exception", "reason": f"no such index [{name}]",
                   "index": name}, "status": 404},
        404,
    )


async def _body_json(request: web.Request) -> Any:
    raw = await request.read()
    return json.loads(raw) if raw.strip() else None


def build_app(  # noqa: C901 - one table of routes
    sink: NullSink, first: web.RouteTableDef | None = None
) -> web.Application:
    """The app; `first` routes are matched before the null sink's own (bench/store_sink.py)."""
    routes = web.RouteTableDef()

    @routes.get("/")
    async def info(request: web.Request) -> web.Response:
        return _json(VERSION)

    # bench endpoints
    @routes.get("/_bench/stats")
    async def stats(request: web.Request) -> web.Response:
        return _json(sink.stats())

    @routes.post("/_bench/reset")
    async def reset(request: web.Request) -> web.Response:
        sink.reset()
        return _json({"ok": True})

    @routes.post("/_bench/watch")
    async def watch(request: web.Request) -> web.Response:
        token = request.query["token"].encode()
        sink.watches[token] = _Watch(int(request.query.get("count", "1")))
        return _json({"ok": True})

    @routes.get("/_bench/wait")
    async def wait(request: web.Request) -> web.Response:
        token = request.query["token"].encode()
        watch_ = sink.watches.get(token)
        if watch_ is None:
            return _json({"error": "not watched"}, 404)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watch_.done.wait(), float(request.query.get("timeout", "60")))
        sink.watches.pop(token, None)
        return _json({"seen": watch_.seen, "target": watch_.target, "first": watch_.first,
                      "last": watch_.last, "complete": watch_.done.is_set()})

    # cluster-level
    @routes.get("/_cluster/health")
    @routes.get("/_cluster/health/{index}")
    async def health(request: web.Request) -> web.Response:
        return _json({"cluster_name": "null-sink", "status": "green", "number_of_nodes": 1})

    @routes.post("/_bulk")
    @routes.put("/_bulk")
    async def bulk(request: web.Request) -> web.Response:
        return _json(sink.bulk(await request.read(), None))

    @routes.post("/{index}/_bulk")
    @routes.put("/{index}/_bulk")
    async def index_bulk(request: web.Request) -> web.Response:
        return _json(sink.bulk(await request.read(), request.match_info["index"]))

    @routes.get("/_cat/indices")
    @routes.get("/_cat/indices/{pattern}")
    async def cat_indices(request: web.Request) -> web.Response:
        pattern = request.match_info.get("pattern", "*")
        names = sink.resolve(pattern)
        return _json([{"index": n, "docs.count": str(len(sink.indexes[n].ids)), "health": "green",
                       "status": "open"} for n in names])

    @routes.get("/_alias/{alias}")
    @routes.get("/{index}/_alias/{alias}")
    @routes.get("/_aliases")
    async def get_alias(request: web.Request) -> web.Response:
        wanted = request.match_info.get("alias", "*")
        reply: dict[str, Any] = {}
        for alias, held in sink.aliases.items():
            if fnmatch.fnmatchcase(alias, wanted):
                for index in held:
                    reply.setdefault(index, {"aliases": {}})["aliases"][alias] = {}
        if not reply and "alias" in request.match_info:
            return _json({"error": f"alias [{wanted}] missing", "status": 404}, 404)
        return _json(reply)

    @routes.post("/_aliases")
    async def post_aliases(request: web.Request) -> web.Response:
        body = await _body_json(request) or {}
        for action in body.get("actions", []):
            ((kind, spec),) = action.items()
            indexes = spec.get("indices") or [spec.get("index")]
            aliases = spec.get("aliases") or [spec.get("alias")]
            for index in indexes:
                for alias in aliases:
                    if kind == "add":
                        sink.aliases.setdefault(alias, set()).add(index)
                    elif kind == "remove":
                        sink.aliases.get(alias, set()).discard(index)
                    elif kind == "remove_index":
                        sink.indexes.pop(index, None)
        sink.aliases = {a: held for a, held in sink.aliases.items() if held}
        return _json({"acknowledged": True})

    @routes.post("/_refresh")
    async def refresh_all(request: web.Request) -> web.Response:
        return _json({"_shards": _SHARDS})

    @routes.post("/_search")
    @routes.get("/_search")
    async def search_all(request: web.Request) -> web.Response:
        return _json({"took": 0, "timed_out": False, "_shards": _SHARDS,
                      "hits": {"total": {"value": 0, "relation": "eq"}, "hits": []}})

    # index-level
    @routes.get("/{index}")  # aiohttp answers HEAD (index exists?) from this route too
    async def get_index(request: web.Request) -> web.Response:
        names = sink.resolve(request.match_info["index"])
        if not names:
            return _missing(request.match_info["index"])
        return _json({n: {"aliases": {}, **sink.indexes[n].body} for n in names})

    @routes.put("/{index}")
    async def create(request: web.Request) -> web.Response:
        name = request.match_info["index"]
        if name in sink.indexes:
            return _json({"error": {"type": "resource_already_exists_exception",
                                    "reason": f"index [{name}] already exists"}, "status": 400},
                         400)
        body = await _body_json(request) or {}
        sink.indexes[name] = _Index(body)
        for alias in (body.get("aliases") or {}):
            sink.aliases.setdefault(alias, set()).add(name)
        return _json({"acknowledged": True, "shards_acknowledged": True, "index": name})

    @routes.delete("/{index}")
    async def delete(request: web.Request) -> web.Response:
        names = sink.resolve(request.match_info["index"])
        if not names:
            return _missing(request.match_info["index"])
        for name in names:
            sink.indexes.pop(name, None)
            for held in sink.aliases.values():
                held.discard(name)
        return _json({"acknowledged": True})

    @routes.post("/{index}/_refresh")
    @routes.get("/{index}/_refresh")
    async def refresh(request: web.Request) -> web.Response:
        if not sink.resolve(request.match_info["index"]):
            return _missing(request.match_info["index"])
        return _json({"_shards": _SHARDS})

    @routes.get("/{index}/_settings")
    @routes.get("/{index}/_mapping")
    async def get_settings(request: web.Request) -> web.Response:
        names = sink.resolve(request.match_info["index"])
        if not names:
            return _missing(request.match_info["index"])
        return _json({n: sink.indexes[n].body for n in names})

    @routes.put("/{index}/_settings")
    @routes.put("/{index}/_mapping")
    async def put_settings(request: web.Request) -> web.Response:
        await request.read()
        return _json({"acknowledged": True})

    @routes.get("/{index}/_count")
    @routes.post("/{index}/_count")
    async def count(request: web.Request) -> web.Response:
        names = sink.resolve(request.match_info["index"])
        if not names:
            return _missing(request.match_info["index"])
        total = sum(len(sink.indexes[n].ids) + len(sink.indexes[n].docs) for n in names)
        return _json({"count": total, "_shards": _SHARDS})

    @routes.post("/{index}/_search")
    @routes.get("/{index}/_search")
    async def search(request: web.Request) -> web.Response:
        names = sink.resolve(request.match_info["index"])
        if not names:
            return _missing(request.match_info["index"])
        hits = [{"_index": n, "_id": doc_id, "_score": 1.0, "_source": source}
                for n in names for doc_id, source in sink.indexes[n].docs.items()]
        return _json({"took": 0, "timed_out": False, "_shards": _SHARDS,
                      "hits": {"total": {"value": len(hits), "relation": "eq"}, "hits": hits}})

    @routes.put("/{index}/_doc/{id}")
    @routes.post("/{index}/_doc/{id}")
    async def put_doc(request: web.Request) -> web.Response:
        index = sink.target(request.match_info["index"])
        doc_id = request.match_info["id"]
        created = doc_id not in index.docs
        index.docs[doc_id] = await _body_json(request)
        return _json({"_index": request.match_info["index"], "_id": doc_id, "_version": 1,
                      "result": "created" if created else "updated", "_shards": _SHARDS},
                     201 if created else 200)

    @routes.get("/{index}/_doc/{id}")
    async def get_doc(request: web.Request) -> web.Response:
        name, doc_id = request.match_info["index"], request.match_info["id"]
        for concrete in sink.resolve(name):
            if doc_id in sink.indexes[concrete].docs:
                return _json({"_index": concrete, "_id": doc_id, "found": True,
                              "_source": sink.indexes[concrete].docs[doc_id]})
        if not sink.resolve(name):
            return _missing(name)
        return _json({"_index": name, "_id": doc_id, "found": False}, 404)

    @routes.delete("/{index}/_doc/{id}")
    async def delete_doc(request: web.Request) -> web.Response:
        for concrete in sink.resolve(request.match_info["index"]):
            sink.indexes[concrete].docs.pop(request.match_info["id"], None)
        return _json({"result": "deleted", "_shards": _SHARDS})

    app = web.Application(client_max_size=512 * 1024 * 1024)
    if first is not None:
        app.add_routes(first)
    app.add_routes(routes)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.null_sink", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    web.run_app(build_app(NullSink()), host=args.host, port=args.port, print=None,
                access_log=None)


if __name__ == "__main__":
    main()
