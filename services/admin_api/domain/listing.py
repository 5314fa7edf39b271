"""How a list is ordered and paged: the sort whitelist and signed keyset cursors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from admin_api.domain.cursors import NOT_OURS, BadCursor, CursorCodec
from session_contracts.models import SessionFilter, as_utc

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


@dataclass(frozen=True)
class Position:
    """Where the previous page ended: its last row's sort value and session id."""

    sort: Sort
    value: SortKey
    session_id: str
    total: int | None = None
    """The filter's total counted with the first page, carried so later pages need not recount."""
    total_exact: bool = True
    """False: `total` is a lower bound (a search's first page stopped counting)."""
    total_as_of: datetime | None = None
    """When `total` was read (the first page's `as_of`): a later page answers it as its own
    `as_of`, so a termination confirmed from it binds to the moment of the count (it answered
    its own reading's moment, and sessions created between the two were ended uncounted: a
    review, stop 70)."""


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


def page_scope(tenant_id: str, query: ListQuery) -> dict[str, Any]:
    """What a list cursor is valid for: the session list of this tenant, filter and sort."""
    conditions = query.filter.model_dump(mode="json", exclude_none=True)
    if "session_type" in conditions:  # the same filter, however its types were listed
        conditions["session_type"] = sorted(set(conditions["session_type"]))
    return {"list": "sessions", "tenant": tenant_id, "filter": conditions, "sort": query.sort}


def encode_cursor(codec: CursorCodec, scope: Mapping[str, Any], position: Position) -> str:
    """The opaque cursor naming `position`, signed for `scope` (see `page_scope`)."""
    value = position.value
    if isinstance(value, datetime):
        wire: str = value.isoformat()
    elif isinstance(value, bytes):
        wire = value.hex()
    else:
        wire = value
    body: dict[str, Any] = {"v": wire, "id": position.session_id, "t": position.total}
    if not position.total_exact:
        body["x"] = False
    if position.total_as_of is not None:
        body["a"] = position.total_as_of.isoformat()
    return codec.seal(scope, body)


def _fits(value: object, longest: int) -> bool:
    # NUL never reaches the database: PostgreSQL text cannot hold it.
    return isinstance(value, str) and len(value) <= longest and "\x00" not in value


def decode_cursor(
    codec: CursorCodec, scope: Mapping[str, Any], cursor: str, sort: Sort
) -> Position:
    """The position a cursor names; BadCursor unless this API signed it for `scope`."""
    body = codec.open(scope, cursor)
    wire, session_id, total = body.get("v"), body.get("id"), body.get("t")
    total_exact = body.get("x", True)
    # Signed by us, so these hold; checked anyway, so a leaked key cannot reach the database
    # with anything a first page could not have produced.
    valid_total = total is None or (type(total) is int and 0 <= total < 2**53)
    if not (_fits(wire, 1024) and _fits(session_id, 128) and valid_total):
        raise BadCursor(NOT_OURS)
    if type(total_exact) is not bool:
        raise BadCursor(NOT_OURS)
    total_as_of = None
    if (read_at := body.get("a")) is not None:  # absent in cursors made before stop 70
        try:
            if not _fits(read_at, 64):
                raise ValueError
            total_as_of = datetime.fromisoformat(read_at)
            if total_as_of.tzinfo is None:
                raise ValueError
        except (ValueError, TypeError):
            raise BadCursor(NOT_OURS) from None
    assert isinstance(wire, str) and isinstance(session_id, str)
    field = sort.removeprefix("-")
    try:
        value: SortKey = wire
        if field in TIME_FIELDS:
            parsed = datetime.fromisoformat(wire)
            if parsed.tzinfo is None:
                raise ValueError
            # SQLite compares stored UTC text: the value must be in UTC too
            value = as_utc(parsed)
        elif field == "ip_address":
            value = bytes.fromhex(wire)
    except (ValueError, OverflowError):
        raise BadCursor(NOT_OURS) from None
    return Position(
        sort=sort,
        value=value,
        session_id=session_id,
        total=total,
        total_exact=total_exact,
        total_as_of=total_as_of,
    )
