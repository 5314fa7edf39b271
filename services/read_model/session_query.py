"""The one translation of a `SessionFilter` into SQL, shared by the list API and terminations.

`filter_clause(filter, tenant_id, now)` is a boolean clause on `sessions`: the registry resolves
terminate-by-filter commands with it, so "what the admin saw" and "what gets ended" agree.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from datetime import datetime
from typing import Any, TypeAlias, cast

from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    case,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Boolean, String, TypeEngine

from read_model.active import LISTED, Moment, TenantRef, active_condition, listed_condition
from read_model.listing_indexes import (
    ACTIVITY_BUCKET,
    ACTIVITY_KEYS,
    ACTIVITY_WINDOW,
    SESSION_ID_KEYS,
    SESSION_ID_TERM_KEYS,
)
from read_model.tables import session_settings, session_settings_history, sessions
from session_contracts.addresses import network_bounds
from session_contracts.handles import HANDLE_LENGTH
from session_contracts.models import DEFAULT_POLICIES, SessionFilter, SessionType, as_utc

_s = sessions.c
SESSION_TYPE_NAMES = frozenset(t.value for t in SessionType)


class binary_text(FunctionElement[str]):
    """Text compared by code point on every backend (PostgreSQL `COLLATE "C"`, SQLite BINARY).

    Sorting and keyset comparisons must agree across pages and backends, whatever the
    database's default collation is; the listing indexes use the same collation.
    """

    type = String()
    inherit_cache = True


@compiles(binary_text, "postgresql")
def _binary_pg(element: binary_text, compiler: Any, **kw: Any) -> str:
    return f'({compiler.process(element.clauses, **kw)}) COLLATE "C"'


@compiles(binary_text)
def _binary_other(element: binary_text, compiler: Any, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)}) COLLATE BINARY"


def like_pattern(text: str) -> str:
    """`%text%` for LIKE, with `%`, `_` and `\\` in the text escaped by `\\`."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class ascii_contains(FunctionElement[bool]):
    """`contains` for a column of ASCII text (session ids: base64url), cheaper to test row by
    row: on PostgreSQL `column COLLATE "C" ILIKE lower(pattern)`.

    `ILIKE` lowers both sides with the column's collation; under a libc locale that converts
    every value to wide characters (0.38 µs a session id, against 0.14 under "C", which lowers
    ASCII letters in place). The pattern is lowered first with the database's collation, so
    a character that lowers onto an ASCII letter there (the Kelvin sign onto `k`) still
    matches, and ASCII text lowers the same under both. Not for a trigram index, whose column
    collation an expression in "C" does not match: for walks, which test every entry, and for
    the rows the session id keys found (`session_id_holds`).
    """

    type = Boolean()
    inherit_cache = True


@compiles(ascii_contains, "postgresql")
def _ascii_contains_pg(element: ascii_contains, compiler: Any, **kw: Any) -> str:
    column, pattern = (compiler.process(c, **kw) for c in element.clauses)
    return _uncased_or(
        column, pattern, f"({column}) COLLATE \"C\" ILIKE lower({pattern}) ESCAPE '\\'"
    )


def _uncased_or(column: str, pattern: str, cased: str) -> str:
    """`column LIKE pattern` when the pattern is ASCII without a letter (`12`, `-9`: no case
    to fold, and no character lowers onto one of them), else `cased`; on PostgreSQL. Which
    one is decided once per statement: a query planned for its values (`plan_cache_mode =
    force_custom_plan`, every walk) folds the test of the bound pattern to a constant and
    keeps one arm. `LIKE` compares bytes: about a third of the cost of the cheapest `ILIKE`
    an entry (a rare two-character piece of an id walks 7,000 entries at ten million
    sessions)."""
    uncased = f"octet_length({pattern}) = length({pattern}) AND lower({pattern}) = upper({pattern})"
    return f"(CASE WHEN {uncased} THEN ({column}) LIKE {pattern} ESCAPE '\\' ELSE {cased} END)"


@compiles(ascii_contains)
def _ascii_contains_other(element: ascii_contains, compiler: Any, **kw: Any) -> str:
    column, pattern = (compiler.process(c, **kw) for c in element.clauses)
    return f"(lower({column}) LIKE lower({pattern}) ESCAPE '\\')"


