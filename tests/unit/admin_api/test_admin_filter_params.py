"""The list's filter parameters are the contract's filter: field by field, and whatever it gains."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import pytest
from fastapi import FastAPI, Query
from pydantic import BaseModel, ConfigDict, ValidationError

from admin_api.app import create_app
from admin_api.entrypoints.list_params import (
    QUERY_DESCRIPTIONS,
    FilterParams,
    ListParams,
    with_fields_of,
)
from admin_api.settings import AdminApiSettings
from session_contracts.models import Label, SessionFilter, SessionType


def property_schema(model: type[BaseModel], name: str) -> dict[str, Any]:
    """A field's JSON Schema, without its description (the query's words may differ)."""
    schema = model.model_json_schema()
    found = dict(schema["properties"][name])
    found.pop("description", None)
    return {"property": found, "defs": schema.get("$defs", {})}


def test_every_filter_parameter_is_the_contracts_field() -> None:
    assert list(FilterParams.model_fields) == list(SessionFilter.model_fields)
    for name, contract in SessionFilter.model_fields.items():
        query = FilterParams.model_fields[name]
        assert query.rebuild_annotation() == contract.rebuild_annotation(), name
        assert query.default == contract.default, name
        assert query.is_required() == contract.is_required(), name
        assert property_schema(FilterParams, name) == property_schema(SessionFilter, name), name
        assert query.description == QUERY_DESCRIPTIONS.get(name, contract.description), name


def test_query_descriptions_describe_contract_fields_only() -> None:
    assert set(QUERY_DESCRIPTIONS) <= set(SessionFilter.model_fields)


def test_the_query_validates_as_the_contract_does() -> None:
    bad: list[dict[str, Any]] = [
        {"q": ""},
        {"user_name": "x" * 257},
        {"session_type": ["tv"]},
        {"session_type": ["mobile"] * 9},
        {"ip_address": "10.0.0.1/33"},
        {"device": "a\nb"},
        {"created_from": "2026-01-01"},
        {"policy_outdated": "maybe"},
    ]
    for values in bad:
        with pytest.raises(ValidationError) as contract:
            SessionFilter.model_validate(values)
        with pytest.raises(ValidationError) as query:
            FilterParams.model_validate(values)
        expected = contract.value.errors(include_url=False, include_context=False)
        assert query.value.errors(include_url=False, include_context=False) == expected


def test_to_filter_is_the_contracts_filter_with_the_conditions_given() -> None:
    params = ListParams.model_validate(
        {
            "q": "ann",
            "session_type": ["mobile"],
            "created_from": "2026-03-01T12:00:00+01:00",
            "sort": "user_name",
            "limit": 5,
        }
    )
    assert params.to_filter() == SessionFilter(
        q="ann",
        session_type=[SessionType.mobile],
        created_from=datetime(2026, 3, 1, 11, tzinfo=UTC),
    )


def test_the_list_and_export_take_the_filter_fields_as_query_parameters() -> None:
    settings = AdminApiSettings(
        database_url="sqlite+aiosqlite:///:memory:",
        environment="development",
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1",
    )
    paths = create_app(settings).openapi()["paths"]
    filters = list(SessionFilter.model_fields)
    for path, own in (
        ("/api/v1/sessions", ["sort", "limit", "cursor", "count"]),
        ("/api/v1/sessions/export.csv", ["sort"]),
    ):
        names = [p["name"] for p in paths[path]["get"]["parameters"] if p["in"] == "query"]
        assert names == [*filters, *own], path


class GrownFilter(SessionFilter):
    """The contract's filter after it gained a condition."""

    location: Label | None = None


@with_fields_of(GrownFilter)
class GrownParams(BaseModel):
    """The filter parameters derived from the grown filter."""

    model_config = ConfigDict(extra="forbid")


def test_a_condition_the_contract_gains_is_a_query_parameter_with_its_validation() -> None:
    assert list(GrownParams.model_fields) == [*SessionFilter.model_fields, "location"]
    with pytest.raises(ValidationError, match="location"):
        GrownParams.model_validate({"location": "x" * 129})
    app = FastAPI()

    @app.get("/grown")
    def grown(params: Annotated[GrownParams, Query()]) -> None:
        """A list taking the grown filter."""

    parameters = app.openapi()["paths"]["/grown"]["get"]["parameters"]
    assert [p["name"] for p in parameters] == list(GrownParams.model_fields)
