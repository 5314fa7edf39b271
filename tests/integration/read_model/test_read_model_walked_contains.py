"""A walk tests each entry's user name (and device) with `walked_contains`, a cheaper form of
`ILIKE`: it must give the same rows for every value and every term, whatever characters they
hold. Held to `ILIKE` itself in the database, on both backends: names in many alphabets and
the characters whose case mappings leave or enter ASCII, then (PostgreSQL) every code point
as a value against its own lowering, its uppering and the ASCII letters that odd characters
lower or upper onto."""

# ruff: noqa: RUF001 (look-alike letters are what this tests)
from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    bindparam,
    literal,
    literal_column,
    select,
    text,
    true,
    union_all,
)

from read_model.database import open_store, upgrade_schema
from read_model.session_query import ascii_contains, like_pattern, walked_contains
from read_model.tables import sessions

NAMES = [
    "Ada Lovelace", "ADA LOVELACE", "ada lovelace", "Jürgen Müller", "JÜRGEN MÜLLER",
    "\u212aelvin Smith",  # the Kelvin sign: lowers onto ASCII k
    "Jo\u017fef Straße",  # the long s: uppers onto ASCII S
    "İlhan Işık", "ILHAN ISIK", "ǅemal", "ΣΊΣΥΦΟΣ", "σίσυφος", "Ωmega", "Åsa Ørsted",
    "Cafe\u0301 Noir",  # a combining accent
    "Ꭰꭰ Cherokee",  # Cherokee lowers onto a later block
    "ẞ capital sharp s", "José 100% _real_ \\ name", "", "名前 山田", "😀 smile",
]  # fmt: skip
TERMS = [
    "a", "A", "k", "K", "s", "S", "i", "I", "ı", "ü", "Ü", "ß", "ẞ", "σ", "Σ", "ς", "é", "e\u0301",
    "\u212a", "\u017f", "İ", "ꭰ", "Ꭰ", "%", "_", "\\", "0% ", "ada", "ADA", "lovelace", "müller",
    "MÜLLER", "kelvin", "straße", "strasse", "ilhan", "ılhan", "sısyfos", "σίσυφος", "ωMEGA",
    "åsa", "café", "名前", "😀", " ", "ǆemal", "ǅemal",
]  # fmt: skip


def _rows(name: str, columns: tuple[str, ...], data: list[tuple[str | None, ...]]) -> Any:
    """`data` as a subquery (a `VALUES` list SQLite can read: one `SELECT` per row)."""
    selects = [
        select(*(literal(v, String()).label(c) for c, v in zip(columns, row, strict=True)))
        for row in data
    ]
    return union_all(*selects).subquery(name)


async def test_a_walk_tests_names_as_ilike_does(db_url: str) -> None:
    store = open_store(db_url)
    names = _rows("names", ("v",), [(n,) for n in [*NAMES, None]])
    terms = _rows("terms", ("t",), [(like_pattern(t),) for t in TERMS])
    v, p = names.c.v, terms.c.t
    walked, held = walked_contains(v, p), v.ilike(p, escape="\\")
    pairs = select(v, p, walked.label("walked"), held.label("held")).join_from(names, terms, true())
    named = _rows("named", ("n", "q"), [(n, like_pattern(n)) for n in NAMES])
    n, q = named.c.n, named.c.q
    itself = select(n, walked_contains(n, q), n.ilike(q, escape="\\"))
    try:
        async with store.engine.connect() as conn:
            compared = (await conn.execute(pairs)).all()
            own = (await conn.execute(itself)).all()
    finally:
        await store.dispose()
    assert len(compared) == (len(NAMES) + 1) * len(TERMS)
    assert sum(1 for row in compared if row.walked) > len(TERMS)  # the terms are matched
    assert [row for row in compared if row.walked != row.held] == []
    assert len(own) == len(NAMES)
    assert [row for row in own if not row[1] or not row[2]] == []  # each name holds itself


