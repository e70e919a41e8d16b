"""The compiled lock (`flusso.lock`): a `Deployment` encoded as canonical JSON and back.

Canonical means sorted keys, two-space indent and a trailing newline, so a committed lock
reads as a diff. The layout follows upstream's in spirit: schemas inlined, enums
externally tagged in snake_case, values in upstream's tagged form, secrets as
`{"env": NAME}` / `{"value": literal}`. Differences: `indexes` is a list (file order is
part of the deployment), aggregates carry `op`, `column`, `value_type` and
`element_type` as written (the model keeps them), and server addresses are strings.

`deployment` holds the envelope and deployment level, `schema_tree` each index schema,
`codec` what both share.
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from flusso.domain.config.lock.codec import Malformed
from flusso.domain.config.lock.deployment import LockFile, decode_config, encode_config
from flusso.domain.config.model import Deployment
from flusso.domain.errors import ConfigError

__all__ = ["FORMAT_VERSION", "decode_lock", "encode_lock"]

FORMAT_VERSION = 1


def encode_lock(deployment: Deployment, *, flusso_version: str) -> str:
    """The lock text for `deployment`: canonical JSON, never an environment value."""
    document = {
        "format_version": FORMAT_VERSION,
        "flusso_version": flusso_version,
        "config": encode_config(deployment),
    }
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def decode_lock(text: str, *, path: str) -> Deployment:
    """The deployment stored in a lock; refuses other format versions and malformed files."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _malformed(path, f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(raw, dict):
        raise _malformed(path, "expected a JSON object at the top level")
    version = raw.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version != FORMAT_VERSION:
        raise ConfigError(
            f"compiled config format version {version} is not supported by this build "
            f"(expected {FORMAT_VERSION}); recompile with a matching flusso",
            hint=f"run `flusso build` to rewrite {path}",
        )
    try:
        lock = LockFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise _malformed(path, f"{where}: {first['msg']}") from None
    try:
        return decode_config(lock.config)
    except Malformed as exc:
        raise _malformed(path, str(exc)) from None


def _malformed(path: str, reason: str) -> ConfigError:
    return ConfigError(
        f"cannot read compiled lock {path}: {reason}",
        hint="rebuild it with `flusso build` (or run without --locked to recompile)",
    )
