"""The wire contract v2: every event, command and record Session Control exchanges on Kafka.

Field rules follow `contract.md`; these models are the single source of the JSON Schemas
under `schemas/` (see `session_contracts.schemagen`).
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from session_contracts.addresses import contract_ip
from session_contracts.handles import HANDLE_LENGTH, HANDLE_PATTERN

SCHEMA_VERSION = 3
"""The version every model accepts; older records reach the models only through the
upcasters of `session_contracts.codec`."""


def _exact_version(value: object) -> object:
    # JSON `true` and `2.0` equal 2 in Python, and a Literal compares by equality: the wire
    # value must be the integer itself, on the fast path as on the checked one.
    if type(value) is not int:
        raise ValueError(f"schema_version must be the integer {SCHEMA_VERSION}, got {value!r}")
    return value


Version = Annotated[
    Literal[3],
    BeforeValidator(_exact_version),
    Field(
        description="The contract version the record is written in: the JSON integer literal "
        "itself (`3`; `3.0` and `true` are refused, though JSON Schema's `const` takes `3.0`)."
    ),
]

TenantId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$"),
    Field(description="A customer instance; nothing crosses tenants."),
]
SessionId = Annotated[
    str,
    StringConstraints(
        min_length=HANDLE_LENGTH, max_length=HANDLE_LENGTH, pattern=HANDLE_PATTERN, strict=True
    ),
    Field(
        description="The session's handle, never its credential: unpadded base64url of "
        "SHA-256('session-control/session-handle/v1' NUL tenant_id NUL credential), "
        "43 characters (session_contracts.handles.session_handle)."
    ),
]
"""A session handle (contract v2). The wire field keeps the name `session_id`."""
HandleFragment = Annotated[
    str,
    StringConstraints(min_length=1, max_length=HANDLE_LENGTH, pattern=r"^[A-Za-z0-9_-]+$"),
    Field(description="Part of a session handle (base64url characters)."),
]


ONE_LINE_PATTERN = r"^[^\x00-\x1f\x7f]*$"


def _one_line(value: str) -> str:
    for char in value:
        if char < " " or char == "\x7f":
            raise ValueError(f"must be one line of text: control character {char!r} is not allowed")
    return value


# Names, labels and search text: no control characters (NUL, newlines, escapes). PostgreSQL
# cannot store NUL, and a newline or an escape in a name only ever serves to forge log lines.
OneLine = AfterValidator(_one_line)
OneLineSchema = Field(json_schema_extra={"pattern": ONE_LINE_PATTERN})
UserId = Annotated[str, StringConstraints(min_length=1, max_length=128), OneLine, OneLineSchema]
UserName = Annotated[str, StringConstraints(min_length=1, max_length=256), OneLine, OneLineSchema]
Label = Annotated[str, StringConstraints(min_length=1, max_length=128), OneLine, OneLineSchema]
UserAgent = Annotated[str, StringConstraints(max_length=1024), OneLine, OneLineSchema]
SearchText = Annotated[str, StringConstraints(min_length=1, max_length=256), OneLine, OneLineSchema]


_RFC3339_SHAPE = r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
_EDGE_DAYS = r"(?!(0001-01-01|9999-12-31)[Tt][0-9:.]+[+-](?!00:00$))"
RFC3339_PATTERN = rf"^{_EDGE_DAYS}{_RFC3339_SHAPE}$"
"""RFC 3339 `date-time` (section 5.6): a full date, `T`, a full time and an offset (`Z` or
±hh:mm); the JSON Schema pattern of every timestamp, checked before anything is parsed. On the
first and last day of years 1-9999 the offset must be `Z` (or ±00:00), so every time stays
within them in UTC (what Python's datetime, and so the API, can hold)."""
_RFC3339 = re.compile(RFC3339_PATTERN, re.ASCII)
_SHAPE_ONLY = re.compile(_RFC3339_SHAPE, re.ASCII)
_RFC3339_EXAMPLE = "2026-11-30T09:00:00Z or 2026-11-30T10:00:00+01:00"
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_NO_OFFSET = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?", re.ASCII)
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)


def _what_is_wrong(text: str) -> str:
    if _SHAPE_ONLY.fullmatch(text):
        return (
            "timestamp out of range: on 0001-01-01 and 9999-12-31 the offset must be Z "
            "(or ±00:00), so the time stays within years 1-9999 in UTC"
        )
    if _DATE_ONLY.fullmatch(text):
        return "a date alone is not a timestamp"
    if _NO_OFFSET.fullmatch(text):
        return "timestamp has no offset (add Z or ±hh:mm)"
    if _NUMBER.fullmatch(text):
        return "a number is not a timestamp (Unix times are not read)"
    return "not an RFC 3339 timestamp"