class walked_contains(FunctionElement[bool]):
    """`contains` for a walk, which tests every entry it reads, on a column of any text (user
    names, device labels): on PostgreSQL
    `column COLLATE "C" ILIKE lower(pattern) OR (octet_length(column) <> length(column) AND
    column ILIKE pattern)`, the same rows as `column ILIKE pattern`, for half the cost of an
    ASCII value (0.21 against 0.41 µs a user name, the bench's at ten million sessions), and
    `LIKE` alone for a term without a letter (`_uncased_or`).

    `ILIKE` lowers the value with the column's collation, which under a libc locale converts
    every value to wide characters (`ascii_contains`). Lowered under "C" (ASCII letters
    only), an ASCII value gives what the database's lowering gives, as `ascii_contains` takes
    for session ids; a match there is a match of `ILIKE` for any value (a matched character
    is the pattern's, lowered already, or an ASCII one). A value with other characters (more
    bytes than characters) is also tested by `ILIKE` itself, so the Kelvin sign still lowers
    onto `k`. Elsewhere (SQLite) the plain `ILIKE`. Not for a trigram index, whose expression
    this is not.
    """

    type = Boolean()
    inherit_cache = True


@compiles(walked_contains, "postgresql")
def _walked_contains_pg(element: walked_contains, compiler: Any, **kw: Any) -> str:
    column, pattern = (compiler.process(c, **kw) for c in element.clauses)
    ascii_case = f"({column}) COLLATE \"C\" ILIKE lower({pattern}) ESCAPE '\\'"
    wider = f"octet_length({column}) <> length({column})"
    cased = f"{ascii_case} OR ({wider} AND ({column}) ILIKE {pattern} ESCAPE '\\')"
    return _uncased_or(column, pattern, cased)


@compiles(walked_contains)
def _walked_contains_other(element: walked_contains, compiler: Any, **kw: Any) -> str:
    column, pattern = element.clauses
    return str(compiler.process(column.ilike(pattern, escape="\\"), **kw))


def _contains(
    column: ColumnElement[str], pattern: ColumnElement[str], *, walked: bool
) -> ColumnElement[bool]:
    """`column ILIKE pattern` (`pattern`: a LIKE pattern, `like_pattern`), in the form a walk
    tests each entry it reads cheapest when `walked` (`walked_contains`), else as written,
    which the trigram indexes answer."""
    if walked:
        return walked_contains(column, pattern)
    return column.ilike(pattern, escape="\\")


class session_id_holds(FunctionElement[bool]):
    """The session id holds `text` (case-insensitive; `pattern` is its LIKE pattern), looked up
    in the tenant's keys: on PostgreSQL
    `session_id_keys(tenant_id, session_id) @> session_id_term_keys(tenant, text)
    AND session_id COLLATE "C" ILIKE lower(pattern)`, which the session id keys index answers
    (`read_model.listing_indexes.KEYS_FUNCTION`: every three characters of an id, lowered and
    hashed with its tenant). The keys find the tenant's ids holding the first and the last
    piece of `text` (`TERM_KEYS_FUNCTION`: the pieces between narrow nothing the recheck does
    not), and `ascii_contains`'s `ILIKE` those that hold `text` itself. For a text of three
    characters or more; elsewhere (SQLite) the plain `ILIKE`.
    """

    type = Boolean()
    inherit_cache = True


@compiles(session_id_holds, "postgresql")
def _session_id_holds_pg(element: session_id_holds, compiler: Any, **kw: Any) -> str:
    tenant_id, session_id, tenant, text, pattern = (
        compiler.process(c, **kw) for c in element.clauses
    )
    term_keys = f"{SESSION_ID_TERM_KEYS}({tenant}, {text})"
    keys = f"{SESSION_ID_KEYS}({tenant_id}, {session_id}) @> {term_keys}"
    return f"({keys} AND ({session_id}) COLLATE \"C\" ILIKE lower({pattern}) ESCAPE '\\')"


@compiles(session_id_holds)
def _session_id_holds_other(element: session_id_holds, compiler: Any, **kw: Any) -> str:
    _, session_id, _, _, pattern = element.clauses
    return str(compiler.process(session_id.ilike(pattern, escape="\\"), **kw))