async def test_a_walk_tests_every_code_point_as_ilike_does(db_url: str) -> None:
    store = open_store(db_url)
    if store.engine.dialect.name != "postgresql":
        await store.dispose()
        return  # on SQLite `walked_contains` is `ILIKE`'s own SQL (the test above)
    # every code point with a case mapping (and ASCII) as a value, alone and between ASCII
    # letters, against its own lowering and uppering, the ASCII letters odd characters map
    # onto, and ASCII without a letter (compared by `LIKE`), in a term. A character without
    # a case mapping is the same to both forms (`ILIKE` lowers it to itself, "C" keeps it);
    # what the fast form relies on for every character, that the database's lowering of a
    # lowered character is itself, is checked over them all
    contains: ColumnElement[bool] = walked_contains(literal_column("v"), literal_column("p"))
    expression = contains.compile(dialect=store.engine.dialect)
    escaped = "replace(replace(replace(t, '\\', '\\\\'), '%', '\\%'), '_', '\\_')"
    statement = text(
        f"""
        WITH points AS (
            SELECT chr(c) AS ch, c FROM generate_series(1, 1114111) AS c
            WHERE c NOT BETWEEN 55296 AND 57343
        ), cased AS (
            SELECT ch FROM points WHERE c < 128 OR lower(ch) <> ch OR upper(ch) <> ch
        ), pairs AS (
            SELECT v, '%' || {escaped} || '%' AS p
            FROM cased,
                LATERAL (VALUES (ch), ('a' || ch || 'Z')) AS vs(v),
                LATERAL (VALUES (lower(ch)), (upper(ch)), ('k'), ('s'), ('i'), ('a' || lower(ch)),
                    ('1'), ('-'), ('_'), ('%'), (' ')) AS ts(t)
        )
        SELECT (SELECT count(*) FROM cased) AS cased,
            (SELECT count(*) FROM points WHERE lower(lower(ch)) <> lower(ch)) AS unsettled,
            count(*) AS compared,
            count(*) FILTER (WHERE {expression}) AS matched,
            count(*) FILTER (WHERE ({expression}) IS DISTINCT FROM (v ILIKE p ESCAPE '\\'))
                AS differing,
            (array_agg(v || ' / ' || p) FILTER (
                WHERE ({expression}) IS DISTINCT FROM (v ILIKE p ESCAPE '\\')))[1:5] AS examples
        FROM pairs
        """
    )
    try:
        async with store.engine.connect() as conn:
            row: Any = (await conn.execute(statement)).one()
    finally:
        await store.dispose()
    assert row.cased > 2000  # Latin, Greek, Cyrillic, Armenian, Cherokee, ... and ASCII
    assert row.unsettled == 0
    assert row.compared == row.cased * 2 * 11
    assert row.matched >= row.cased * 2 * 2  # each value holds its lowering and 'a' + it
    assert row.differing == 0, row.examples


async def test_a_walk_planned_for_its_term_keeps_one_arm(db_url: str) -> None:
    # the test of the pattern folds to a constant in a plan made for the bound value (every
    # walk's: `force_custom_plan`): `LIKE` alone for a term without a letter, the `ILIKE`
    # forms alone for one with
    store = open_store(db_url, listing=True)
    if store.engine.dialect.name != "postgresql":
        await store.dispose()
        return  # SQLite compares with `ILIKE`'s own SQL whatever the term
    pattern = bindparam("p", type_=String())
    arms = walked_contains(sessions.c.user_name, pattern) | ascii_contains(
        sessions.c.session_id, pattern
    )
    statement = select(sessions.c.session_id).where(arms)
    try:
        await upgrade_schema(store)
        plans = {}
        async with store.engine.connect() as conn:
            for term in ("12", "-9", "_", "ab", "Ü"):
                compiled = statement.compile(dialect=conn.dialect)
                explained = await conn.exec_driver_sql(f"EXPLAIN {compiled}", (like_pattern(term),))
                plans[term] = "\n".join(r[0] for r in explained)
    finally:
        await store.dispose()
    for term in ("12", "-9", "_"):
        assert " ~~ " in plans[term] and "~~*" not in plans[term], plans[term]
        assert "CASE" not in plans[term], plans[term]
    for term in ("ab", "Ü"):
        assert "~~*" in plans[term] and "CASE" not in plans[term], plans[term]
