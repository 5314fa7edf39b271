"""The decoder's fast path: the models' own validator with its Python steps done in Rust.

Every record a registry, a gateway or a demo service reads is validated by pydantic-core, and
the contract's types add Python calls to that: the timestamp's RFC 3339 check and parse
(`models._timestamp`), the exact `schema_version` (`models._exact_version`), and the one-line
check of names and labels (`models._one_line`). Per `session.activity` record they were about a
quarter of the validation (25,200 against 18,200 instructions, callgrind).

`fast_validator(adapter)` builds a second validator from the adapter's core schema, making the
same model instances, with those steps replaced by core ones that accept **a subset** of what
the originals accept and give the same value for it:
- a timestamp: text of RFC 3339's shape ending in `Z` (`FAST_TIMESTAMP`), read by
  `datetime.fromisoformat`, called by pydantic-core without a Python frame. This is exactly
  the fast path `_timestamp` takes itself; every other timestamp is refused here;
- `schema_version`: a JSON integer (strict), then the literal, and **required**: the checked
  path refuses a record without it, which the fast path used to test per record;
- `type`: **required** too, for the same reason. A command, revocation or settings record
  without it was accepted here when its times ended in `Z`, and refused by the checked path
  otherwise (a review, stop 72); events always needed it (their union is tagged by it);
- one line of text: the same characters refused, by a pattern (`ONE_LINE_PATTERN`).

Whatever the fast validator refuses takes the codec's checked path, which gives the model or
the precise reason. So a record the fast path refuses costs a second validation, and a record
it accepts must come out exactly as the checked path would make it: the contract tests hold
both (`tests/unit/contracts/test_contract_fast_path.py`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from pydantic_core import CoreSchema, SchemaValidator
from pydantic_core import core_schema as cs

from session_contracts import models

FAST_TIMESTAMP = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$"
"""`models.RFC3339_PATTERN`'s texts that end in `Z` (the edge days' offset rule never refuses
one), written for pydantic-core's Rust regex: `[0-9]`, since Rust's `\\d` is any Unicode
digit."""


def fast_validator(adapter: TypeAdapter[Any]) -> SchemaValidator:
    """A validator of `adapter`'s type, the contract's Python steps replaced (module doc)."""
    schema, classes = _rewritten(adapter.core_schema)
    with _built_afresh(classes):
        return SchemaValidator(schema)


def _rewritten(schema: CoreSchema) -> tuple[CoreSchema, list[type]]:
    classes: list[type] = []

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        kind = node.get("type")
        if kind == "model":
            classes.append(node["cls"])
        if kind == "model-fields" and _is_literal_default(node["fields"].get("type")):
            # `type` required, as the checked path insists: a command, revocation or settings
            # record without it was accepted here, and refused there (a review, stop 72)
            field = node["fields"]["type"]
            required = {**field, "schema": field["schema"]["schema"]}
            node = {**node, "fields": {**node["fields"], "type": required}}
        if kind == "model-field" and _is_version(node["schema"]):
            return {**node, "schema": _strict_version(node["schema"]["schema"])}
        if kind in ("function-wrap", "function-before", "function-after"):
            function = node["function"]["function"]
            if function is models._timestamp:
                return cs.chain_schema(
                    [
                        cs.str_schema(pattern=FAST_TIMESTAMP, strict=True),
                        cs.no_info_plain_validator_function(datetime.fromisoformat),
                    ]
                )
            if function is models._one_line:
                inner = walk(node["schema"])
                if inner.get("type") != "str" or "pattern" in inner:
                    raise TypeError(f"a one-line text over {inner.get('type')!r}: not rewritten")
                return {**inner, "pattern": models.ONE_LINE_PATTERN}
            if function is models._exact_version:
                raise TypeError("schema_version outside a model field: not rewritten")
        return {key: walk(value) for key, value in node.items()}

    return walk(schema), classes


def _is_literal_default(field: dict[str, Any] | None) -> bool:
    """A model's `type` field: a literal under its default."""
    schema = {} if field is None else field["schema"]
    return schema.get("type") == "default" and schema["schema"].get("type") == "literal"


def _is_version(schema: dict[str, Any]) -> bool:
    """A `schema_version` field's schema: the `Version` validator under its default."""
    inner = schema.get("schema", {})
    return (
        schema.get("type") == "default"
        and inner.get("type") == "function-before"
        and inner["function"]["function"] is models._exact_version
    )


def _strict_version(before: dict[str, Any]) -> CoreSchema:
    """`Version` without its default, its Python check as a strict integer: a required field."""
    return cs.chain_schema([cs.int_schema(strict=True), before["schema"]])


@contextlib.contextmanager
def _built_afresh(classes: list[type]) -> Iterator[None]:
    """pydantic-core reuses a complete model's own validator for a `model` schema naming it
    (`get_prebuilt`), which would ignore the rewritten fields; marked incomplete while the
    fast validator is built, each model's schema is built from what it is given. The
    instances made are still of the model's own class."""
    complete = [(cls, cls.__dict__.get("__pydantic_complete__", False)) for cls in classes]
    for cls, _ in complete:
        cls.__pydantic_complete__ = False  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for cls, was in complete:
            cls.__pydantic_complete__ = was  # type: ignore[attr-defined]
