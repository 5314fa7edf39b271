"""Logging that stays readable while the broker is away.

While a broker is unreachable, aiokafka logs the same connection errors every retry backoff
(about a hundred lines a second for a registry's few clients). `quiet_kafka_reconnects` keeps
the first of each message and then one per `every_seconds`, with a count of those held back.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from pythonjsonlogger.json import JsonFormatter

KAFKA_LOGGERS = (
    "aiokafka",  # aiokafka/client.py: "Unable connect to node", "Unable to update metadata"
    "aiokafka.admin.client",
    "aiokafka.conn",
    "aiokafka.cluster",
    "aiokafka.consumer.consumer",
    "aiokafka.consumer.fetcher",
    "aiokafka.consumer.group_coordinator",
    "aiokafka.producer.producer",
    "aiokafka.producer.sender",
)


class RepeatFilter(logging.Filter):
    """Passes a message (by logger and format string) at most once per `every_seconds`."""

    def __init__(self, every_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._every = every_seconds
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._every:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like this in the last {self._every:.0f} s)"
        return True


def quiet_kafka_reconnects(every_seconds: float = 30.0) -> None:
    """Install one `RepeatFilter` on aiokafka's loggers (filters are not inherited by children).

    Idempotent: a process that builds several apps installs it once.
    """
    repeat = RepeatFilter(every_seconds)
    for name in KAFKA_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RepeatFilter) for f in logger.filters):
            logger.addFilter(repeat)


class SaslRedaction(logging.Filter):
    """Replaces a SASL request or response aiokafka logs at DEBUG by its name: its bytes are a
    PLAIN password, an OAUTHBEARER token, or a SCRAM exchange (salt, nonce and proof: enough
    to guess the password offline). `SESSIONS_LOG_LEVEL=DEBUG`, which the runbooks suggest for
    tracing, wrote them to the log (a review, stop 70)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(_is_sasl(arg) for arg in args):
            record.args = tuple(
                f"<{type(arg).__name__}: not logged, it carries credentials>"
                if _is_sasl(arg)
                else arg
                for arg in args
            )
        return True


def _is_sasl(value: object) -> bool:
    """A SASL request or response struct (an error named Sasl… carries no secret)."""
    name = type(value).__name__
    return name.startswith("Sasl") and ("Request" in name or "Response" in name)


def redact_sasl_exchanges() -> None:
    """Install one `SaslRedaction` on aiokafka's connection logger (idempotent). Every client
    the project builds calls it (`kafka_clients.security_options`, which `connection_failure`
    calls too), so a host process mounting the gateway at DEBUG is covered too."""
    logger = logging.getLogger("aiokafka.conn")
    if not any(isinstance(f, SaslRedaction) for f in logger.filters):
        logger.addFilter(SaslRedaction())


LOG_FIELDS = ("tenant_id", "command_id", "session_handle")
"""What a log line carries as fields when the code that logs knows it (`extra=`, `log_context`)."""

_context: ContextVar[tuple[tuple[str, str], ...]] = ContextVar(
    "session_control_log_context", default=()
)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Every line logged inside (in this task) carries these `LOG_FIELDS` as fields."""
    unknown = set(fields) - set(LOG_FIELDS)
    if unknown:
        raise ValueError(f"log_context: unknown fields {sorted(unknown)}; known: {LOG_FIELDS}")
    merged = {**dict(_context.get()), **{k: str(v) for k, v in fields.items()}}
    token = _context.set(tuple(merged.items()))
    try:
        yield
    finally:
        _context.reset(token)


class ContextFields(logging.Filter):
    """Puts the `log_context` fields on each record (a field given with `extra=` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def configure_logging(log_format: str = "text", level: int = logging.INFO) -> None:
    """The process's root logging: plain text (the local default) or one JSON object a line.

    JSON lines (python-json-logger) carry `time`, `level`, `logger`, `message`, the exception
    when there is one, and `tenant_id`, `command_id`, `session_handle` when the code logging
    knows them. Replaces the root logger's handlers (call once, at process start).
    """
    handler = logging.StreamHandler()
    handler.addFilter(ContextFields())
    if log_format == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    elif log_format == "text":
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    else:
        raise ValueError(f"log format {log_format!r}: use 'text' or 'json'")
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class LogSettings(BaseSettings):
    """How a process logs (env `SESSIONS_LOG_FORMAT`, `SESSIONS_LOG_LEVEL`), read at its start."""

    model_config = SettingsConfigDict(
        env_prefix="SESSIONS_", extra="ignore", hide_input_in_errors=True
    )

    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text: one readable line (the local default); json: one JSON object a "
        "line with tenant_id, command_id and session_handle as fields, for a log pipeline.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    def apply(self) -> None:
        """Configure the root logger with these settings."""
        configure_logging(self.log_format, logging.getLevelNamesMapping()[self.log_level])