KEY_LENGTH = 3
"""The characters of a piece the session id keys index holds (`KEYS_FUNCTION`): a shorter
text has no key, and its keys would be the empty array, which every id contains."""


def _session_id_holds(
    text: ColumnElement[str] | None,
    pattern: ColumnElement[str],
    *,
    walked: bool,
    tenant: TenantRef | None,
) -> ColumnElement[bool]:
    """`by_session_id` where the keys can look the text up (not on a walk, which tests every
    entry it reads; the tenant given, and `text`, the text itself, given because it has
    `KEY_LENGTH` characters or more), else `ascii_contains`: the same rows."""
    if walked or tenant is None or text is None:
        return ascii_contains(_s.session_id, pattern)
    return by_session_id(tenant, text, pattern)


def by_session_id(
    tenant: TenantRef, text: ColumnElement[str], pattern: ColumnElement[str]
) -> ColumnElement[bool]:
    """The tenant's sessions whose id holds `text` (three characters or more; `pattern`: its
    LIKE pattern), each a value or a parameter bound at execution: `session_id_holds`, the
    tenant compared as well (a key two pieces share only adds candidates).

    The tenant is compared by code point, which no index column's collation matches: a filter
    on the few rows the keys find, never a bitmap of the tenant's every row (a sort index's
    leading column) joined to theirs."""
    tenant_ref = tenant if isinstance(tenant, ColumnElement) else literal(tenant, String())
    holds = session_id_holds(_s.tenant_id, _s.session_id, tenant_ref, text, pattern)
    return and_(binary_text(_s.tenant_id) == tenant, holds)


def activity_bucket(moment: ColumnElement[Any]) -> ColumnElement[int]:
    """The bucket of the last activity `moment` falls in (PostgreSQL: its ten minutes since
    1970, `read_model.listing_indexes.ACTIVITY_FUNCTIONS`)."""
    return cast(ColumnElement[int], getattr(func, ACTIVITY_BUCKET)(moment))


def in_activity_window(
    tenant: TenantRef, first: ColumnElement[int], last: ColumnElement[int]
) -> ColumnElement[bool]:
    """The sessions whose last activity is in the buckets `first` to `last` (PostgreSQL):
    their activity keys hold one of the window's, which the keys index's second column
    answers (`read_model.listing_indexes.KEYS_INDEX`), and, tested on the row, their bucket
    is in the window (a key two buckets or two tenants hash to only adds candidates)."""
    keys = getattr(func, ACTIVITY_KEYS)(_s.tenant_id, _s.last_activity_at)
    window = getattr(func, ACTIVITY_WINDOW)(tenant, first, last)
    return and_(keys.op("&&")(window), activity_bucket(_s.last_activity_at).between(first, last))


QShape: TypeAlias = tuple[bool, tuple[str, ...]]
"""What the clause of a search term `q` is built from besides its pattern (`q_shape`)."""


def q_shape(q: str) -> QShape:
    """Whether a handle may hold `q`, and the session types whose names hold it: with its LIKE
    pattern (`like_pattern`), all `q_clause` needs."""
    return may_be_in_handle(q), tuple(types_containing(q))


def q_clause(
    shape: QShape,
    pattern: ColumnElement[str],
    *,
    walked: bool = False,
    names: bool | ColumnElement[bool] = True,
    text: ColumnElement[str] | None = None,
    tenant: TenantRef | None = None,
) -> ColumnElement[bool]:
    """What a search term matches: a user name or a session id holding it, or a session of a
    type whose name holds it. `pattern`: its LIKE pattern, a value or a parameter bound at
    execution (a statement built once per `shape`). `names` False leaves out the user name
    arm, for a caller that knows no user name of the tenant holds it; a clause stands for it,
    for a caller that knows which names do. `text` (the term, when it has `KEY_LENGTH`
    characters or more) and `tenant`: the session id arm is looked up in the tenant's keys
    (`_session_id_holds`)."""
    in_handle, types = shape
    if names is True:
        names = _contains(_s.user_name, pattern, walked=walked)
    arms: list[ColumnElement[bool]] = [false() if names is False else names]
    if in_handle:
        arms.append(_session_id_holds(text, pattern, walked=walked, tenant=tenant))
    if types:
        arms.append(session_type_in(types))
    return or_(*arms)


