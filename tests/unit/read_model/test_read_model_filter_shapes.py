"""A filter's shape and values (`filter_parameters`): one statement per shape, its values bound
at execution, by the names the clause of the shape binds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql

from admin_api.adapters import session_listing
from admin_api.domain.listing import ListQuery
from read_model.postgres import DriverSQL
from read_model.session_query import filter_clause, filter_parameters, session_type_in
from read_model.tables import sessions
from session_contracts.models import SessionFilter

AT = datetime(2030, 1, 1, tzinfo=UTC)
ASYNCPG = postgresql.asyncpg.dialect()  # type: ignore[no-untyped-call]
EVERY = SessionFilter.model_validate(
    {
        "q": "ada",
        "user_name": "love",
        "session_id": "Xyz",
        "device": "fire",
        "session_type": ["mobile", "browser"],
        "ip_address": "10.0.0.0/8",
        "user_id": "u-1",
        "created_from": AT,
        "created_to": AT,
        "last_activity_from": AT,
        "last_activity_to": AT,
        "expires_from": AT,
        "expires_to": AT,
        "policy_outdated": True,
    }
)


def test_every_value_of_a_filter_is_a_parameter_of_its_shapes_clause() -> None:
    # every condition set: the clause of the shape binds each value by its name, and nothing
    # of any value is in its SQL
    shape, values = filter_parameters(EVERY)
    assert [name for name, _ in shape] == [
        "q",
        "user_name",
        "session_id",
        "device",
        "session_type",
        "network",
        "user_id",
        *("created_from", "created_to", "last_activity_from", "last_activity_to"),
        *("expires_from", "expires_to"),
        "policy_outdated",
    ]
    statement = select(sessions.c.session_id).where(filter_clause(shape, "t", AT))
    compiled = statement.compile(dialect=ASYNCPG)
    bound = {name for name in compiled.binds if name.startswith("f_")}
    assert bound == set(values)
    for value in values.values():
        assert not isinstance(value, str) or value.strip("%") not in compiled.string
    # another filter of the shape: the same SQL
    other = EVERY.model_copy(update={"q": "bob", "user_id": "u-2", "user_name": "xyz"})
    assert filter_parameters(other)[0] == shape


@pytest.mark.parametrize(
    ("given", "other"),
    [
        ({"q": "ab"}, {"q": "abc"}),  # three characters look the session id keys up
        ({"q": "ada"}, {"q": "bro"}),  # a session type's name holds `bro`
        ({"q": "ada"}, {"q": "ä d"}),  # no handle holds a space
        ({"session_type": ["mobile"]}, {"session_type": ["browser"]}),
        ({"policy_outdated": True}, {"policy_outdated": False}),
        ({"user_id": "u"}, {"user_id": "u", "device": "x"}),
    ],
)
def test_filters_whose_sql_differs_are_of_different_shapes(
    given: dict[str, object], other: dict[str, object]
) -> None:
    shapes = [filter_parameters(SessionFilter.model_validate(f))[0] for f in (given, other)]
    assert shapes[0] != shapes[1]


def test_a_page_filtered_by_session_type_compiles_to_the_drivers_sql() -> None:
    # the types are written into the statement (a closed set), not an `IN` expanded at
    # execution, which would send the page through SQLAlchemy's compile on every request
    for given in (
        SessionFilter.model_validate({"session_type": ["mobile"], "ip_address": "10.1.0.0/16"}),
        SessionFilter.model_validate({"user_id": "u-1"}),
    ):
        shape, _ = session_listing._shape(ListQuery(given, "user_name", 50))
        statement = session_listing._page_of_shape(*shape)
        assert DriverSQL.of(statement, ASYNCPG) is not None, given


@pytest.mark.parametrize("name", ["mobile' OR '1'='1", "desktop", "", "Mobile"])
def test_only_a_session_types_name_is_written_into_the_sql(name: str) -> None:
    with pytest.raises(ValueError, match="not a session type"):
        session_type_in([name])
