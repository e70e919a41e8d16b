"""The individual HTTP calls the OpenSearch sink makes, with errors translated once.

Every call goes through `transport.perform_request` so the client's own retry and
helper logic stays out of the way; only `bulk` leaves its failures raw, because the
sink's retry loop classifies them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import ConnectionError as TransportConnectionError
from opensearchpy.exceptions import SerializationError, TransportError

from flusso.adapters.opensearch.bulk import TRANSIENT_ITEM_STATUSES
from flusso.app.ports import SinkUnavailableError, SinkWriteError

_UNAVAILABLE_HINT = "nothing was acknowledged, so a restart resumes safely"


def _segment(name: str, *, wildcard: bool = False) -> str:
    return quote(name, safe="*" if wildcard else "")


def status_line(status: int) -> str:
    """`429 Too Many Requests`: the code and its reason phrase, when it has one."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def error_body(exc: TransportError) -> str:
    """The reply body of a failed request, as text."""
    info = exc.info
    if isinstance(info, Mapping | list):
        return json.dumps(info, ensure_ascii=False, separators=(",", ":"))
    error = exc.error
    return error if isinstance(error, str) else str(error)


def transport_detail(exc: TransportConnectionError) -> str:
    cause = exc.info
    kind = type(cause).__name__ if isinstance(cause, BaseException) else type(exc).__name__
    return f"{kind}: {exc.error}"


def destination(sink: str, url: str) -> str:
    """`sink primary at http://host:9200` (credentials never shown), for messages."""
    where = f"sink {sink}" if sink else ""
    shown = display_url(url)
    if shown:
        where = f"{where} at {shown}" if where else shown
    return where


def display_url(url: str) -> str:
    """`url` without user and password."""
    parts = urlsplit(url.strip())
    if not parts.netloc or "@" not in parts.netloc:
        return url.strip()
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def describe_failure(
    context: str, exc: Exception, sink: str = "", url: str = ""
) -> SinkWriteError:
    """The sink error for a failed call: transient failures become SinkUnavailableError.

    The destination (`sink primary at http://host:9200`) ends the message; the hint
    says what an operator can change.
    """
    where = destination(sink, url)
    suffix = f" ({where})" if where else ""
    hint = failure_hint(exc, sink, url)
    if isinstance(exc, TransportConnectionError) or (
        isinstance(exc, TransportError) and exc.status_code in TRANSIENT_ITEM_STATUSES
    ):
        hint = f"{hint}; {_UNAVAILABLE_HINT}" if hint else _UNAVAILABLE_HINT
    if isinstance(exc, TransportConnectionError):
        return SinkUnavailableError(f"{context}: {transport_detail(exc)}{suffix}", hint=hint)
    if isinstance(exc, TransportError) and isinstance(exc.status_code, int):
        detail = f"{context}: HTTP {status_line(exc.status_code)}: {error_body(exc)}{suffix}"
        if exc.status_code in TRANSIENT_ITEM_STATUSES:
            return SinkUnavailableError(detail, hint=hint)
        return SinkWriteError(detail, hint=hint)
    return SinkWriteError(f"{context}: {exc}{suffix}", hint=hint)


def failure_hint(exc: Exception, sink: str = "", url: str = "") -> str | None:
    """What to change for a failed call, when the failure says so (TLS, credentials, reach)."""
    table = f"[sinks.{sink}]" if sink else "the sink's config"
    if isinstance(exc, TransportConnectionError):
        cause = exc.info
        kind = type(cause).__name__ if isinstance(cause, BaseException) else ""
        text = f"{kind} {exc.error}".lower()
        if "mismatch" in text and "certificate" in text:
            return (
                f"the server's TLS certificate names another host: use the host name it was "
                f"issued for in the url under {table}, or set tls_verify_hostname = false there"
            )
        if "certificate_verify_failed" in text or "certificate verify failed" in text:
            return (
                f"the server's TLS certificate is not trusted: set tls_ca_file under {table} "
                "to the PEM bundle of the CA that signed it (or install that CA on this "
                "host); tls_verify = false turns the check off (testing only)"
            )
        if "certificate required" in text or "bad certificate" in text or "unknown ca" in text:
            return (
                f"the server wants a client certificate it trusts: set tls_cert_file and "
                f"tls_key_file under {table}"
            )
        if "certificate" in text:
            return (
                f"the TLS handshake failed over a certificate: check tls_ca_file, "
                f"tls_cert_file and tls_key_file under {table}"
            )
        if "disconnected" in text and url.strip().lower().startswith("https"):
            # Under TLS 1.3 a server that wants a client certificate checks it after the
            # handshake and just hangs up.
            return (
                f"the server closed the TLS connection: if it requires mutual TLS, set "
                f"tls_cert_file and tls_key_file under {table}; otherwise check that "
                "OpenSearch is running at the url"
            )
        if "ssl" in kind.lower() or "wrong_version_number" in text:
            return (
                f"the TLS handshake failed: if the cluster serves plain HTTP, write its url "
                f"under {table} with http:// instead of https://"
            )
        if "dns" in kind.lower() or "name or service not known" in text:
            return f"the host name does not resolve: fix the url under {table}"
        return f"check that OpenSearch is running and reachable at the url under {table}"
    status = exc.status_code if isinstance(exc, TransportError) else None
    if status == 401:
        return (
            f"OpenSearch refused the credentials: set username and password under {table} "
            '(e.g. password = { env = "OPENSEARCH_PASSWORD" })'
        )
    if status == 403:
        return (
            "the OpenSearch user lacks a permission flusso needs: it manages indexes, "
            "aliases and the flusso_meta index under its prefix"
        )
    return None