def _rfc3339(value: object) -> object:
    # Only text is read, and only RFC 3339 with an offset: pydantic's own datetime parsing
    # would take numbers (and numeric strings) as Unix times, and other ISO 8601 shapes.
    if isinstance(value, datetime):
        return value  # made in code (a clock, a row): its offset is checked next
    if isinstance(value, str):
        if _RFC3339.fullmatch(value):
            return value
        raise ValueError(
            f"{_what_is_wrong(value)}; expected RFC 3339 with an offset, e.g. {_RFC3339_EXAMPLE}"
        )
    raise ValueError(
        f"timestamp must be an RFC 3339 string with an offset, e.g. {_RFC3339_EXAMPLE}, "
        f"not {type(value).__name__} (numbers are not read as Unix times)"
    )


def as_utc(value: datetime) -> datetime:
    """`value` in UTC; a naive one is taken to be UTC already (SQLite hands stored times back so).

    The one UTC normaliser: contract times (after their offset is checked), stored times read
    back, cursor times. May raise OverflowError at the edges of the datetime range.
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a UTC offset (RFC 3339)")
    try:
        return as_utc(value)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00: not a ValueError, would escape pydantic
        raise ValueError("timestamp is out of range once converted to UTC") from None


def _timestamp(value: object, handler: ValidatorFunctionWrapHandler) -> datetime:
    # `_rfc3339`, pydantic's datetime, then `_utc`, in one call from pydantic. Fast path: text
    # in the pattern ending in Z (what producers send) read by `datetime.fromisoformat`, which
    # takes every such text pydantic takes, gives the same time, already in UTC (checked
    # against the full path on random texts of the pattern), and refuses the rest, which then
    # takes the full path for its reason. Other offsets always take the full path (pydantic
    # refuses minutes >= 60 in an offset, fromisoformat does not).
    if type(value) is str and value[-1:] == "Z" and _RFC3339.fullmatch(value):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    return _utc(handler(_rfc3339(value)))


_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(\.{_OCTET}){{3}}"
_H = r"[0-9A-Fa-f]{1,4}"
_IPV6 = "|".join(
    [
        rf"({_H}:){{7}}{_H}",
        rf"({_H}:){{1,7}}:",
        rf"({_H}:){{1,6}}:{_H}",
        *(rf"({_H}:){{1,{n}}}(:{_H}){{1,{7 - n}}}" for n in range(5, 1, -1)),
        rf"{_H}:(:{_H}){{1,6}}",
        rf":((:{_H}){{1,7}}|:)",
        rf"({_H}:){{6}}{_IPV4}",  # the last 32 bits as an IPv4 address
        rf"::({_H}:){{0,5}}{_IPV4}",
        *(rf"({_H}:){{{n}}}:({_H}:){{0,{5 - n}}}{_IPV4}" for n in range(1, 6)),
    ]
)
IP_ADDRESS_PATTERN = rf"^({_IPV4}|{_IPV6})$"
"""An IPv4 or IPv6 address, as `IpAddress` reads it: no zone id, no leading zeros in IPv4."""
IP_NETWORK_PATTERN = (
    rf"^({_IPV4}(/(3[0-2]|[12]?[0-9]))?|({_IPV6})(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?)$"
)
"""An IPv4 or IPv6 address, optionally with a prefix length (CIDR); no netmask notation, zone
or leading zeros. Every match is one `ipaddress.ip_network` reads."""
_IP_NETWORK = re.compile(IP_NETWORK_PATTERN, re.ASCII)


def _network(value: str) -> str:
    if _IP_NETWORK.fullmatch(value):
        try:
            ipaddress.ip_network(value, strict=False)
            return value
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not an IP address or CIDR network")


IpNetwork = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(_network),
    Field(
        description="An address, or a network in CIDR notation (10.0.0.0/8, 2001:db8::/32).",
        json_schema_extra={"pattern": IP_NETWORK_PATTERN},
    ),
]


Timestamp = Annotated[
    datetime,
    WrapValidator(_timestamp),
    Field(
        description="RFC 3339 timestamp with offset (`Z` or ±hh:mm), normalised to UTC; "
        "numbers, bare dates and times without offset are refused.",
        json_schema_extra={"pattern": RFC3339_PATTERN},
    ),
]
IpAddress = Annotated[
    str,
    AfterValidator(contract_ip),
    Field(
        description="An IPv4 or IPv6 address, without a zone id (fe80::1%eth0 is refused); "
        "kept in one spelling (2001:db8::1, ::ffff:10.0.0.1).",
        json_schema_extra={"pattern": IP_ADDRESS_PATTERN},
    ),
]


class SessionType(StrEnum):
    """What kind of client holds the session."""

    browser = "browser"
    mobile = "mobile"
    desktop_app = "desktop_app"
    notebook = "notebook"
    plugin = "plugin"
    tv_app = "tv_app"
    api_client = "api_client"
    access_token = "access_token"


LISTED_SESSION_TYPES = frozenset({SessionType.browser, SessionType.mobile})
"""Only these appear in the Active User Sessions list; the others are recorded, never shown."""


class TerminationReason(StrEnum):
    """Why a session was ended on purpose."""

    admin = "admin"
    logout = "logout"
    security = "security"


class ExpiryReason(StrEnum):
    """Which limit of the session's policy it passed."""

    max_length = "max_length"
    idle = "idle"