def session_type_in(types: Sequence[str]) -> ColumnElement[bool]:
    """The session's type is one of `types` (names of `SessionType`, a closed set), written
    into the statement's text: an `IN` of bound values expands at execution, which keeps a
    statement from being compiled once to the driver's SQL (`PostgresStore.run`). Only a
    type's name that is an identifier (no quote) is written."""
    for t in types:
        if t not in SESSION_TYPE_NAMES or not t.isidentifier():
            raise ValueError(f"not a session type: {t!r}")
    return _s.session_type.in_([literal_column(f"'{t}'", String()) for t in types])


def _default(field: str) -> ColumnElement[Any]:
    whens = [
        (_s.session_type == k, literal(getattr(p, field))) for k, p in DEFAULT_POLICIES.items()
    ]
    return case(*whens, else_=None)


def _current(field: str) -> ColumnElement[Any]:
    """The tenant's current setting for the session's type: stored, else the default."""
    return func.coalesce(_stored(field), _default(field))


def _stored(column: str) -> ColumnElement[Any]:
    """The session's tenant's current row's `column` for the session's type (NULL: none)."""
    return (
        select(session_settings.c[column])
        .where(
            session_settings.c.tenant_id == _s.tenant_id,
            session_settings.c.session_type == _s.session_type,
        )
        .scalar_subquery()
    )


def _in_force(field: str, at: datetime) -> ColumnElement[Any]:
    """The tenant's setting for the session's type in force at `at`: the current row's when it
    changed no later than `at`, else the history's latest row from no later than `at`
    (`session_settings_history`), else the default.

    The current row first: an admin API of the release before revision 1501, still running on
    the migrated schema during an upgrade, changes it and writes no history row (found by a
    review, 2026-12-06)."""
    h = session_settings_history.c
    kept = (
        select(h[field])
        .where(h.tenant_id == _s.tenant_id, h.session_type == _s.session_type, h.since <= at)
        .order_by(h.since.desc())
        .limit(1)
        .scalar_subquery()
    )
    current = _stored("updated_at") <= at
    return case((current, _stored(field)), else_=func.coalesce(kept, _default(field)))


POLICY_OUTDATED: ColumnElement[bool] = or_(
    _s.max_session_seconds != _current("max_session_seconds"),
    _s.idle_timeout_seconds != _current("idle_timeout_seconds"),
)


def policy_outdated(at: datetime | None = None) -> ColumnElement[bool]:
    """Whether a session's policy differs from its tenant's settings for its type: the
    current ones, or with `at` those in force then (a termination compares with the settings
    of the count the admin confirmed: a change since must not move what it ends)."""
    if at is None:
        return POLICY_OUTDATED
    moment = as_utc(at)
    return or_(
        _s.max_session_seconds != _in_force("max_session_seconds", moment),
        _s.idle_timeout_seconds != _in_force("idle_timeout_seconds", moment),
    )


def active_clause(tenant_id: TenantRef, now: Moment) -> ColumnElement[bool]:
    """The tenant's listed sessions that are active at `now` (`read_model.active`)."""
    return and_(_s.tenant_id == tenant_id, listed_condition(), active_condition(now))


def filter_clause(
    filter: SessionFilter | FilterShape,
    tenant_id: TenantRef,
    now: Moment,
    policies_at: datetime | None = None,
) -> ColumnElement[bool]:
    """The sessions of `tenant_id` active at `now` that match every condition of `filter`:
    its values in the clause, or, for a `FilterShape`, bound at execution
    (`filter_parameters`).

    Substring conditions are case-insensitive; time ranges are `from <= t < to`.
    `policies_at`: as `conditions_clause`'s.
    """
    conditions = conditions_clause(filter, tenant=tenant_id, policies_at=policies_at)
    return and_(active_clause(tenant_id, now), conditions)


HANDLE_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


TEXT_CONDITIONS = ("q", "user_name", "session_id", "device")
"""The filter's substring conditions."""


def is_search(filter: SessionFilter) -> bool:
    """Whether the filter has a substring condition (read by `session_search`'s plans)."""
    return any(getattr(filter, name) is not None for name in TEXT_CONDITIONS)