class ClusterCalls:
    """Thin async wrappers over one client; each raises SinkWriteError (cause kept) on failure."""

    def __init__(self, client: AsyncOpenSearch, *, sink: str = "", url: str = "") -> None:
        self._client = client
        self._sink = sink
        self._url = url

    async def _call(
        self,
        context: str,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        missing_ok: bool = False,
    ) -> tuple[bool, Any]:
        """`(found, reply)`; `found` is False only for a tolerated 404."""
        try:
            # A tolerated 404 is passed through as a reply (not raised) so the client
            # does not log an expected "not found" as a failed request.
            reply = await self._client.transport.perform_request(
                method, path, params=params, body=body, ignore=(404,) if missing_ok else ()
            )
        except TransportError as exc:
            raise describe_failure(context, exc, self._sink, self._url) from exc
        except SerializationError as exc:
            raise SinkWriteError(f"{context}: unreadable reply: {exc}") from exc
        if missing_ok and _is_not_found(reply):
            return False, None
        return True, reply

    async def exists(self, index: str) -> bool:
        _, reply = await self._call("index check failed", "HEAD", f"/{_segment(index)}")
        return bool(reply)

    async def create(self, index: str, body: Mapping[str, Any]) -> bool:
        """Create `index`; False when it already existed (a lost creation race is fine)."""
        try:
            await self._client.transport.perform_request("PUT", f"/{_segment(index)}", body=body)
        except TransportError as exc:
            if "resource_already_exists_exception" in error_body(exc):
                return False
            raise describe_failure("index create failed", exc, self._sink, self._url) from exc
        return True

    async def list_indices(self, pattern: str) -> list[str]:
        """Concrete indexes matching `pattern`; an alias lists the indexes behind it."""
        found, reply = await self._call(
            "listing indices failed",
            "GET",
            f"/_cat/indices/{_segment(pattern, wildcard=True)}",
            params={"h": "index", "format": "json"},
            missing_ok=True,
        )
        if not found or not isinstance(reply, list):
            return []
        return [row["index"] for row in reply if isinstance(row, Mapping) and "index" in row]

    async def alias_holders(self, alias: str) -> list[str]:
        found, reply = await self._call(
            "alias lookup failed", "GET", f"/_alias/{_segment(alias)}", missing_ok=True
        )
        if not found or not isinstance(reply, Mapping):
            return []
        return [str(key) for key in reply]

    async def update_aliases(self, actions: Sequence[Mapping[str, Any]]) -> None:
        """One atomic `POST /_aliases` with exactly these actions."""
        await self._call(
            "alias update failed", "POST", "/_aliases", body={"actions": list(actions)}
        )

    async def read_meta(self, meta_index: str, doc_id: str) -> tuple[int, bool] | None:
        """`(active_generation, seeded)`, or None when absent or without an integer generation."""
        found, reply = await self._call(
            "meta read failed",
            "GET",
            f"/{_segment(meta_index)}/_doc/{_segment(doc_id)}",
            missing_ok=True,
        )
        if not found or not isinstance(reply, Mapping):
            return None
        return parse_meta(reply.get("_source"))

    async def write_meta(self, meta_index: str, doc_id: str, generation: int, seeded: bool) -> None:
        await self._call(
            "meta write failed",
            "PUT",
            f"/{_segment(meta_index)}/_doc/{_segment(doc_id)}",
            body={"active_generation": generation, "seeded": seeded},
        )

    async def all_meta(self, meta_index: str) -> list[tuple[str, tuple[int, bool]]]:
        """Every readable meta document as `(id, (generation, seeded))`."""
        found, _ = await self._call(
            "meta refresh failed", "POST", f"/{_segment(meta_index)}/_refresh", missing_ok=True
        )
        if not found:
            return []
        found, reply = await self._call(
            "meta search failed",
            "POST",
            f"/{_segment(meta_index)}/_search",
            body={"size": 10000, "query": {"match_all": {}}},
            missing_ok=True,
        )
        hits = reply.get("hits", {}).get("hits", []) if found and isinstance(reply, Mapping) else []
        docs: list[tuple[str, tuple[int, bool]]] = []
        for hit in hits:
            if not isinstance(hit, Mapping):
                continue
            meta = parse_meta(hit.get("_source"))
            if meta is not None and isinstance(hit.get("_id"), str):
                docs.append((hit["_id"], meta))
        return docs

    async def refresh(self, index: str) -> None:
        await self._call("refresh failed", "POST", f"/{_segment(index)}/_refresh")

    async def set_refresh_interval(self, index: str, interval: str) -> None:
        await self._call(
            "setting the refresh interval failed",
            "PUT",
            f"/{_segment(index)}/_settings",
            body={"index": {"refresh_interval": interval}},
        )

    async def drop(self, index: str) -> None:
        await self._call("index delete failed", "DELETE", f"/{_segment(index)}", missing_ok=True)

    async def bulk(self, body: str, params: Mapping[str, str]) -> Any:
        """One `POST /_bulk`; raises the client's exceptions untranslated for the retry loop."""
        return await self._client.transport.perform_request(
            "POST",
            "/_bulk",
            params=dict(params) or None,
            body=body,
            headers={"content-type": "application/x-ndjson"},
        )


def _is_not_found(reply: Any) -> bool:
    """A 404 reply: an error object, or a document lookup that found nothing."""
    if not isinstance(reply, Mapping):
        return False
    return (reply.get("status") == 404 and "error" in reply) or reply.get("found") is False


def parse_meta(source: Any) -> tuple[int, bool] | None:
    if not isinstance(source, Mapping):
        return None
    generation = source.get("active_generation")
    if not isinstance(generation, int) or isinstance(generation, bool) or generation < 0:
        return None
    return generation, source.get("seeded") is True
