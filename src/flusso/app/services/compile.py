"""Use cases `build` and run's config selection: compile `flusso.toml` into a lock, or load one.

The file system is reached only through the `Files` protocol the entrypoint hands in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flusso.app.ports import Files
from flusso.domain.config.config_file import parse_config, unreadable_file_hint
from flusso.domain.config.lock import decode_lock, encode_lock
from flusso.domain.config.model import Deployment
from flusso.domain.errors import ConfigError, FlussoError

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = "flusso.toml"
DEFAULT_LOCK = "flusso.lock"


@dataclass(frozen=True)
class CompiledPlan:
    """The deployment `run` executes and where it came from."""

    deployment: Deployment
    wrote_lock: bool
    config_path: str | None  # the compiled config; None when loaded from the lock
    lock_path: str


def compile_config(config: str, files: Files) -> Deployment:
    """Read and validate a config and its schemas; no database, no environment."""
    text = _read(
        files, config, what="config file", option="--config / FLUSSO_CONFIG",
        missing_hint="pass --config PATH or set FLUSSO_CONFIG",
    )
    return parse_config(text, path=config, read_schema=files.read_text)


def build_lock(config: str, out: str, files: Files, flusso_version: str) -> Deployment:
    """`flusso build`: compile `config` and write the lock to `out` (a write failure is fatal)."""
    deployment = compile_config(config, files)
    _write_lock(deployment, out, files, flusso_version)
    return deployment


def load_lock(lock: str, files: Files) -> Deployment:
    """Read a compiled lock as-is."""
    text = _read(
        files, lock, what="compiled lock", option="--lock / FLUSSO_LOCK",
        missing_hint="run `flusso build` to create it",
    )
    return decode_lock(text, path=lock)


def _read(files: Files, path: str, *, what: str, option: str, missing_hint: str) -> str:
    """The file's text; a missing or unreadable file is a ConfigError naming it and the fix."""
    try:
        return files.read_text(path)
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} not found", hint=missing_hint) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read {what} {path}: {exc.strerror or exc}",
            hint=unreadable_file_hint(exc, option),
        ) from None


def load_deployment(
    config: str | None, lock: str, locked: bool, files: Files, flusso_version: str
) -> CompiledPlan:
    """Pick run's deployment the way `cargo run` picks what to build.

    `--locked` loads the lock as-is; an existing config (given, or ./flusso.toml) is
    compiled and the lock rewritten; a given config that is missing is an error;
    otherwise the lock is loaded.
    """
    if locked:
        return CompiledPlan(load_lock(lock, files), False, None, lock)
    if config is not None and not files.exists(config):
        raise ConfigError(
            f"config file {config} not found",
            hint="fix --config / FLUSSO_CONFIG, or drop it to run the compiled lock",
        )
    source = config if config is not None else DEFAULT_CONFIG
    if config is not None or files.exists(DEFAULT_CONFIG):
        deployment = compile_config(source, files)
        _write_lock(deployment, lock, files, flusso_version)
        logger.info(
            "compiled config and wrote lock (config=%s, lock=%s, indexes=%d)",
            source, lock, len(deployment.indexes),
        )
        return CompiledPlan(deployment, True, source, lock)
    try:
        deployment = load_lock(lock, files)
    except FlussoError as exc:
        raise FlussoError(
            f"no {DEFAULT_CONFIG} to compile and no compiled lock at {lock}; "
            "create a config or build a lock first"
        ) from exc
    return CompiledPlan(deployment, False, None, lock)


def read_deployment(config: str | None, lock: str | None, files: Files) -> Deployment:
    """What a read-only command (`verify`) looks at; it never writes the lock.

    A given config is compiled, else a given lock is loaded, else ./flusso.toml is
    compiled when present, else ./flusso.lock is loaded.
    """
    if config is not None:
        return compile_config(config, files)
    if lock is not None:
        return load_lock(lock, files)
    if files.exists(DEFAULT_CONFIG):
        return compile_config(DEFAULT_CONFIG, files)
    try:
        return load_lock(DEFAULT_LOCK, files)
    except FlussoError as exc:
        raise FlussoError(
            f"no {DEFAULT_CONFIG} to compile and no compiled lock at {DEFAULT_LOCK}",
            hint="pass --config PATH or --lock PATH (FLUSSO_CONFIG / FLUSSO_LOCK)",
        ) from exc


def _write_lock(deployment: Deployment, out: str, files: Files, flusso_version: str) -> None:
    text = encode_lock(deployment, flusso_version=flusso_version)
    try:
        files.write_text(out, text)
    except OSError as exc:
        raise FlussoError(
            f"writing compiled lock to {out}: {exc.strerror or exc}",
            hint="write it somewhere writable: `flusso build --out PATH`, or "
            "`flusso run --lock PATH` (FLUSSO_LOCK)",
        ) from exc
