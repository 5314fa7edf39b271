"""The list's vocabulary for the page: columns, sort keys, session types and filters.

Derived from the Python definitions, never restated: the columns are the fields of a list row
(`SessionPublic`, the response schema) less the few the table does not show, the sort keys are
the sort whitelist (`SortField`), the session types are the contract's listed ones
(`LISTED_SESSION_TYPES`, in `SessionType` order) and the filters are the list's query parameters
(`FilterParams`). The page keeps only presentation (labels, cell formats, filter controls) keyed
by these names; see docs/admin-page.md.
"""

from __future__ import annotations

from collections.abc import Collection
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from admin_api.domain.listing import DEFAULT_SORT, SORT_FIELDS
from admin_api.entrypoints.list_params import FilterParams
from admin_api.entrypoints.schemas import SessionPublic
from session_contracts.models import LISTED_SESSION_TYPES, SessionType

NOT_COLUMNS = frozenset({"user_agent", "policy", "policy_outdated"})
"""Fields of a list row that are no column of the table: the session detail dialog shows them,
and `policy_outdated` is the Name cell's badge (and the "Outdated settings only" toggle). Any
other field of `SessionPublic` is a column the page must present."""

ValueKind = Literal["text", "date-time", "choice", "boolean", "number", "object"]


class ColumnSpec(BaseModel):
    """One column of the Active User Sessions list: a field of every row."""

    model_config = ConfigDict(frozen=True)

    key: str = Field(description="The row field (and, when sortable, the sort key).")
    kind: ValueKind = Field(description="What its values are, from the response schema.")
    nullable: bool = Field(description="Whether a row may carry null.")
    sortable: bool = Field(description="Whether `sort` takes it (the sort whitelist).")


class FilterSpec(BaseModel):
    """One filter condition of the list (a query parameter, and a key of the filter object)."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: ValueKind = Field(description="Text (substring or address), times, choices, boolean.")
    column: str | None = Field(
        description="The column it narrows: its own name, or `<stem>_at` for `<stem>_from` and "
        "`<stem>_to`; null for conditions on no single column (`q`, `policy_outdated`)."
    )
    bound: Literal["from", "to"] | None = Field(
        default=None, description="For a time range: which end (from inclusive, to exclusive)."
    )
    choices: list[str] | None = Field(default=None, description="For a choice: the values.")
    max_length: int | None = Field(default=None, description="For text: the longest value.")


class SortSpec(BaseModel):
    """The sort whitelist: each key ascending, or descending with `-` in front."""

    model_config = ConfigDict(frozen=True)

    keys: list[str]
    default: str


class PageVocabulary(BaseModel):
    """Served to the page as `/admin/vocabulary.json`."""

    model_config = ConfigDict(frozen=True)

    columns: list[ColumnSpec]
    sort: SortSpec
    session_types: list[str] = Field(description="The session types the list shows.")
    filters: list[FilterSpec]


def _unwrap(schema: dict[str, Any], defs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """A property's schema without its `null` alternative and `$ref`, and whether null is one."""
    nullable = False
    options = schema.get("anyOf")
    if isinstance(options, list):
        rest = [o for o in options if o.get("type") != "null"]
        nullable = len(rest) < len(options)
        if len(rest) == 1:
            schema = rest[0]
    ref = schema.get("$ref")
    if isinstance(ref, str):
        schema = defs[ref.rsplit("/", 1)[-1]]
    return schema, nullable


def _kind(schema: dict[str, Any], defs: dict[str, Any]) -> ValueKind:
    schema, _ = _unwrap(schema, defs)
    if schema.get("type") == "array":
        return _kind(schema.get("items", {}), defs)
    if "enum" in schema:
        return "choice"
    if schema.get("format") == "date-time":
        return "date-time"
    match schema.get("type"):
        case "string":
            return "text"
        case "boolean":
            return "boolean"
        case "integer" | "number":
            return "number"
    return "object"


def _choices(schema: dict[str, Any], defs: dict[str, Any], listed: list[str]) -> list[str]:
    schema, _ = _unwrap(schema, defs)
    if schema.get("type") == "array":
        schema, _ = _unwrap(schema.get("items", {}), defs)
    values = [str(v) for v in schema.get("enum", [])]
    # Filtering by a type the list never shows matches nothing: offer the listed ones only.
    return listed if set(values) == {t.value for t in SessionType} else values


def _column_of(name: str, columns: set[str]) -> tuple[str | None, Literal["from", "to"] | None]:
    if name in columns:
        return name, None
    ends: tuple[tuple[str, Literal["from", "to"]], ...] = (("_from", "from"), ("_to", "to"))
    for suffix, bound in ends:
        stem = name.removesuffix(suffix)
        if stem != name and f"{stem}_at" in columns:
            return f"{stem}_at", bound
    return None, None


def build_vocabulary(
    row: type[BaseModel] = SessionPublic,
    filters: type[BaseModel] = FilterParams,
    sort_fields: tuple[str, ...] = SORT_FIELDS,
    default_sort: str = DEFAULT_SORT,
    not_columns: frozenset[str] = NOT_COLUMNS,
    listed_types: Collection[SessionType] = LISTED_SESSION_TYPES,
) -> PageVocabulary:
    """The vocabulary of these definitions (the arguments serve tests: a new field, key, type)."""
    listed = [t.value for t in SessionType if t in listed_types]
    row_schema = row.model_json_schema()
    row_defs = row_schema.get("$defs", {})
    missing = [key for key in sort_fields if key not in row_schema["properties"]]
    if missing:
        raise ValueError(f"sort keys that are no field of {row.__name__}: {missing}")
    columns = [
        ColumnSpec(
            key=key,
            kind=_kind(prop, row_defs),
            nullable=_unwrap(prop, row_defs)[1],
            sortable=key in sort_fields,
        )
        for key, prop in row_schema["properties"].items()
        if key not in not_columns
    ]
    keys = {c.key for c in columns}
    filter_schema = filters.model_json_schema()
    filter_defs = filter_schema.get("$defs", {})
    specs = []
    for name, prop in filter_schema["properties"].items():
        kind = _kind(prop, filter_defs)
        column, bound = _column_of(name, keys)
        value, _ = _unwrap(prop, filter_defs)
        longest = value.get("maxLength")
        specs.append(
            FilterSpec(
                name=name,
                kind=kind,
                column=column,
                bound=bound if kind == "date-time" else None,
                choices=_choices(prop, filter_defs, listed) if kind == "choice" else None,
                max_length=longest if kind == "text" and isinstance(longest, int) else None,
            )
        )
    return PageVocabulary(
        columns=columns,
        sort=SortSpec(keys=list(sort_fields), default=default_sort),
        session_types=listed,
        filters=specs,
    )


@cache
def page_vocabulary() -> dict[str, Any]:
    """The served vocabulary as JSON data, built once per process."""
    return build_vocabulary().model_dump(mode="json")
