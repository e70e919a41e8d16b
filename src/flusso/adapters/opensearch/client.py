"""Building the async OpenSearch client the sink talks through (sinks spec §2.12)."""

from __future__ import annotations

from typing import Any

from opensearchpy import AsyncOpenSearch, JSONSerializer

from flusso.adapters.opensearch.codec import ORJSON_CODEC


class FastJSONSerializer(JSONSerializer):
    """Reads replies with orjson: a bulk reply holds one item per document, and the
    standard library spent about as long parsing it as rendering the documents.

    A reply that may hold an integer beyond 64 bits (which orjson would widen to a
    float) goes to the standard library, as the document codec does.
    """

    def loads(self, s: str) -> Any:
        try:
            return ORJSON_CODEC.loads(s)
        except ValueError:
            return super().loads(s)


def open_opensearch_client(
    url: str,
    username: str | None = None,
    password: str | None = None,
    tls_verify: bool = True,
    timeout_secs: float = 30,
) -> AsyncOpenSearch:
    """A client for `url` (its path prefix kept) with the library's own retries off.

    flusso retries bulk requests itself with its own schedule; no other call retries.
    A username alone authenticates with an empty password; a password alone means no
    auth (kept upstream quirk). Opens no connection until the first request.
    """
    auth = (username, password or "") if username is not None else None
    return AsyncOpenSearch(
        hosts=[url.strip().rstrip("/")],
        http_auth=auth,
        verify_certs=tls_verify,
        ssl_show_warn=False,
        timeout=timeout_secs,
        max_retries=0,
        retry_on_timeout=False,
        serializer=FastJSONSerializer(),
    )
