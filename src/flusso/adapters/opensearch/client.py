"""Building the async OpenSearch client the sink talks through: TLS, authentication and
the Serverless dialect come from `security.py`; no retries of the library's own."""

from __future__ import annotations

import logging
from typing import Any

from opensearchpy import AsyncHttpConnection, AsyncOpenSearch, AsyncTransport, JSONSerializer

from flusso.adapters.opensearch.codec import ORJSON_CODEC
from flusso.adapters.opensearch.security import (
    ConnectionSecurity,
    ServerlessTransport,
    auth_headers,
    sigv4_signer,
    tls_context,
)

logger = logging.getLogger(__name__)


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
    *,
    security: ConnectionSecurity | None = None,
) -> AsyncOpenSearch:
    """A client for `url` (its path prefix kept) with the library's own retries off.

    flusso retries bulk requests itself with its own schedule; no other call retries.
    `security` carries every TLS and authentication setting; without it, `username`,
    `password` and `tls_verify` make a basic-auth one. A username alone authenticates
    with an empty password; a password alone means no auth (kept upstream quirk).
    Reads the TLS files and finds AWS credentials now (a bad one raises ConfigError
    naming the key); opens no connection until the first request.
    """
    if security is None:
        security = ConnectionSecurity(username=username, password=password, tls_verify=tls_verify)
    host = url.strip().rstrip("/")
    options: dict[str, Any] = {}
    context = tls_context(security, host)
    if context is not None:
        options["ssl_context"] = context
    else:
        options["ssl_show_warn"] = False
    headers = auth_headers(security)
    if headers:
        options["headers"] = headers
    transport_class: type[AsyncTransport] = AsyncTransport
    if security.aws_sigv4 is not None:
        # Only this connection class calls a request signer; the default one ignores it.
        options["http_auth"] = sigv4_signer(security.aws_sigv4, security.sink)
        options["connection_class"] = AsyncHttpConnection
        if security.aws_sigv4.serverless:
            transport_class = ServerlessTransport
    if security.sink:
        logger.info(
            "opensearch sink connection",
            extra={"sink": security.sink, "tls": _tls_mode(security, context is not None),
                   "auth": security.scheme},
        )
    return AsyncOpenSearch(
        hosts=[host],
        transport_class=transport_class,
        timeout=timeout_secs,
        max_retries=0,
        retry_on_timeout=False,
        serializer=FastJSONSerializer(),
        **options,
    )


def _tls_mode(security: ConnectionSecurity, https: bool) -> str:
    if not https:
        return "off (http)"
    if not security.tls_verify:
        return "unverified"
    trust = "tls_ca_file" if security.tls_ca_file else "system CAs"
    client = ", client certificate" if security.tls_cert_file else ""
    host = "" if security.tls_verify_hostname else ", host name unchecked"
    return f"verified by {trust}{client}{host}"
