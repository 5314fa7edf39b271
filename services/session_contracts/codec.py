"""Bytes on the wire to contract models and back: one decoder for every topic's records.

`decode(kind, raw)` is the only way a record is read: the size limit, UTF-8, JSON, an object,
`schema_version` upcast to the current one (the one place upcasters live), the `type` the
kind carries, then the model. It is total: whatever the bytes, it returns a model or raises
`DecodeError` with a reason (the dead-letter topic's `dlq.reason`), never another exception.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import SchemaValidator

from session_contracts.escaping import escape_reason
from session_contracts.fast_path import fast_validator
from session_contracts.handles import TENANT_ID, V1_ID_MAX, session_handle
from session_contracts.models import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    SessionEvent,
    SessionRevoked,
    SessionSettingsChanged,
    TerminateSessions,
)

MAX_RECORD_BYTES = 64 * 1024
"""Larger records are refused: no contract message comes near this size."""

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

_V1_SESSION_ID = re.compile(rf"[\x21-\x7e]{{1,{V1_ID_MAX}}}", re.ASCII)
"""A v1 session id: the credential itself, 1-128 printable ASCII characters."""
_V1_SESSION_TYPES = frozenset(
    {
        "session.created",
        "session.activity",
        "session.terminated",
        "session.expired",
        "session.revoked",
    }
)


def _v1_handle(tenant_id: object, session_id: object, where: str) -> str:
    if not isinstance(tenant_id, str) or not TENANT_ID.fullmatch(tenant_id):
        raise DecodeError(f"{where}: a v1 session id needs a valid tenant_id to become a handle")
    if not isinstance(session_id, str) or not _V1_SESSION_ID.fullmatch(session_id):
        raise DecodeError(f"{where}: not a v1 session id (1-128 printable ASCII characters)")
    return session_handle(tenant_id, session_id)


def upcast_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """Contract v1 to v2: every session id (the credential in v1) becomes its handle.

    `session_handle(tenant_id, v1 id)` is what `SessionEventPublisher` and the gateway derive
    from the same credential, so records written before v2 name the sessions gateways see
    after it. Events and revocations: `session_id`; commands: each of `session_ids`. A v1
    command's `filter.session_id` (a substring of credentials) has no v2 meaning (a substring
    of a credential says nothing of its handle; matched against handles it would select
    sessions nobody chose): the command is refused, so it is dead-lettered with this reason.
    Settings records change only their version.
    """
    out = dict(payload)
    kind = out.get("type")
    if not isinstance(kind, str):
        return out  # the type check after upcasting says what is wrong
    tenant_id = out.get("tenant_id")
    if kind in _V1_SESSION_TYPES and "session_id" in out:
        out["session_id"] = _v1_handle(tenant_id, out["session_id"], f"{kind}.session_id")
    elif kind == "sessions.terminate":
        ids = out.get("session_ids")
        if isinstance(ids, list):
            out["session_ids"] = [
                _v1_handle(tenant_id, one, f"sessions.terminate.session_ids.{n}")
                for n, one in enumerate(ids)
            ]
        target = out.get("filter")
        if isinstance(target, dict) and target.get("session_id") is not None:
            raise DecodeError(
                "sessions.terminate.filter.session_id: a v1 command's session id substring "
                "matches credentials, which v2 does not keep; the command is not applied "
                "(send it again by handle)"
            )
    return out


def upcast_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """Contract v2 to v3: a command by filter gains `confirmed_at`, the moment of the count.

    v3 ends only sessions created no later than `confirmed_at`; a v2 command by filter was
    resolved against the sessions created no later than `requested_at`, so that is its
    `confirmed_at` and it ends exactly what it ended under v2. Every other record changes only
    its version.

    A v2 (or v1) record carrying `confirmed_at` is refused: no v2 reader took a field v2 did not
    have (its models forbid extra fields), and a filter's bound taken from it would end
    something other than what v2 ended (v3 registries before stop 73 kept it).
    """
    if "confirmed_at" in payload:
        raise DecodeError(
            "confirmed_at: a record of schema_version 1 or 2 has no confirmed_at (v3 added "
            "it); write the record as v3"
        )
    out = dict(payload)
    if out.get("type") == "sessions.terminate" and out.get("filter") is not None:
        out["confirmed_at"] = out.get("requested_at")
    return out


UPCASTERS: dict[int, Upcaster] = {1: upcast_v1, 2: upcast_v2}
"""`UPCASTERS[n]` turns a payload of schema_version n into one of version n + 1.

