"""Query parameters of the list and export: one model, turned into the use case's request in
one place.

The filter parameters are the contract's `SessionFilter` fields (the same types, constraints and
validators, in the same order), described for the query string: a condition added to the
contract is a query parameter of the list and the export at once. Unknown parameters are
refused (422 naming them), as are bad values, and a parameter that takes one value given more
than once (`user_name=a&user_name=b`: which one would a proxy or a log have read?); the errors
name the field.
"""

from __future__ import annotations

import collections
import types
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from fastapi import Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

from admin_api.domain.listing import DEFAULT_SORT, Sort
from admin_api.entrypoints.errors import invalid_query
from admin_api.service_layer.sessions import ExportRequest, PageRequest
from read_model.postgres import EXACT_COUNT_TIMEOUT
from session_contracts.models import SessionFilter

Params = TypeVar("Params", bound=BaseModel)

QUERY_DESCRIPTIONS: dict[str, str] = {
    "q": "Substring of user name, session type or session id.",
    "user_name": "Substring of the user name.",
    "session_type": "Repeatable.",
    "session_id": "Substring of the session id.",
    "device": "Substring of the device label.",
    "user_id": "Exactly this user id.",
    "created_from": "created_at >= this (RFC 3339).",
    "created_to": "created_at < this.",
    "policy_outdated": "Only sessions created under settings that are no longer current.",
}
"""What the OpenAPI document says of a filter parameter; without an entry, the contract's words."""


def with_fields_of(
    source: type[BaseModel], descriptions: Mapping[str, str] = QUERY_DESCRIPTIONS
) -> Callable[[type[Params]], type[Params]]:
    """A class decorator: the model gains every field of `source` (its type, constraints,
    validators and default, in its order), described by `descriptions` where they say so."""

    def derive(model: type[Params]) -> type[Params]:
        fields: dict[str, Any] = {
            name: (
                field.rebuild_annotation(),
                Field(field.default, description=descriptions.get(name, field.description)),
            )
            for name, field in source.model_fields.items()
        }
        return create_model(
            model.__name__,
            __base__=model,
            __module__=model.__module__,
            __doc__=model.__doc__,
            **fields,
        )

    return derive


@with_fields_of(SessionFilter)
class FilterParams(BaseModel):
    """The list's filter conditions; every one given must hold."""

    model_config = ConfigDict(extra="forbid")

    def to_filter(self) -> SessionFilter:
        """The contract's filter object with the conditions given."""
        return SessionFilter.model_validate(
            self.model_dump(include=set(SessionFilter.model_fields), exclude_none=True)
        )


class SortParams(FilterParams):
    """Filter conditions and an order."""

    sort: Sort = Field(DEFAULT_SORT, description="A column, `-` first for descending.")


class ListParams(SortParams):
    """Filter, order, and one page of it."""

    limit: int = Field(50, ge=1, le=500)
    cursor: Annotated[str, StringConstraints(max_length=4096)] | None = Field(
        None, description="`next_cursor` of the previous page, with the same filter and sort."
    )
    count: Literal["bounded", "exact"] = Field(
        "bounded",
        description=f"`exact`: `total` counts every match, for up to {EXACT_COUNT_TIMEOUT} "
        "(then 503). "
        "`bounded` (the default): a search whose page fills before every match is read "
        "answers a lower bound, with `total_exact` false.",
    )


def _repeatable(annotation: Any) -> bool:
    """Whether a field of this type takes a list (a query parameter given once per value)."""
    origin = get_origin(annotation)
    if origin is list:
        return True
    if origin is Annotated:
        return _repeatable(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return any(_repeatable(arg) for arg in get_args(annotation))
    return False


def given_once(model: type[BaseModel]) -> Callable[[Request], None]:
    """A check of the raw query string: 422 naming each of `model`'s parameters that take one
    value and were given more than once. FastAPI would take one of the values silently."""
    single = frozenset(
        name for name, field in model.model_fields.items() if not _repeatable(field.annotation)
    )

    def check(request: Request) -> None:
        given = collections.Counter(
            name for name, _ in request.query_params.multi_items() if name in single
        )
        repeated = [
            (name, f"given {count} times: it takes one value", request.query_params.getlist(name))
            for name, count in given.items()
            if count > 1
        ]
        if repeated:
            raise invalid_query(*repeated)

    return check


_list_once = given_once(ListParams)
_export_once = given_once(SortParams)


async def list_query(request: Request, params: Annotated[ListParams, Query()]) -> PageRequest:
    """The page the query string asks for."""
    _list_once(request)
    return PageRequest(
        params.to_filter(),
        params.sort,
        params.limit,
        params.cursor,
        exact_total=params.count == "exact",
    )


async def export_query(request: Request, params: Annotated[SortParams, Query()]) -> ExportRequest:
    """Every matching session, in the order asked."""
    _export_once(request)
    return ExportRequest(params.to_filter(), params.sort)


PageQuery = Annotated[PageRequest, Depends(list_query)]
ExportQuery = Annotated[ExportRequest, Depends(export_query)]
