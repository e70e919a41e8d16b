"""Building the async OpenSearch client the sink talks through (sinks spec §2.12)."""

from __future__ import annotations

from opensearchpy import AsyncOpenSearch


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
    )
