"""Query parameters of the list and export: one model, turned into a `ListQuery` in one place.

Unknown parameters are refused (422 naming them), as are bad values; the errors name the field.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import Depends, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from admin_api.domain.cursors import BadCursor
from admin_api.domain.listing import DEFAULT_SORT, ListQuery, Sort, decode_cursor, page_scope
from admin_api.entrypoints.dependencies import CurrentAdmin, RuntimeDep
from session_contracts.models import (
    IpNetwork,
    Label,
    SearchText,
    SessionFilter,
    SessionType,
    Timestamp,
    UserId,
)


class FilterParams(BaseModel):
    """The list's filter conditions; every one given must hold."""

    model_config = ConfigDict(extra="forbid")

    q: SearchText | None = Field(
        None, description="Substring of user name, session type or session id."
    )
    user_name: SearchText | None = Field(None, description="Substring of the user name.")
    session_type: list[SessionType] | None = Field(None, max_length=8, description="Repeatable.")
    session_id: Label | None = Field(None, description="Substring of the session id.")
    ip_address: IpNetwork | None = None
    device: Label | None = Field(None, description="Substring of the device label.")
    user_id: UserId | None = Field(None, description="Exactly this user id.")
    created_from: Timestamp | None = Field(None, description="created_at >= this (RFC 3339).")
    created_to: Timestamp | None = Field(None, description="created_at < this.")
    last_activity_from: Timestamp | None = None
    last_activity_to: Timestamp | None = None
    expires_from: Timestamp | None = None
    expires_to: Timestamp | None = None
    policy_outdated: bool | None = Field(
        None, description="Only sessions created under settings that are no longer current."
    )

    def to_filter(self) -> SessionFilter:
        """The contract's filter object with the conditions given."""
        return SessionFilter.model_validate(
            self.model_dump(include=set(FilterParams.model_fields), exclude_none=True)
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


def invalid_query(field: str, message: str, value: Any) -> RequestValidationError:
    """A 422 naming query parameter `field`, as FastAPI's own validation answers."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", field), "msg": message, "input": value}]
    )


def list_query(
    params: Annotated[ListParams, Query()], admin: CurrentAdmin, runtime: RuntimeDep
) -> ListQuery:
    """The page the query string asks for; a cursor only with the tenant, filter and sort it
    was issued for."""
    query = ListQuery(params.to_filter(), params.sort, params.limit)
    if params.cursor is None:
        return query
    scope = page_scope(admin.tenant_id, query)
    try:
        after = decode_cursor(runtime.cursors, scope, params.cursor, params.sort)
    except BadCursor as exc:
        raise invalid_query("cursor", str(exc), params.cursor) from None
    return replace(query, after=after)


def export_query(params: Annotated[SortParams, Query()]) -> ListQuery:
    """Every matching session, in the order asked, fetched a thousand at a time."""
    return ListQuery(params.to_filter(), params.sort, 1000)


PageQuery = Annotated[ListQuery, Depends(list_query)]
ExportQuery = Annotated[ListQuery, Depends(export_query)]