def may_walk(filter: SessionFilter) -> bool:
    """Whether the filter has a condition that may read many more rows than it matches: a
    substring (a text no index answers is a walk of the tenant's listed sessions), or
    `policy_outdated` (each session compared with its tenant's current settings: no index
    holds it, so either value reads every listed session of the tenant). The admin API counts
    such a filter as a search (a slot and the search budget) and the registry resolves such a
    termination beside its consumer loop."""
    return is_search(filter) or filter.policy_outdated is not None


def may_be_in_handle(text: str) -> bool:
    """Whether `text` can be part of a session id, compared case-insensitively.

    Session ids are handles: base64url, `[A-Za-z0-9_-]`. The database compares the two
    lowered (`ILIKE` is `lower(id) LIKE lower(pattern)`), so a character can match one of a
    handle only if its case mappings hold a base64url character: the Kelvin sign lowers to
    `k`, the long s (U+017F) uppers to `S`. Any other character (a space, an apostrophe, `ü`,
    `ø`) is in no handle, so a search for a text holding one need not read the session id
    index (a full name, an accented letter). The Python mappings stand for the database's;
    a test checks every character of the Basic Multilingual Plane this says no to against
    PostgreSQL's `lower()`.
    """
    return all(_may_fold_into_handle(c) for c in text)


def _may_fold_into_handle(character: str) -> bool:
    if character in HANDLE_CHARACTERS:
        return True
    if character.isascii():
        return False
    mapped = character.lower() + character.upper() + character.casefold()
    return any(c in HANDLE_CHARACTERS for c in mapped)


def handles_holding(text: str, handles: int) -> float:
    """How many of `handles` session ids hold `text` (case-insensitive), on average.

    A handle is a SHA-256 digest in base64url (`session_contracts.handles`): 43 characters,
    each of the 64 equally likely, whatever the credential. An ASCII letter matches two of
    them (its two cases), any other character at most one. For a search that must choose
    between reading a term's matches and walking the sort order before it has read either:
    a 3-character piece is in about one handle of 800 to 6,500."""
    if not text:
        return float(handles)
    share = 1.0
    for character in text:
        share *= (2 if character.isascii() and character.isalpha() else 1) / 64
    return handles * max(0, HANDLE_LENGTH - len(text) + 1) * share


def types_containing(text: str) -> list[str]:
    """The listed session types whose name contains `text` (case-insensitive): a closed set,
    known without the database."""
    return [k for k in LISTED if text.casefold() in k]


FilterShape: TypeAlias = tuple[tuple[str, Hashable], ...]
"""What the clause of a filter is built from besides its values (`filter_parameters`): its
conditions in order, each with what shapes its SQL."""

RANGES: dict[str, tuple[ColumnElement[Any], bool]] = {
    "created_from": (_s.created_at, True),
    "created_to": (_s.created_at, False),
    "last_activity_from": (_s.last_activity_at, True),
    "last_activity_to": (_s.last_activity_at, False),
    "expires_from": (_s.expires_at, True),
    "expires_to": (_s.expires_at, False),
}
"""The time range conditions: the column each compares, and whether it is the lower bound."""


def filter_parameters(filter: SessionFilter) -> tuple[FilterShape, dict[str, Any]]:
    """The filter's shape and its values by the names of the parameters they are bound to
    (`f_...`): the clause of a shape (`conditions_clause`) is one statement for every filter
    of that shape, which is what a statement built once is keyed by. Keyed by the values too,
    each user id or network listed built a statement of its own (about a millisecond of
    Python, and a compile) and pushed the others out of the cache.

    A shape holds, in the clause's order, each condition the filter has and what decides its
    SQL: for a search term, `q_shape` and whether the session id keys can look it up
    (`KEY_LENGTH`); for a session id piece, whether a handle may hold it and that; the session
    types; whether `policy_outdated` is true. Values a statement does not use (a term's text
    on a walk) are ignored where it runs."""
    shape: list[tuple[str, Hashable]] = []
    values: dict[str, Any] = {}
    if filter.q is not None:
        shape.append(("q", (*q_shape(filter.q), len(filter.q) >= KEY_LENGTH)))
        values.update(f_q=filter.q, f_q_pattern=like_pattern(filter.q))
    for name in ("user_name", "session_id", "device"):
        text = getattr(filter, name)
        if text is None:
            continue
        if name == "session_id":
            shape.append((name, (may_be_in_handle(text), len(text) >= KEY_LENGTH)))
            values["f_session_id"] = text
        else:
            shape.append((name, True))
        values[f"f_{name}_pattern"] = like_pattern(text)
    if filter.session_type:
        shape.append(("session_type", tuple(sorted({t.value for t in filter.session_type}))))
    network = filter.network()
    if network is not None:
        shape.append(("network", True))
        values["f_network_low"], values["f_network_high"] = network_bounds(network)
    if filter.user_id is not None:
        shape.append(("user_id", True))
        values["f_user_id"] = filter.user_id
    for name in RANGES:
        value = getattr(filter, name)
        if value is not None:
            shape.append((name, True))
            values[f"f_{name}"] = value
    if filter.policy_outdated is not None:
        shape.append(("policy_outdated", filter.policy_outdated))
    return tuple(shape), values


