"""How flusso's OpenSearch client proves who it is and checks who it talks to: the TLS
context (CA bundle, client certificate, host-name check), the authentication header
(basic, API key, bearer token) or AWS SigV4 signing, and the Serverless dialect.

Bad settings fail here, before any request, with an error naming the sink's key.
Secrets arrive resolved and never reach a message or a log line.
"""

from __future__ import annotations

import base64
import copy
import logging
import ssl
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from opensearchpy import AsyncTransport

from flusso.domain.config.model import AwsSigV4, OpenSearchSinkConfig
from flusso.domain.config.secrets import ResolvedOpenSearch
from flusso.domain.errors import ConfigError

logger = logging.getLogger(__name__)

AWS_EXTRA_HINT = "install the AWS extra: pip install 'flusso[aws]'"


@dataclass(frozen=True)
class ConnectionSecurity:
    """One sink's resolved TLS and authentication settings (secrets included, never shown)."""

    sink: str = ""
    tls_verify: bool = True
    tls_verify_hostname: bool = True
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    bearer_token: str | None = field(default=None, repr=False)
    aws_sigv4: AwsSigV4 | None = None

    @property
    def table(self) -> str:
        return f"[sinks.{self.sink}]" if self.sink else "the sink's config"

    @property
    def scheme(self) -> str:
        """The authentication in use, for log lines: `basic`, `api_key`, … or `none`."""
        if self.aws_sigv4 is not None:
            return f"aws_sigv4 ({self.aws_sigv4.service}, {self.aws_sigv4.region})"
        if self.api_key is not None:
            return "api_key"
        if self.bearer_token is not None:
            return "bearer_token"
        if self.username is not None:
            return "basic"
        return "none"


def connection_security(
    name: str, config: OpenSearchSinkConfig, resolved: ResolvedOpenSearch
) -> ConnectionSecurity:
    """The sink's TLS and authentication settings with its secrets resolved."""
    security = config.security
    return ConnectionSecurity(
        sink=name,
        tls_verify=config.tls_verify,
        tls_verify_hostname=security.tls_verify_hostname,
        tls_ca_file=security.tls_ca_file,
        tls_cert_file=security.tls_cert_file,
        tls_key_file=security.tls_key_file,
        username=resolved.username,
        password=resolved.password,
        api_key=resolved.api_key,
        bearer_token=resolved.bearer_token,
        aws_sigv4=security.aws_sigv4,
    )


