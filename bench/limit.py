"""The machine's limit: one SQL statement builds every document; a bulk load ships them.

`run_limit` first times the statement alone (rows fetched and dropped), then
streams it again through a server-side cursor into `_bulk` requests (two in
flight, so Postgres and the sink work at the same time), and ends with a refresh.
No tool can build the same documents faster than Postgres builds them in one
statement, nor ship them faster than a plain bulk loop does.
"""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import psycopg

from bench.dataset import LIMIT_SQL

BULK_DOCS = 1000


class HttpJson:
    """A keep-alive JSON client for one base URL (one per thread)."""

    def __init__(self, base_url: str, timeout: float = 600.0) -> None:
        parts = urlsplit(base_url)
        self._conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)

    def call(self, method: str, path: str, body: Any = None, *,
             ndjson: bytes | None = None) -> tuple[int, Any]:
        headers = {"content-type": "application/json"}
        data: bytes | None = None
        if ndjson is not None:
            data, headers = ndjson, {"content-type": "application/x-ndjson"}
        elif body is not None:
            data = json.dumps(body).encode()
        try:
            self._conn.request(method, path, body=data, headers=headers)
            reply = self._conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server dropped an idle keep-alive connection; open a new one, once.
            self._conn.close()
            self._conn.request(method, path, body=data, headers=headers)
            reply = self._conn.getresponse()
        raw = reply.read()
        try:
            return reply.status, json.loads(raw) if raw else None
        except ValueError:
            return reply.status, raw.decode(errors="replace")

    def close(self) -> None:
        self._conn.close()


def time_sql(pg_url: str) -> tuple[int, float]:
    """Rows and seconds for the statement alone, fetched through a server-side cursor."""
    started = time.perf_counter()
    rows = 0
    with psycopg.connect(pg_url) as conn, conn.cursor(name="limit_sql") as cur:
        cur.itersize = BULK_DOCS
        cur.execute(LIMIT_SQL)
        while batch := cur.fetchmany(BULK_DOCS):
            rows += len(batch)
    return rows, time.perf_counter() - started


def _sender(sink_url: str, work: queue.Queue[bytes | None], errors: list[str]) -> None:
    client = HttpJson(sink_url)
    try:
        while (body := work.get()) is not None:
            status, reply = client.call("POST", "/_bulk", ndjson=body)
            if status >= 300 or (isinstance(reply, dict) and reply.get("errors")):
                errors.append(f"bulk HTTP {status}: {str(reply)[:300]}")
    finally:
        client.close()


def run_limit(pg_url: str, sink_url: str, index: str,
              mapping_body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build every document in one statement and bulk-load it into `index` on `sink_url`."""
    sql_rows, sql_seconds = time_sql(pg_url)
    admin = HttpJson(sink_url)
    admin.call("DELETE", f"/{index}")
    body = mapping_body or {}
    body.setdefault("settings", {}).setdefault("index", {}).update(
        {"refresh_interval": "-1", "number_of_replicas": 0}
    )
    status, reply = admin.call("PUT", f"/{index}", body)
    index_mapping = "flusso" if mapping_body else "dynamic"
    if status >= 300:
        # Reported in the JSON: a dynamic mapping is cheaper to ingest than flusso's.
        index_mapping = f"dynamic (the sink refused flusso's: {str(reply)[:200]})"
        admin.call("PUT", f"/{index}", {"settings": body["settings"]})
    action_prefix = json.dumps({"index": {"_index": index, "_id": ""}})[:-3].encode()

    work: queue.Queue[bytes | None] = queue.Queue(maxsize=2)
    errors: list[str] = []
    senders = [threading.Thread(target=_sender, args=(sink_url, work, errors)) for _ in range(2)]
    started = time.perf_counter()
    for sender in senders:
        sender.start()
    docs = 0
    try:
        with psycopg.connect(pg_url) as conn, conn.cursor(name="limit_load") as cur:
            cur.itersize = BULK_DOCS
            cur.execute(LIMIT_SQL)
            while batch := cur.fetchmany(BULK_DOCS):
                parts: list[bytes] = []
                for doc_id, source in batch:
                    parts.append(action_prefix + doc_id.encode() + b'"}}\n')
                    parts.append(source.encode() + b"\n")
                work.put(b"".join(parts))
                docs += len(batch)
    finally:
        for _ in senders:
            work.put(None)
        for sender in senders:
            sender.join()
    admin.call("POST", f"/{index}/_refresh")
    seconds = time.perf_counter() - started
    admin.close()
    return {
        "documents": docs,
        "sql_seconds": round(sql_seconds, 3),
        "sql_docs_per_s": round(sql_rows / sql_seconds, 1) if sql_seconds else None,
        "seconds": round(seconds, 3),
        "docs_per_s": round(docs / seconds, 1) if seconds else None,
        "errors": errors[:5],
        "index_mapping": index_mapping,
    }