def filter_shape(filter: SessionFilter | FilterShape) -> FilterShape:
    """`filter`'s shape (`filter_parameters`)."""
    return filter if isinstance(filter, tuple) else filter_parameters(filter)[0]


Value: TypeAlias = Callable[[str, TypeEngine[Any]], ColumnElement[Any]]
"""A filter's value in its clause, by its parameter's name and type."""


def conditions_clause(
    filter: SessionFilter | FilterShape,
    *,
    walked: bool = False,
    names: bool = True,
    tenant: TenantRef | None = None,
    policies_at: datetime | None = None,
) -> ColumnElement[bool]:
    """The conditions of `filter` alone, on rows already known to be the tenant's active ones
    (`active_clause`): what a walk over the listing indexes tests on each index entry
    (`walked`: in the form cheapest to test row by row, the same rows). `names` False leaves
    out `q`'s user name arm, for a caller that knows no user name of the tenant holds `q`.
    `tenant`: the session id conditions are looked up in the tenant's keys
    (`session_id_holds`), else tested row by row. `policies_at`: `policy_outdated` compares
    with the settings in force then, not the current ones.

    A `SessionFilter`'s values are in the clause; a `FilterShape`'s are parameters, bound at
    execution to `filter_parameters`' values of a filter of that shape."""
    value: Value
    if isinstance(filter, SessionFilter):
        shape, values = filter_parameters(filter)

        def value(name: str, type_: TypeEngine[Any]) -> ColumnElement[Any]:
            return literal(values[name], type_)

    else:
        shape = filter

        def value(name: str, type_: TypeEngine[Any]) -> ColumnElement[Any]:
            return bindparam(name, type_=type_)

    text = String()
    conditions: list[ColumnElement[bool]] = [true()]
    for name, form in shape:
        if name == "q":
            in_handle, types, keyed = cast(tuple[bool, tuple[str, ...], bool], form)
            term = value("f_q", text) if keyed else None
            pattern = value("f_q_pattern", text)
            arms = (in_handle, types)
            q = q_clause(arms, pattern, walked=walked, names=names, text=term, tenant=tenant)
            conditions.append(q)
        elif name == "session_id":
            in_handle, keyed = cast(tuple[bool, bool], form)
            if not in_handle:
                conditions.append(false())  # no handle holds it (`may_be_in_handle`)
                continue
            piece = value("f_session_id", text) if keyed else None
            pattern = value("f_session_id_pattern", text)
            conditions.append(_session_id_holds(piece, pattern, walked=walked, tenant=tenant))
        elif name in ("user_name", "device"):
            pattern = value(f"f_{name}_pattern", text)
            conditions.append(_contains(_s[name], pattern, walked=walked))
        elif name == "session_type":
            conditions.append(session_type_in(cast(tuple[str, ...], form)))
        elif name == "network":
            packed = _s.ip_packed.type
            low, high = value("f_network_low", packed), value("f_network_high", packed)
            conditions.append(_s.ip_packed.between(low, high))
        elif name == "user_id":
            conditions.append(_s.user_id == value("f_user_id", _s.user_id.type))
        elif name in RANGES:
            column, lower = RANGES[name]
            bound = value(f"f_{name}", column.type)
            conditions.append(column >= bound if lower else column < bound)
        elif name == "policy_outdated":
            outdated = policy_outdated(policies_at)
            conditions.append(outdated if form else ~outdated)
        else:
            raise ValueError(f"not a filter condition: {name!r}")
    return and_(*conditions)
