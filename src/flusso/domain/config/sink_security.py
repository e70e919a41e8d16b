"""The connection-security keys of an OpenSearch sink in `flusso.toml`: TLS files, API key,
bearer token and AWS SigV4 — their file shapes and their conversion to `SinkSecurity`.

Pure: relative paths are joined to the config file's directory, nothing is read here.
"""

from __future__ import annotations

import os.path
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, PlainValidator
from pydantic_core import PydanticCustomError

from flusso.domain.config.model import AwsSigV4, Secret, SinkSecurity
from flusso.domain.errors import ConfigError

SECRET_REF_SHAPES = 'an env reference `{ env = "VAR" }` or a file reference `{ file = "/path" }`'


def _secret_ref(value: object) -> Secret:
    """`{ env = "VAR" }` or `{ file = "/path" }`; a literal string is refused on purpose."""
    if isinstance(value, str):
        raise PydanticCustomError(
            "secret_ref",
            "this secret may not be written into flusso.toml (it would land in the lock); "
            "use {shapes}",
            {"shapes": SECRET_REF_SHAPES},
        )
    if not isinstance(value, dict) or len(value) != 1:
        raise PydanticCustomError(
            "secret_ref", "expected {shapes}", {"shapes": SECRET_REF_SHAPES}
        )
    ((key, target),) = value.items()
    if key not in ("env", "file"):
        raise PydanticCustomError(
            "secret_ref",
            "unknown key `{key}` — expected {shapes}",
            {"key": key, "shapes": SECRET_REF_SHAPES},
        )
    if not isinstance(target, str) or not target.strip():
        raise PydanticCustomError(
            "secret_ref",
            "`{key}` must be a non-empty string",
            {"key": key},
        )
    return Secret(env=target) if key == "env" else Secret(file=target)


SecretRef = Annotated[Secret, PlainValidator(_secret_ref)]


class _Shape(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, arbitrary_types_allowed=True
    )


class AwsSigV4File(_Shape):
    region: str
    service: Literal["es", "aoss"] = "es"


class SecurityKeys(Protocol):
    """The security keys of an `[sinks.<name>]` OpenSearch table, as the loader read them."""

    tls_ca_file: str | None
    tls_cert_file: str | None
    tls_key_file: str | None
    tls_verify_hostname: bool
    api_key: Secret | None
    bearer_token: Secret | None
    aws_sigv4: AwsSigV4File | None


AWS_SIGV4_KEYS: tuple[str, ...] = tuple(AwsSigV4File.model_fields)


def convert_security(
    file: SecurityKeys, *, basic_auth: bool, section: str, path: str
) -> tuple[SinkSecurity, list[ConfigError]]:
    """The sink's `SinkSecurity` and the problems found (both TLS and auth are checked)."""
    problems: list[ConfigError] = []

    def absolute(value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        return value if os.path.isabs(value) else os.path.join(os.path.dirname(path), value)

    def secret(value: Secret | None) -> Secret | None:
        if value is None or value.file is None:
            return value
        return Secret(file=absolute(value.file))

    for key in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
        value = getattr(file, key)
        if value is not None and not value.strip():
            problems.append(
                ConfigError(
                    f"{path}: {section} {key}: empty path",
                    hint=f"remove `{key}` or name a PEM file",
                )
            )
    if file.tls_key_file is not None and file.tls_cert_file is None:
        problems.append(
            ConfigError(
                f"{path}: {section}: tls_key_file is set without tls_cert_file",
                hint="a client key needs its certificate: set tls_cert_file as well",
            )
        )
    schemes = [
        name
        for name, present in (
            ("username/password", basic_auth),
            ("api_key", file.api_key is not None),
            ("bearer_token", file.bearer_token is not None),
            ("aws_sigv4", file.aws_sigv4 is not None),
        )
        if present
    ]
    if len(schemes) > 1:
        problems.append(
            ConfigError(
                f"{path}: {section}: more than one authentication scheme: {', '.join(schemes)}",
                hint="a sink authenticates one way: keep exactly one of them",
            )
        )
    aws: AwsSigV4 | None = None
    if file.aws_sigv4 is not None:
        region = file.aws_sigv4.region.strip()
        if not region:
            problems.append(
                ConfigError(
                    f"{path}: {section} aws_sigv4.region: empty region",
                    hint='name the region of the domain or collection, e.g. region = "eu-west-1"',
                )
            )
        aws = AwsSigV4(region=region, service=file.aws_sigv4.service)
    security = SinkSecurity(
        tls_ca_file=absolute(file.tls_ca_file),
        tls_cert_file=absolute(file.tls_cert_file),
        tls_key_file=absolute(file.tls_key_file),
        tls_verify_hostname=file.tls_verify_hostname,
        api_key=secret(file.api_key),
        bearer_token=secret(file.bearer_token),
        aws_sigv4=aws,
    )
    return security, problems