The one place old records are read: v1 (session ids were credentials) becomes v2 (handles),
v2 (a filter resolved at requested_at) becomes v3 (`confirmed_at` bounds what a filter ends).
"""

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")


class DecodeError(ValueError):
    """A record that breaks the contract; `reason` says why, for the dead-letter topic.

    The reason may quote the record (a field name, a character): it is escaped and bounded
    (`escape_reason`) here, so whoever logs or dead-letters it writes nothing raw.
    """

    def __init__(self, reason: str) -> None:
        reason = escape_reason(reason)
        super().__init__(reason)
        self.reason = reason


class NewerVersion(DecodeError):
    """A record of a `schema_version` newer than this reader's: written by a service upgraded
    before this one. Not a hostile record: a reader that must not miss it (a gateway reading a
    revocation) says so apart from the rest."""


@dataclass(frozen=True, eq=False)
class RecordKind(Generic[M]):
    """What one topic carries: the `type` values of its records and the model they make."""

    noun: str
    """How reasons name it: `unknown event type 'session.renamed'`."""
    types: frozenset[str]
    adapter: TypeAdapter[M]
    fast: SchemaValidator
    """The fast path's validator (`session_contracts.fast_path`): a subset of what `adapter`
    accepts, the same models for it."""


def _kind(noun: str, models: Iterable[type[BaseModel]], adapter: TypeAdapter[M]) -> RecordKind[M]:
    types = frozenset(m.model_fields["type"].default for m in models)
    return RecordKind(noun, types, adapter, fast_validator(adapter))


EVENTS: RecordKind[SessionEvent] = _kind("event", EVENT_TYPES, TypeAdapter(SessionEvent))
"""`sessions.events`: created, activity, terminated, expired."""
COMMANDS = _kind("command", [TerminateSessions], TypeAdapter(TerminateSessions))
"""`sessions.commands`: `sessions.terminate`."""
REVOCATIONS = _kind("revocation", [SessionRevoked], TypeAdapter(SessionRevoked))
"""`sessions.revocations`: `session.revoked` (a null value, a tombstone, is the reader's)."""
SETTINGS = _kind("settings", [SessionSettingsChanged], TypeAdapter(SessionSettingsChanged))
"""`sessions.settings`: `session_settings.changed`."""


def encode(message: BaseModel) -> bytes:
    """The UTF-8 JSON body of one Kafka record."""
    return message.model_dump_json(exclude_none=True).encode()


def decode(kind: RecordKind[M], raw: bytes | None) -> M:
    """Parse one record of `kind`, or raise DecodeError naming the problem (nothing else)."""
    fast = _current(kind, raw)
    if fast is not None:
        return fast
    return _decode_checked(kind, raw)


def decode_each(kind: RecordKind[M], raws: Iterable[bytes | None]) -> list[M | DecodeError]:
    """`decode` of many records: per record its model, or the `DecodeError` `decode` raises.

    The same fast path and checked path as `decode`, without a Python call per record on the
    fast path (a registry's batch decodes tens of thousands of records at a time).
    """
    return decode_each_or(kind, raws, _itself)


def decode_each_or(
    kind: RecordKind[M], raws: Iterable[bytes | None], refused: Callable[[int, DecodeError], R]
) -> list[M | R]:
    """`decode_each`, with `refused(index, error)` in place of each record it refuses.

    A batch's refused records are few: the caller's replacement (a dead letter) is made for
    them alone, not tested for on every record.
    """
    validate = kind.fast.validate_json
    out: list[M | R] = []
    append = out.append
    for index, raw in enumerate(raws):
        if raw is not None and len(raw) <= MAX_RECORD_BYTES:
            try:
                append(validate(raw))
                continue
            except Exception:  # the checked path below says why
                pass
        try:
            append(_decode_checked(kind, raw))
        except DecodeError as error:
            append(refused(index, error))
    return out


def _itself(_: int, error: DecodeError) -> DecodeError:
    return error


def _decode_checked(kind: RecordKind[M], raw: bytes | None) -> M:
    try:
        return _checked(kind, raw)
    except DecodeError:
        raise
    except Exception as exc:  # an upcaster's or a validator's surprise is a refusal too
        raise DecodeError(f"undecodable {kind.noun} record: {_describe(exc)}") from None


def decode_event(raw: bytes | None) -> SessionEvent:
    """Parse one `sessions.events` record, or raise DecodeError naming the problem."""
    return decode(EVENTS, raw)


def decode_command(raw: bytes | None) -> TerminateSessions:
    """Parse one `sessions.commands` record, or raise DecodeError naming the problem."""
    return decode(COMMANDS, raw)


def decode_revocation(raw: bytes | None) -> SessionRevoked:
    """Parse one `sessions.revocations` record, or raise DecodeError naming the problem."""
    return decode(REVOCATIONS, raw)


def decode_settings(raw: bytes | None) -> SessionSettingsChanged:
    """Parse one `sessions.settings` record, or raise DecodeError naming the problem."""
    return decode(SETTINGS, raw)


def _current(kind: RecordKind[M], raw: bytes | None) -> M | None:
    """Fast path: a well-formed record of the current version, parsed in one step (no dict).

    Anything else (older versions to upcast, bad input to explain, what `kind.fast` leaves to
    the models' own validators) returns None and takes the checked path, which gives the same
    result or the precise reason; `schema_version` must be given explicitly, as the checked
    path insists (the fast validator requires it).
    """
    if raw is None or len(raw) > MAX_RECORD_BYTES:
        return None
    try:
        message: M = kind.fast.validate_json(raw)
    except Exception:  # ValidationError, or anything odder: the checked path says why
        return None
    return message


def _checked(kind: RecordKind[M], raw: bytes | None) -> M:
    payload = upcast(_payload(raw))
    name = payload.get("type")
    if not isinstance(name, str) or name not in kind.types:
        raise DecodeError(f"unknown {kind.noun} type {name!r}")
    try:
        return kind.adapter.validate_python(payload)
    except ValidationError as exc:
        raise DecodeError(f"{name} breaks the contract: {_explain(exc)}") from None


def _payload(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        raise DecodeError("empty record (no value)")
    if len(raw) > MAX_RECORD_BYTES:
        raise DecodeError(f"record of {len(raw)} bytes exceeds the {MAX_RECORD_BYTES} byte limit")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        # JSON on the wire is UTF-8 (RFC 8259, 8.1): bytes that are not are malformed JSON
        raise DecodeError(f"malformed JSON: not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError) as exc:
        # ValueError: JSONDecodeError, and integers longer than Python converts (4300 digits)
        raise DecodeError(f"malformed JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise DecodeError(f"expected a JSON object, got {type(payload).__name__}")
    return payload


def upcast(payload: dict[str, Any]) -> dict[str, Any]:
    """Bring a payload of any known schema_version up to the current one."""
    version = payload.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise DecodeError(f"schema_version must be an integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise NewerVersion(
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
    for error in exc.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "record"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _describe(exc: Exception) -> str:
    try:
        return f"{type(exc).__name__}: {exc}"
    except Exception:  # even an exception that cannot say what it is stays a DecodeError
        return type(exc).__name__
