"""A TLS-terminating, credential-checking reverse proxy in front of osmem-server, for the
connection-security tests.

It serves HTTPS with a certificate from a CA made in the test (trustme), can demand a
client certificate, checks one kind of credentials server-side — basic, API key, bearer,
or an AWS SigV4 signature recomputed with botocore's own signer — and can answer like
OpenSearch Serverless where Serverless refuses a call. Everything else is forwarded to
the upstream server unchanged. Listens on 127.0.0.1 and a free port only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import ssl
from dataclasses import dataclass, field
from typing import Any

import trustme
from aiohttp import ClientSession, web

_HOP_BY_HOP = {
    "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
    "proxy-authorization", "proxy-authenticate", "host", "authorization", "content-length",
}
_SIGV4 = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<signed>[^,]+), ?Signature=(?P<sig>[0-9a-f]{64})$"
)


@dataclass(frozen=True)
class AwsKey:
    """The credentials the proxy accepts a SigV4 signature from."""

    access_key: str
    secret_key: str
    region: str
    service: str
    token: str | None = None


@dataclass
class SecureProxy:
    upstream: str
    server_ssl: ssl.SSLContext | None
    basic: tuple[str, str] | None = None
    api_key: str | None = None
    bearer: str | None = None
    aws: AwsKey | None = None
    serverless: bool = False
    url: str = ""
    seen: list[tuple[str, str, int]] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _session: ClientSession | None = None

    async def start(self) -> SecureProxy:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.server_ssl)
        await site.start()
        port = self._runner.addresses[0][1]
        scheme = "https" if self.server_ssl is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{port}"
        self._session = ClientSession()
        return self

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def statuses(self) -> list[int]:
        return [status for _, _, status in self.seen]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        refusal = self._check_credentials(request, body) or self._serverless_refusal(request, body)
        if refusal is not None:
            self.seen.append((request.method, request.path_qs, refusal.status))
            return refusal
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=body or None, headers=headers
        ) as reply:
            payload = await reply.read()
            self.seen.append((request.method, request.path_qs, reply.status))
            return web.Response(
                status=reply.status,
                body=payload,
                headers={"content-type": reply.headers.get("content-type", "application/json")},
            )

    # -- credentials ---------------------------------------------------------------------

    def _check_credentials(self, request: web.Request, body: bytes) -> web.Response | None:
        given = request.headers.get("authorization", "")
        if self.basic is not None:
            pair = base64.b64encode(f"{self.basic[0]}:{self.basic[1]}".encode()).decode()
            ok = hmac.compare_digest(given, f"Basic {pair}")
        elif self.api_key is not None:
            ok = hmac.compare_digest(given, f"ApiKey {self.api_key}")
        elif self.bearer is not None:
            ok = hmac.compare_digest(given, f"Bearer {self.bearer}")
        elif self.aws is not None:
            problem = verify_sigv4(request, body, self.aws)
            if problem is not None:
                return _json(403, {"message": problem})
            return None
        else:
            return None
        return None if ok else _json(401, {"error": "unauthorized"})

    # -- OpenSearch Serverless -------------------------------------------------------------

    def _serverless_refusal(self, request: web.Request, body: bytes) -> web.Response | None:
        """What a Serverless collection answers to the calls it does not support."""
        if not self.serverless:
            return None
        path = request.path.rstrip("/")
        if request.method == "GET" and path == "":
            return web.Response(status=404)
        if request.method == "POST" and path.endswith("/_refresh"):
            return web.Response(status=404)
        if "refresh" in request.query:
            return _json(400, {"error": {"type": "status_exception",
                                         "reason": "true refresh policy is not supported."}})
        text = body.decode("utf-8", "replace")
        if request.method == "PUT" and any(
            key in text for key in ("number_of_shards", "number_of_replicas", "refresh_interval")
        ):
            return _json(400, {"error": {"type": "illegal_argument_exception",
                                         "reason": "managed index setting is not supported"}})
        return None


def verify_sigv4(request: web.Request, body: bytes, key: AwsKey) -> str | None:
    """None when the request carries a valid SigV4 signature by `key`, else why not.

    The expected signature is recomputed from what arrived, with botocore's own SigV4
    canonicalisation and signing steps.
    """
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    match = _SIGV4.match(request.headers.get("authorization", ""))
    if match is None:
        return "missing or malformed SigV4 authorization header"
    if match["key"] != key.access_key:
        return f"unknown access key {match['key']}"
    if (match["region"], match["service"]) != (key.region, key.service):
        return f"signed for {match['service']} in {match['region']}"
    if request.headers.get("x-amz-content-sha256") != hashlib.sha256(body).hexdigest():
        return "x-amz-content-sha256 does not match the body"
    if key.token is not None and request.headers.get("x-amz-security-token") != key.token:
        return "missing or wrong session token"
    signed = match["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        return "host and x-amz-date must be signed"
    headers = {name: request.headers.get(name, "") for name in signed}
    # The path and query exactly as sent: the client signed this URL.
    url = f"https://{request.host}{request.raw_path}"
    aws_request = AWSRequest(method=request.method, url=url, data=body, headers=headers)
    aws_request.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(Credentials(key.access_key, key.secret_key, key.token), key.service, key.region)
    canonical = signer.canonical_request(aws_request)
    expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
    if not hmac.compare_digest(expected, match["sig"]):
        return "signature does not match"
    return None


def _json(status: int, value: Any) -> web.Response:
    return web.json_response(value, status=status)


def server_context(ca: trustme.CA, *hosts: str, client_ca: trustme.CA | None = None) -> ssl.SSLContext:
    """A server-side TLS context with a certificate for `hosts`; demands a client
    certificate signed by `client_ca` when given."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*hosts).configure_cert(context)
    if client_ca is not None:
        client_ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
    return context
