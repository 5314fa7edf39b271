"""Bytes on the wire to contract models and back, with upcasting of older payloads in one place."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from session_contracts.models import SCHEMA_VERSION, SessionEvent, TerminateSessions

MAX_RECORD_BYTES = 64 * 1024
"""Larger records are refused: no contract message comes near this size."""

_events: TypeAdapter[SessionEvent] = TypeAdapter(SessionEvent)
_commands: TypeAdapter[TerminateSessions] = TypeAdapter(TerminateSessions)

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[int, Upcaster] = {}
"""`UPCASTERS[n]` turns a payload of schema_version n into one of version n + 1.

Version 1 is the first published version, so there is nothing to upcast yet; a future
version 2 registers `UPCASTERS[1]` here and every consumer keeps reading old records.
"""


class DecodeError(ValueError):
    """A record that breaks the contract; `reason` says why, for the dead-letter topic."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode(message: BaseModel) -> bytes:
    """The UTF-8 JSON body of one Kafka record."""
    return message.model_dump_json(exclude_none=True).encode()


def _payload(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        raise DecodeError("empty record (no value)")
    if len(raw) > MAX_RECORD_BYTES:
        raise DecodeError(f"record of {len(raw)} bytes exceeds the {MAX_RECORD_BYTES} byte limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        payload = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise DecodeError(f"malformed JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise DecodeError(f"expected a JSON object, got {type(payload).__name__}")
    return upcast(payload)


def upcast(payload: dict[str, Any]) -> dict[str, Any]:
    """Bring a payload of any known schema_version up to the current one."""
    version = payload.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise DecodeError(f"schema_version must be an integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise DecodeError(
            f"schema_version {version} is newer than this consumer reads ({SCHEMA_VERSION})"
        )
    while version < SCHEMA_VERSION:
        step = UPCASTERS.get(version)
        if step is None:
            raise DecodeError(f"schema_version {version} is unknown")
        payload = step(payload)
        version += 1
        payload["schema_version"] = version
    return payload


def _explain(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "record"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _current(raw: bytes | None, adapter: TypeAdapter[Any]) -> Any:
    """Fast path: a well-formed record of the current version, parsed in one step (no dict).

    Anything else (older versions to upcast, bad input to explain) returns None and takes the
    slow path, which gives the same result or the precise reason; `schema_version` must have
    been given explicitly, as the slow path insists.
    """
    if raw is None or len(raw) > MAX_RECORD_BYTES:
        return None
    try:
        message = adapter.validate_json(raw)
    except ValidationError:
        return None
    return message if "schema_version" in message.model_fields_set else None


def decode_event(raw: bytes | None) -> SessionEvent:
    """Parse one `sessions.events` record, or raise DecodeError naming the problem."""
    fast: SessionEvent | None = _current(raw, _events)
    if fast is not None:
        return fast
    payload = _payload(raw)
    kind = payload.get("type")
    if kind not in {"session.created", "session.activity", "session.terminated", "session.expired"}:
        raise DecodeError(f"unknown event type {kind!r}")
    try:
        return _events.validate_python(payload)
    except ValidationError as exc:
        raise DecodeError(f"{kind} breaks the contract: {_explain(exc)}") from None


def decode_command(raw: bytes | None) -> TerminateSessions:
    """Parse one `sessions.commands` record, or raise DecodeError naming the problem."""
    fast: TerminateSessions | None = _current(raw, _commands)
    if fast is not None:
        return fast
    payload = _payload(raw)
    kind = payload.get("type")
    if kind != "sessions.terminate":
        raise DecodeError(f"unknown command type {kind!r}")
    try:
        return _commands.validate_python(payload)
    except ValidationError as exc:
        raise DecodeError(f"{kind} breaks the contract: {_explain(exc)}") from None