ENVELOPE_FIELDS = ("type", "schema_version")
"""Every record's, required on the wire though the models default them (their builders fill
them in): `codec` refuses a record without either."""


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """The JSON Schema with `type` and `schema_version` required: pydantic leaves out a
        field with a default, and the published schemas let a record leave them out, which
        every reader refuses (a producer written from the schemas was dead-lettered; a review
        of the contract, stop 72)."""
        schema = handler.resolve_ref_schema(handler(core_schema))
        given = schema.get("properties", {})
        missing = [f for f in ENVELOPE_FIELDS if f in given and f not in schema.get("required", [])]
        if missing:
            schema["required"] = [*missing, *schema.get("required", [])]
        return schema


class SessionPolicy(Frozen):
    """The session settings in force when the session was created; never changed afterwards."""

    max_session_seconds: int = Field(gt=0, le=10 * 366 * 86400)
    idle_timeout_seconds: int = Field(gt=0, le=10 * 366 * 86400)


class Event(Frozen):
    """Fields every event carries."""

    schema_version: Version = 3
    event_id: UUID = Field(
        description="Idempotency key: the same id applied twice changes nothing."
    )
    occurred_at: Timestamp
    tenant_id: TenantId
    session_id: SessionId


class SessionCreated(Event):
    """A user signed in and a session began."""

    type: Literal["session.created"] = "session.created"
    user_id: UserId
    user_name: UserName
    session_type: SessionType
    ip_address: IpAddress = Field(description="The client address when the session was created.")
    user_agent: UserAgent | None = None
    device: Label | None = Field(
        default=None, description="Short device label; derived from user_agent when absent."
    )
    policy: SessionPolicy


class SessionActivity(Event):
    """The session was used; `occurred_at` is the time of the activity."""

    type: Literal["session.activity"] = "session.activity"
    ip_address: IpAddress | None = Field(default=None, description="The current client address.")


class SessionTerminated(Event):
    """The session was ended by an admin, the user, or a security control."""

    type: Literal["session.terminated"] = "session.terminated"
    reason: TerminationReason
    terminated_by: UserId | None = Field(default=None, description="The admin user id.")
    command_id: UUID | None = None


class SessionExpired(Event):
    """The session passed `expires_at`; written by the registry."""

    type: Literal["session.expired"] = "session.expired"
    reason: ExpiryReason


SessionEvent = Annotated[
    SessionCreated | SessionActivity | SessionTerminated | SessionExpired,
    Field(discriminator="type"),
]
EVENT_TYPES: tuple[type[Event], ...] = (
    SessionCreated,
    SessionActivity,
    SessionTerminated,
    SessionExpired,
)


class SessionFilter(Frozen):
    """Which sessions: the filter object of the list API, also carried by terminate commands.

    Every condition given must hold; an empty filter matches every listed session, and so
    does `session_type: []` (no condition: the admin API refuses it in a termination).
    """

    q: SearchText | None = Field(
        default=None,
        description="Case-insensitive substring of user name, session type or session handle.",
    )
    user_name: SearchText | None = Field(
        default=None, description="Case-insensitive substring of the user name."
    )
    session_type: list[SessionType] | None = Field(default=None, max_length=8)
    session_id: HandleFragment | None = Field(
        default=None, description="Case-insensitive substring of the session handle."
    )
    ip_address: IpNetwork | None = None
    device: Label | None = Field(
        default=None, description="Case-insensitive substring of the device label."
    )
    user_id: UserId | None = None
    created_from: Timestamp | None = None
    created_to: Timestamp | None = None
    last_activity_from: Timestamp | None = None
    last_activity_to: Timestamp | None = None
    expires_from: Timestamp | None = None
    expires_to: Timestamp | None = None
    policy_outdated: bool | None = Field(
        default=None,
        description="True: only sessions whose policy differs from their tenant's current "
        "settings for their type; false: only those whose policy matches them.",
    )

    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        """The `ip_address` condition as a network (a single address is a /32 or /128)."""
        if self.ip_address is None:
            return None
        return ipaddress.ip_network(self.ip_address, strict=False)


