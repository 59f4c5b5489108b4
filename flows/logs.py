"""Structured logging: run context on every line, an optional JSON-lines console, no secrets.

* `log_context(load_id=..., practice_ods=...)` sets context variables that every record
  formatted by `JsonLinesFormatter` carries, next to Prefect's flow and task run ids and
  whatever the line passed in `extra` (the GP Connect client passes practice, interaction,
  trace id and HTTP status on every call it logs).
* `JSON_LOGGING_ENVIRONMENT` holds the Prefect logging settings that turn every console line
  into one JSON object; `slotsync serve --log-format json` exports them, so the server, the
  worker and every flow-run process the worker starts log the same way.
* `redact` removes bearer tokens, JWTs and `Authorization` values from every line the
  formatter writes: a last line of defence, since nothing should log them to begin with.

Prefect's logging setup imports this module by name, so it must not import Prefect.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

# Fields copied from a record (when set) into its JSON line, in this order.
CONTEXT_FIELDS = (
    "load_id", "practice_ods", "interaction", "trace_id", "status",
    "flow_name", "flow_run_id", "flow_run_name", "task_run_id", "task_run_name",
)

JSON_LOGGING_ENVIRONMENT = {
    "PREFECT_LOGGING_FORMATTERS_JSON_CLASS": "flows.logs.JsonLinesFormatter",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_FORMATTER": "json",
    "PREFECT_LOGGING_COLORS": "false",
    # slotsync.* loggers (the GP Connect client's per-call lines) reach the console and the
    # Prefect API inside runs, at PREFECT_LOGGING_LEVEL.
    "PREFECT_LOGGING_EXTRA_LOGGERS": "slotsync",
}

_LOAD_ID: ContextVar[str | None] = ContextVar("slotsync_load_id", default=None)
_PRACTICE: ContextVar[str | None] = ContextVar("slotsync_practice_ods", default=None)

_SECRETS = (
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*"),  # a JWT, signed or not
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)[^'\",\s}]+"),
)


def redact(text: str) -> str:
    """`text` with bearer tokens, JWTs and Authorization values replaced by `[redacted]`."""
    for pattern in _SECRETS:
        text = pattern.sub(
            lambda m: (m.group(1) if m.re.groups else "") + "[redacted]", text
        )
    return text


@contextmanager
def log_context(*, load_id: str | None = None, practice_ods: str | None = None) -> Iterator[None]:
    """Tag every record logged inside the block (and tasks started from it) with these ids."""
    tokens = []
    if load_id is not None:
        tokens.append((_LOAD_ID, _LOAD_ID.set(load_id)))
    if practice_ods is not None:
        tokens.append((_PRACTICE, _PRACTICE.set(practice_ods)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def context_fields() -> dict[str, str]:
    """The ids `log_context` set for the current context (for `extra=` on a log call)."""
    fields = {"load_id": _LOAD_ID.get(), "practice_ods": _PRACTICE.get()}
    return {name: value for name, value in fields.items() if value is not None}


class JsonLinesFormatter(logging.Formatter):
    """One compact JSON object per record: time, level, logger, message and run context."""

    def __init__(
        self, fmt: str | None = None, datefmt: str | None = None, style: str = "%",
        validate: bool = True, *, defaults: dict[str, Any] | None = None,
    ) -> None:
        # logging.config passes Prefect's `format: default`; there is no format string here.
        super().__init__()

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        fallbacks = context_fields()
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is None:
                value = fallbacks.get(name)
            if value is not None:
                line[name] = value if isinstance(value, int | float | bool) else redact(str(value))
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(line).decode()


def json_line(logger: str, message: str, level: int = logging.INFO) -> str:
    """One JSON line for a message that does not go through a logger (serve's lifecycle)."""
    return JsonLinesFormatter().format(logging.LogRecord(logger, level, __file__, 0, message, None, None))
