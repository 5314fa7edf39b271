"""How a list is ordered and paged: the sort whitelist and opaque keyset cursors."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

from session_contracts.models import SessionFilter

SortField = Literal[
    "user_name",
    "session_type",
    "session_id",
    "ip_address",
    "created_at",
    "last_activity_at",
    "expires_at",
    "device",
]
SORT_FIELDS: tuple[SortField, ...] = get_args(SortField)
TIME_FIELDS = frozenset({"created_at", "last_activity_at", "expires_at"})
Sort = Literal[
    "user_name",
    "-user_name",
    "session_type",
    "-session_type",
    "session_id",
    "-session_id",
    "ip_address",
    "-ip_address",
    "created_at",
    "-created_at",
    "last_activity_at",
    "-last_activity_at",
    "expires_at",
    "-expires_at",
    "device",
    "-device",
]
DEFAULT_SORT: Sort = "-last_activity_at"
SortKey = str | datetime | bytes
"""A row's value of the sort column: text, a UTC time, or a packed IP address."""


class BadCursor(ValueError):
    """The cursor was not made by this API for this sort order."""


@dataclass(frozen=True)
class Position:
    """Where the previous page ended: its last row's sort value and session id."""

    sort: Sort
    value: SortKey
    session_id: str
    total: int | None = None
    """The filter's total counted with the first page, carried so later pages need not recount."""


@dataclass(frozen=True)
class ListQuery:
    """One page request: which sessions, in which order, how many, after which row."""

    filter: SessionFilter
    sort: Sort = DEFAULT_SORT
    limit: int = 50
    after: Position | None = None

    @property
    def field(self) -> SortField:
        """The sort column without its direction."""
        name = self.sort.removeprefix("-")
        assert name in SORT_FIELDS
        return name

    @property
    def descending(self) -> bool:
        """Whether the page runs from the largest value down."""
        return self.sort.startswith("-")


def encode_cursor(position: Position) -> str:
    """The opaque cursor naming `position` (URL-safe base64 of a small JSON object)."""
    value = position.value
    if isinstance(value, datetime):
        wire: str = value.isoformat()
    elif isinstance(value, bytes):
        wire = value.hex()
    else:
        wire = value
    fields = {"s": position.sort, "v": wire, "id": position.session_id, "t": position.total}
    body = json.dumps(fields, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def _fits(value: object, longest: int) -> bool:
    # NUL never reaches the database: PostgreSQL text cannot hold it.
    return isinstance(value, str) and len(value) <= longest and "\x00" not in value


def decode_cursor(cursor: str, sort: Sort) -> Position:
    """The position a cursor names; BadCursor unless it was made for `sort`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        body = json.loads(raw)
        wire, session_id, made_for = body["v"], body["id"], body["s"]
        total = body.get("t")
    except (binascii.Error, ValueError, TypeError, KeyError, RecursionError):
        raise BadCursor("cursor: not a cursor this API issued") from None
    if made_for != sort:
        raise BadCursor(f"cursor: made for sort {made_for!r}, not {sort!r}; start again")
    valid_total = total is None or (type(total) is int and 0 <= total < 2**53)
    if not (_fits(wire, 1024) and _fits(session_id, 128) and valid_total):
        raise BadCursor("cursor: not a cursor this API issued")
    field = sort.removeprefix("-")
    try:
        value: SortKey = wire
        if field in TIME_FIELDS:
            parsed = datetime.fromisoformat(wire)
            if parsed.tzinfo is None:
                raise ValueError
            # SQLite compares stored UTC text: the value must be in UTC too
            value = parsed.astimezone(UTC)
        elif field == "ip_address":
            value = bytes.fromhex(wire)
    except (ValueError, OverflowError):
        raise BadCursor("cursor: not a cursor this API issued") from None
    return Position(sort=sort, value=value, session_id=session_id, total=total)