def _one_target_schema(filter_requires: list[str]) -> dict[str, Any]:
    return {
        "oneOf": [
            {
                "required": ["session_ids"],
                "properties": {
                    "session_ids": {"type": "array"},
                    "filter": {"type": "null"},
                    "confirmed_at": {"type": "null"},
                },
            },
            {
                "required": ["filter", *filter_requires],
                "properties": {
                    "filter": {"type": "object"},
                    "session_ids": {"type": "null"},
                    # required is only there: `null` is no moment (a review, stop 72)
                    **{field: {"type": "string"} for field in filter_requires},
                },
            },
        ]
    }


ONE_TARGET_SCHEMA: dict[str, Any] = _one_target_schema([])
"""Exactly one of `session_ids` and `filter` (absent or null is none), `confirmed_at` only with
a filter, as JSON Schema says it (the admin API's request)."""
COMMAND_TARGET_SCHEMA: dict[str, Any] = _one_target_schema(["confirmed_at"])
"""The same for the v3 command, where a filter requires `confirmed_at`."""


class TerminateSessions(Frozen):
    """Command: end these sessions (by explicit ids, or every active one matching a filter)."""

    model_config = ConfigDict(json_schema_extra=COMMAND_TARGET_SCHEMA)

    type: Literal["sessions.terminate"] = "sessions.terminate"
    schema_version: Version = 3
    command_id: UUID = Field(description="Idempotency key: applied once, however often delivered.")
    requested_at: Timestamp
    tenant_id: TenantId
    requested_by: UserId = Field(description="The admin user id.")
    reason: TerminationReason = TerminationReason.admin
    session_ids: list[SessionId] | None = Field(default=None, min_length=1, max_length=1000)
    filter: SessionFilter | None = Field(
        default=None,
        description="Resolved against the sessions active at requested_at and created no "
        "later than confirmed_at.",
    )
    confirmed_at: Timestamp | None = Field(
        default=None,
        description="With a filter (and only then), required: the moment of the count the "
        "admin confirmed; sessions created after it are not ended, so the count is binding. "
        "No later than requested_at. (v3; a v2 command's filter is upcast with requested_at.)",
    )

    @model_validator(mode="after")
    def _one_target(self) -> TerminateSessions:
        if (self.session_ids is None) == (self.filter is None):
            raise ValueError("give exactly one of session_ids or filter")
        if self.filter is not None and self.confirmed_at is None:
            raise ValueError("a command by filter needs confirmed_at")
        if self.session_ids is not None and self.confirmed_at is not None:
            raise ValueError("confirmed_at goes only with a filter")
        if self.confirmed_at is not None and self.confirmed_at > self.requested_at:
            raise ValueError("confirmed_at must not be later than requested_at")
        return self

    def target(self) -> dict[str, Any]:
        """What the command aims at, as the audit trail stores it: the ids, or the filter's
        given conditions."""
        if self.session_ids is not None:
            return {"session_ids": list(self.session_ids)}
        assert self.filter is not None
        return {"filter": self.filter.model_dump(mode="json", exclude_none=True)}


class SessionRevoked(Frozen):
    """Record on the compacted revocations topic: gateways reject this session from now on."""

    type: Literal["session.revoked"] = "session.revoked"
    schema_version: Version = 3
    tenant_id: TenantId
    session_id: SessionId
    session_type: SessionType
    revoked_at: Timestamp
    reason: TerminationReason | ExpiryReason
    valid_until: Timestamp = Field(
        description="The latest moment the session could still have been valid; "
        "after it the record may be tombstoned."
    )


SettableType = Literal["browser", "mobile"]
SETTABLE_TYPES: tuple[SettableType, ...] = ("browser", "mobile")
_HOUR, _DAY = 3600, 86400
DEFAULT_POLICIES: dict[SettableType, SessionPolicy] = {
    "browser": SessionPolicy(max_session_seconds=30 * _DAY, idle_timeout_seconds=8 * _HOUR),
    "mobile": SessionPolicy(max_session_seconds=180 * _DAY, idle_timeout_seconds=30 * _DAY),
}
"""The session settings of every tenant that never changed its own."""


class SessionSettingsChanged(Frozen):
    """Record on the compacted `sessions.settings` topic, keyed by tenant: its full settings.

    Login services keep the latest record per tenant and snapshot `settings[type]` into each
    new session's `policy`; a tenant without a record uses `DEFAULT_POLICIES`.
    """

    type: Literal["session_settings.changed"] = "session_settings.changed"
    schema_version: Version = 3
    event_id: UUID
    occurred_at: Timestamp
    tenant_id: TenantId
    changed_by: UserId = Field(description="The admin user id.")
    settings: dict[SettableType, SessionPolicy]