def read_secret_file(path: str) -> str:
    """A `{ file = "…" }` secret's text; read at each sink construction, so a rotated file
    is picked up when the pipeline restarts."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except UnicodeDecodeError:
        raise OSError(0, "not UTF-8 text") from None


def tls_context(security: ConnectionSecurity, url: str) -> ssl.SSLContext | None:
    """The TLS context for an `https://` url (None for plain HTTP); reads the PEM files now.

    Turning a check off logs a WARNING once per client: it is never what production wants.
    """
    if urlsplit(url).scheme.lower() != "https":
        return None
    table = security.table
    if security.tls_ca_file is None:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    else:
        # The bundle replaces the system store: a private CA is trusted for this cluster
        # and nothing else is.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            context.load_verify_locations(cafile=security.tls_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"{table} tls_ca_file: cannot load CA bundle {security.tls_ca_file}: "
                f"{_reason(exc)}",
                hint="point tls_ca_file at a readable PEM file of CA certificates",
            ) from None
    if security.tls_cert_file is not None:
        try:
            context.load_cert_chain(security.tls_cert_file, security.tls_key_file)
        except (OSError, ssl.SSLError) as exc:
            keys = "tls_cert_file" + (" / tls_key_file" if security.tls_key_file else "")
            raise ConfigError(
                f"{table} {keys}: cannot load the client certificate "
                f"{security.tls_cert_file}"
                + (f" with key {security.tls_key_file}" if security.tls_key_file else "")
                + f": {_reason(exc)}",
                hint="both must be readable PEM files, the key unencrypted and matching "
                "the certificate (a certificate file may also hold its key)",
            ) from None
    if not security.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        logger.warning(
            "TLS certificate checks are OFF for sink %s (tls_verify = false): anyone on the "
            "network path can read and change what flusso sends; use it for testing only",
            security.sink or "-",
        )
    elif not security.tls_verify_hostname:
        context.check_hostname = False
        logger.warning(
            "TLS host-name checks are OFF for sink %s (tls_verify_hostname = false): any "
            "certificate the CA signed is accepted for this cluster, whatever host it names",
            security.sink or "-",
        )
    return context


def auth_headers(security: ConnectionSecurity) -> dict[str, str]:
    """Static `Authorization` header for basic, API-key or bearer authentication."""
    if security.api_key is not None:
        return {"authorization": f"ApiKey {security.api_key}"}
    if security.bearer_token is not None:
        return {"authorization": f"Bearer {security.bearer_token}"}
    if security.username is not None:
        pair = f"{security.username}:{security.password or ''}".encode()
        return {"authorization": f"Basic {base64.b64encode(pair).decode('ascii')}"}
    return {}


SignRequest = Callable[..., dict[str, str]]


def sigv4_signer(aws: AwsSigV4, sink: str = "") -> SignRequest:
    """A request signer over the standard AWS credential chain (env, profile, SSO, web
    identity, container and instance roles), refreshed by botocore as they expire.

    Fails now, naming the sink, when botocore is missing or no credentials are found.
    """
    table = f"[sinks.{sink}]" if sink else "the sink's config"
    try:
        import botocore.session
        from opensearchpy.helpers.asyncsigner import AWSV4SignerAsyncAuth
    except ImportError:
        raise ConfigError(
            f"{table} aws_sigv4: AWS request signing needs botocore, which is not installed",
            hint=AWS_EXTRA_HINT,
        ) from None
    credentials = botocore.session.get_session().get_credentials()
    if credentials is None:
        raise ConfigError(
            f"{table} aws_sigv4: no AWS credentials found for service "
            f"{aws.service} in {aws.region}",
            hint="give flusso credentials the standard way: AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, a web identity token (IRSA) or an "
            "instance/task role",
        )
    return AWSV4SignerAsyncAuth(credentials, aws.region, aws.service)


# ---------------------------------------------------------------------------
# OpenSearch Serverless
# ---------------------------------------------------------------------------

_SERVERLESS_MANAGED_SETTINGS = ("number_of_shards", "number_of_replicas", "refresh_interval")


class ServerlessTransport(AsyncTransport):
    """The transport for an OpenSearch Serverless collection (`aws_sigv4.service = "aoss"`).

    Serverless manages shards, replicas and refreshes itself and refuses the calls that
    set them: `POST <index>/_refresh` answers 404 and `refresh=true` answers 400. So
    refresh calls are answered here without a request, the `refresh` parameter and the
    shard, replica and refresh-interval settings are left out, and everything else goes
    through unchanged. New writes become searchable on the collection's own schedule.
    """

    async def perform_request(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        timeout: int | float | None = None,
        ignore: Collection[int] = (),
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        request = plan_serverless_request(method, url, params, body)
        if request is None:
            logger.debug("serverless: %s %s answered locally (managed by the collection)", method, url)
            return _ACKNOWLEDGED.get(_last_segment(url), {"acknowledged": True})
        params, body = request
        return await super().perform_request(
            method, url, params=params, body=body, timeout=timeout, ignore=ignore,
            headers=headers,
        )


_ACKNOWLEDGED: dict[str, Any] = {
    "_refresh": {"_shards": {"total": 0, "successful": 0, "failed": 0}},
}


def _last_segment(url: str) -> str:
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def plan_serverless_request(
    method: str, url: str, params: Mapping[str, Any] | None, body: Any
) -> tuple[dict[str, Any] | None, Any] | None:
    """The (params, body) to send to Serverless instead, or None when nothing is sent."""
    path = url.split("?", 1)[0].rstrip("/")
    segments = [s for s in path.split("/") if s]
    if method.upper() == "POST" and segments[-1:] == ["_refresh"]:
        return None
    kept = {k: v for k, v in (params or {}).items() if k != "refresh"} or None
    if method.upper() == "PUT" and isinstance(body, Mapping):
        if len(segments) == 1 and not segments[0].startswith("_"):
            return kept, _without_managed_settings(body, nested="settings")
        if len(segments) == 2 and segments[1] == "_settings":
            trimmed = _without_managed_settings({"settings": body}, nested="settings")
            remaining = trimmed.get("settings", {})
            if not remaining:
                return None
            return kept, remaining
    return kept, body


def _without_managed_settings(body: Mapping[str, Any], *, nested: str) -> dict[str, Any]:
    result = copy.deepcopy(dict(body))
    settings = result.get(nested)
    if not isinstance(settings, dict):
        return result
    for key in _SERVERLESS_MANAGED_SETTINGS:
        settings.pop(key, None)
        settings.pop(f"index.{key}", None)
    index = settings.get("index")
    if isinstance(index, dict):
        for key in _SERVERLESS_MANAGED_SETTINGS:
            index.pop(key, None)
        if not index:
            settings.pop("index")
    if not settings:
        result.pop(nested)
    return result


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
