"""A statement built once runs through `Store.run`: on PostgreSQL compiled once to the driver's
SQL (`read_model.postgres.DriverSQL`) on its second execution, its values bound at each
execution as SQLAlchemy would bind them, and the rows the same as `conn.execute` gives; a
statement whose SQL depends on its values (an expanding `IN`) goes through SQLAlchemy as
before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import (
    ARRAY,
    DateTime,
    Executable,
    String,
    any_,
    bindparam,
    event,
    func,
    insert,
    literal,
    select,
)

from read_model.database import open_store, upgrade_schema
from read_model.store import Store
from read_model.tables import consumer_positions

_d = consumer_positions.c
NAMES = [("t-1", "Ann"), ("t-1", "Bob"), ("t-1", "Cy"), ("t-1", "Dee"), ("t-2", "Eve")]


@pytest.fixture
async def filled(db_url: str) -> AsyncIterator[Store]:
    """A migrated store whose `consumer_positions` hold NAMES (consumer: a tenant, topic: a
    name): a table every backend has."""
    store = open_store(db_url)
    try:
        await upgrade_schema(store)
        rows = [{"consumer": t, "topic": n, "partition": 0, "next_offset": 1} for t, n in NAMES]
        async with store.engine.begin() as conn:
            await conn.execute(insert(consumer_positions), rows)
        yield store
    finally:
        await store.dispose()


def _statements(postgres: bool) -> dict[str, Any]:
    tenant = bindparam("tenant", type_=String())
    moment = bindparam("moment", type_=DateTime(timezone=True))
    named = select(_d.topic, moment.label("moment"), literal("x").label("fixed")).where(
        _d.consumer == tenant, _d.topic != literal("Bob")
    )
    built = {
        "named": named.order_by(_d.topic).limit(2),
        "expanding": select(_d.topic)
        .where(_d.topic.in_(bindparam("names", expanding=True)))
        .order_by(_d.topic),
    }
    if postgres:  # an array bound whole (`= ANY`), as a search binds the directory's user names
        names = bindparam("names", type_=ARRAY(String()))
        built["array"] = (
            select(_d.topic, func.cardinality(names).label("n"))
            .where(_d.consumer == tenant, _d.topic == any_(names))
            .order_by(_d.topic)
        )
    return built


async def test_a_built_statement_answers_as_sqlalchemy_does_for_each_executions_values(
    filled: Store,
) -> None:
    store = filled
    compiled_by_sqlalchemy: list[bool] = []

    def record(_c: Any, _cur: Any, statement: str, _p: Any, context: Any, _many: bool) -> None:
        if statement.startswith("SELECT"):
            compiled_by_sqlalchemy.append(context.compiled is not None)

    postgres = store.engine.dialect.name == "postgresql"
    built = _statements(postgres)
    moments = [datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), datetime(2027, 6, 7, tzinfo=UTC)]
    # each run's statement, values, and the names it must answer
    runs: list[tuple[str, dict[str, Any], list[str]]] = [
        ("named", {"tenant": "t-1", "moment": moments[0]}, ["Ann", "Cy"]),
        ("named", {"tenant": "t-2", "moment": moments[1]}, ["Eve"]),
        ("named", {"tenant": "t-3", "moment": None}, []),
        ("expanding", {"names": ["Cy", "Eve"]}, ["Cy", "Eve"]),
        ("expanding", {"names": ["Ann"]}, ["Ann"]),
    ]
    if postgres:
        runs += [
            ("array", {"tenant": "t-1", "names": ["Dee", "Ann", "Eve"]}, ["Ann", "Dee"]),
            ("array", {"tenant": "t-2", "names": ["Eve"]}, ["Eve"]),
            ("array", {"tenant": "t-1", "names": []}, []),
        ]
    event.listen(store.engine.sync_engine, "before_cursor_execute", record)
    ran_before: set[str] = set()
    async with store.engine.connect() as conn:
        for name, values, answer in runs:
            statement = built[name]
            compiled_by_sqlalchemy.clear()
            ran = await _rows(store.run(conn, statement, values))
            through_store = list(compiled_by_sqlalchemy)
            expected = await _rows(conn.execute(statement, values))
            assert ran == expected, (name, values)
            assert [r[0] for r in ran] == answer, (name, values)
            if name == "named":  # the moment bound (SQLite's naive), the literal compiled in
                assert {(_naive(r[1]), r[2]) for r in ran} <= {(_naive(values["moment"]), "x")}
            # SQLite's store is SQLAlchemy's own path; PostgreSQL's compiles a statement on
            # its second execution (the first is SQLAlchemy's), except what depends on the
            # values
            again = name in ran_before
            ran_before.add(name)
            sqlalchemys = not postgres or name == "expanding" or not again
            assert through_store == [sqlalchemys], (name, values)
    event.remove(store.engine.sync_engine, "before_cursor_execute", record)


def _naive(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(tzinfo=None)


async def _rows(executing: Any) -> list[tuple[Any, ...]]:
    result = await executing
    return [tuple(row) for row in result]


async def test_a_statement_is_compiled_once_per_store_and_its_values_never_kept(
    filled: Store,
) -> None:
    """Every execution of a statement sends the same SQL with its own values (on PostgreSQL
    the first through SQLAlchemy, the next as driver SQL): a value compiled into the SQL
    would answer an earlier tenant again."""
    store = filled
    sent: list[tuple[str, Any]] = []

    def record(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.startswith("SELECT"):
            sent.append((statement, parameters))

    statement: Executable = _statements(False)["named"]
    event.listen(store.engine.sync_engine, "before_cursor_execute", record)
    async with store.engine.connect() as conn:
        first = await _rows(store.run(conn, statement, {"tenant": "t-1", "moment": None}))
        second = await _rows(store.run(conn, statement, {"tenant": "t-2", "moment": None}))
        third = await _rows(store.run(conn, statement, {"tenant": "t-1", "moment": None}))
    event.remove(store.engine.sync_engine, "before_cursor_execute", record)
    assert [r[0] for r in first] == [r[0] for r in third] == ["Ann", "Cy"]
    assert [r[0] for r in second] == ["Eve"]
    assert sent[0][0] == sent[1][0] == sent[2][0]  # one SQL text
    assert sent[0][1] != sent[1][1] != sent[2][1]  # bound apart
