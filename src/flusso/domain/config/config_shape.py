"""The shape of `flusso.toml`: pydantic models that mirror the TOML and nothing more.

Validation of values across keys (names, duplicates, addresses) and conversion to the
model happen in `config_file`; turning pydantic's errors into messages in the config's
own words happens in `config_problems`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    field_validator,
)
from pydantic_core import PydanticCustomError

from flusso.domain.config.model import OnError, Secret
from flusso.domain.config.sink_security import AwsSigV4File, SecretRef

U32 = 4_294_967_295
U64 = 18_446_744_073_709_551_615

ENV_OR_VALUE_SHAPES = 'a string value or an env reference `{ env = "VAR" }`'
CONNECTION_SHAPES = (
    'a connection URL string, an env reference `{ env = "VAR" }`, '
    "or a connection-parts table `{ host, port, user, password, database }`"
)

def toml_kind(value: object) -> str:
    """A human name for a TOML value, for the "found …" half of a message."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an empty table" if not value else "a table"
    return "a datetime"  # tomllib's only other kinds are date/time/datetime


def _env_or_value(value: object) -> Secret:
    if isinstance(value, str):
        return Secret(value=value)
    if isinstance(value, dict) and value:
        first = next(iter(value))
        if first != "env":
            raise PydanticCustomError(
                "env_or_value",
                "unknown key `{key}` — expected {shapes}",
                {"key": first, "shapes": ENV_OR_VALUE_SHAPES},
            )
        extra = next((k for k in value if k != "env"), None)
        if extra is not None:
            raise PydanticCustomError(
                "env_or_value",
                "unexpected key `{key}` in env reference — write it as `{shape}`",
                {"key": extra, "shape": '{ env = "VAR" }'},
            )
        name = value["env"]
        if not isinstance(name, str):
            raise PydanticCustomError(
                "env_or_value",
                "`env` must be a string naming an environment variable, found {found}",
                {"found": toml_kind(name)},
            )
        return Secret(env=name)
    raise PydanticCustomError(
        "env_or_value",
        "expected {shapes}, found {found}",
        {"shapes": ENV_OR_VALUE_SHAPES, "found": toml_kind(value)},
    )


EnvOrValue = Annotated[Secret, PlainValidator(_env_or_value)]


class TomlModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, arbitrary_types_allowed=True
    )


class PartsFile(TomlModel):
    host: str = "127.0.0.1"
    port: int = Field(5432, ge=0, le=65535)
    user: str = "postgres"
    password: EnvOrValue | None = None
    database: str


def _connection_tag(value: object) -> str:
    if isinstance(value, dict) and "env" not in value:
        return "parts"
    return "url"


ConnectionFile = Annotated[
    Annotated[EnvOrValue, Tag("url")] | Annotated[PartsFile, Tag("parts")],
    Discriminator(_connection_tag),
]


class SourceFile(TomlModel):
    type: Literal["postgres"]
    connection_url: ConnectionFile | None = None
    manage_publication: bool = True

    @field_validator("connection_url", mode="before")
    @classmethod
    def _shape(cls, value: object) -> object:
        if value is not None and not isinstance(value, str | dict):
            raise PydanticCustomError(
                "connection_url",
                "expected {shapes}, found {found}",
                {"shapes": CONNECTION_SHAPES, "found": toml_kind(value)},
            )
        return value


class OpenSearchFile(TomlModel):
    type: Literal["opensearch"]
    url: EnvOrValue
    username: EnvOrValue | None = None
    password: EnvOrValue | None = None
    tls_verify: bool = True
    batch_size: int = Field(1000, ge=0, le=U32)
    max_bytes: int = Field(10_485_760, ge=0, le=U64)
    timeout_secs: int = Field(30, ge=0, le=U64)
    max_retries: int = Field(3, ge=0, le=U32)
    pipeline: str | None = None
    number_of_shards: int = Field(1, ge=0, le=U32)
    number_of_replicas: int = Field(1, ge=0, le=U32)
    refresh_interval: str = "10s"
    text_analysis: Literal["builtin", "icu"] = "builtin"
    auto_subfields: bool = True
    # Connection security (sink_security.py converts and checks them).
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_verify_hostname: bool = True
    api_key: SecretRef | None = None
    bearer_token: SecretRef | None = None
    aws_sigv4: AwsSigV4File | None = None


class StdoutFile(TomlModel):
    type: Literal["stdout"]
    pretty: bool = False


SinkFile = Annotated[OpenSearchFile | StdoutFile, Field(discriminator="type")]


class IndexFile(TomlModel):
    name: str
    schema_: str = Field(alias="schema")
    enabled: bool
    on_error: OnError | None = None


class ServerFile(TomlModel):
    """`[server]`, and the same shape in the lock."""

    public_address: str | None = None
    private_address: str | None = None


class ConfigFile(TomlModel):
    source: SourceFile
    sinks: dict[str, SinkFile] = {}
    index: list[IndexFile] = []
    on_error: OnError = "stop"
    prefix: str = ""
    server: ServerFile | None = None


def _keys(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(info.alias or name for name, info in model.model_fields.items())


TOP_LEVEL_KEYS = _keys(ConfigFile)
SOURCE_KEYS = _keys(SourceFile)
CONNECTION_PART_KEYS = _keys(PartsFile)
OPENSEARCH_SINK_KEYS = _keys(OpenSearchFile)
STDOUT_SINK_KEYS = _keys(StdoutFile)
SINK_TYPES: tuple[str, ...] = ("opensearch", "stdout")
SOURCE_TYPES: tuple[str, ...] = ("postgres",)
INDEX_KEYS = _keys(IndexFile)
SERVER_KEYS = _keys(ServerFile)
"""The key sets the loader accepts; the `flusso schema config` drift test compares against them."""

