"""Logging configuration: stderr only, `FLUSSO_LOG` directives, text or JSON lines.

`FLUSSO_LOG` (else `RUST_LOG`, which Helm values set) is a comma-separated list of
`level` (flusso's default) or `logger=level`. Noisy client libraries stay at
WARNING unless named. `FLUSSO_LOG_FORMAT=json` switches to one JSON object a line.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

_LEVELS = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "off": logging.CRITICAL + 10,
}
_QUIET = ("opensearch", "urllib3", "httpx", "httpcore", "uvicorn", "uvicorn.error",
          "uvicorn.access", "asyncio", "aiohttp", "alembic", "litestar")

# Attributes every LogRecord has; anything else passed via `extra=` is a structured field.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def parse_directives(spec: str | None) -> tuple[int, dict[str, int]]:
    """`"info,flusso.app=debug"` → (INFO, {"flusso.app": DEBUG}); unparsable parts are ignored."""
    default = logging.INFO
    per_logger: dict[str, int] = {}
    for raw in (spec or "").split(","):
        part = raw.strip()
        if not part:
            continue
        if "=" in part:
            name, _, level = part.partition("=")
            value = _LEVELS.get(level.strip().lower())
            if value is not None and name.strip():
                per_logger[name.strip().replace("::", ".")] = value
        else:
            value = _LEVELS.get(part.lower())
            if value is not None:
                default = value
    return default, per_logger


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


class TextFormatter(logging.Formatter):
    """`<UTC µs timestamp>Z <LEVEL> <logger>: <message> k=v…`."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        extras = " ".join(f"{k}={_render(v)}" for k, v in _fields(record).items())
        line = f"{_timestamp(record)} {record.levelname:>5} {record.name}: {message}"
        if extras:
            line += " " + extras
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, object] = {"message": record.getMessage()}
        fields.update({k: _jsonable(v) for k, v in _fields(record).items()})
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return json.dumps(
            {
                "timestamp": _timestamp(record),
                "level": record.levelname,
                "fields": fields,
                "target": record.name,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )


def _render(value: object) -> str:
    text = str(value)
    return json.dumps(text) if (" " in text or not text) else text


def _jsonable(value: object) -> object:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


class QuietLibraryTracebacks(logging.Filter):
    """Drop the traceback client libraries attach to a warning (opensearch-py logs every
    failed request with one); flusso reports the error itself. Kept when that library's
    logger was turned up to debug."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            record.exc_info
            and record.levelno < logging.ERROR
            and not record.name.startswith("flusso")
            and not logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        ):
            record.exc_info = None
            record.exc_text = None
        return True


def configure_logging(env: Mapping[str, str] | None = None) -> None:
    """Install the stderr handler once per process according to the environment."""
    env = os.environ if env is None else env
    default, per_logger = parse_directives(env.get("FLUSSO_LOG", env.get("RUST_LOG")))
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    as_json = env.get("FLUSSO_LOG_FORMAT", "").strip().lower() == "json"
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter())
    handler.addFilter(QuietLibraryTracebacks())
    root.addHandler(handler)
    root.setLevel(max(default, logging.WARNING))
    logging.getLogger("flusso").setLevel(default)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name, level in per_logger.items():
        logging.getLogger(name).setLevel(level)
