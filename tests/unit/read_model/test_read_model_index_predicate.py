"""The PostgreSQL listing indexes and kept counts hold exactly the listed open sessions.

Revisions 0101 and 0102 restate the membership test as text (a migration is history: it must
not change with the code); a list query can use a partial index only if its WHERE implies the
index's predicate, so the text must stay what `read_model.active` renders.
"""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

from sqlalchemy.dialects import postgresql, sqlite

import read_model
from read_model.active import listed_open_condition, never_created_condition

VERSIONS = Path(read_model.__file__).parent / "migrations" / "versions"


def _revision(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, VERSIONS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_migrations_predicate_is_the_listed_open_condition() -> None:
    rendered = listed_open_condition().compile(
        dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
        compile_kwargs={"literal_binds": True},
    )
    expected = str(rendered).replace("sessions.", "")
    assert expected == _revision("0101_listing_indexes").LISTED
    assert expected == _revision("0102_counts_per_statement").LISTED


def test_the_never_created_index_predicate_is_the_sweepers_condition() -> None:
    """The sweeper's delete of never-created rows reads `ix_sessions_never_created` (0201) only
    if its WHERE holds the index's predicate as written."""
    now = datetime(2030, 1, 1, tzinfo=UTC)
    for dialect in (postgresql.dialect(), sqlite.dialect()):  # type: ignore[no-untyped-call]
        rendered = str(never_created_condition(now).compile(dialect=dialect))
        conditions = rendered.replace("sessions.", "").split(" AND ")
        assert _revision("0201_contract_v2").NEVER_CREATED in conditions, rendered
