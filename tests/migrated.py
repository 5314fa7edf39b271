"""A test's new, empty database brought to the current schema by copying one that
`upgrade_schema` migrated once per test process (the `migrated` fixture, tests/conftest.py).

Running every revision again costs 0.35 s on PostgreSQL and 0.2 s on SQLite on a quiet
machine, two to three times that in a full run, and it was most of the set-up of the 420
admin API tests. The copy is the migrated database itself: PostgreSQL copies the template's
files (`CREATE DATABASE ... TEMPLATE`), and SQLite's template is one file, copied whole.

On PostgreSQL the `db_url` fixture creates a test's database as that copy straight away when
the test takes this fixture too (`new_postgres_copy`), which every caller of `migrate` does, so
`migrate` finds it done.

Tests of the migrations, and the registry migrating the database it starts on, still run
`upgrade_schema` on empty databases.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

from sqlalchemy.engine import make_url

from devstack.scratch_databases import create_database, drop_database
from read_model.database import upgrade_schema


class MigratedCopies:
    """Templates at the head revision (made on first use), and copies of them."""

    def __init__(self, directory: Path) -> None:
        self._sqlite_template = directory / "template.db"
        self._sqlite_ready = False
        self._postgres_template: str | None = None
        self._admin_url: str | None = None
        self._postgres_copies: set[str] = set()

    async def migrate(self, db_url: str) -> None:
        """Make the new database at `db_url` a copy of the migrated template (a SQLite file
        that exists is refused: it is not new)."""
        url = make_url(db_url)
        if url.get_backend_name() == "sqlite":
            await self._sqlite_copy(Path(url.database or ""))
        else:
            await self._postgres_copy(url.database or "")

    async def _sqlite_copy(self, path: Path) -> None:
        if not self._sqlite_ready:
            await upgrade_schema(f"sqlite+aiosqlite:///{self._sqlite_template}")
            await asyncio.to_thread(_one_file, self._sqlite_template)
            self._sqlite_ready = True
        await asyncio.to_thread(_copy_to_new, self._sqlite_template, path)

    async def new_postgres_copy(self, admin_url: str, name: str) -> str:
        """Create database `name` as a copy of the template; its URL. `migrate` of it is done."""
        url = await create_database(admin_url, name, template=await self._template(admin_url))
        self._postgres_copies.add(name)
        return url

    async def _template(self, admin_url: str) -> str:
        if self._postgres_template is None:
            template = f"t_template_{uuid.uuid4().hex[:12]}"
            await upgrade_schema(await create_database(admin_url, template))
            self._admin_url = admin_url
            self._postgres_template = template  # its store is disposed: nobody is connected
        return self._postgres_template

    async def _postgres_copy(self, name: str) -> None:
        if name not in self._postgres_copies:
            raise ValueError(
                f"database {name} was not created as a copy: take it from the db_url fixture"
            )

    async def close(self) -> None:
        """Drop the PostgreSQL template (the SQLite one goes with the test run's files)."""
        if self._postgres_template is not None and self._admin_url is not None:
            await drop_database(self._admin_url, self._postgres_template)
        self._sqlite_template.unlink(missing_ok=True)


def _one_file(database: Path) -> None:
    # upgrade_schema disposed its store, so its last connection checkpointed the write-ahead
    # log into the file and removed it: the file is the whole database
    wal = database.with_name(f"{database.name}-wal")
    assert not wal.exists(), f"{wal} left behind: the template is not one file"


def _copy_to_new(source: Path, target: Path) -> None:
    """Copy `source` to `target`; FileExistsError if `target` exists (it is not a new one)."""
    with source.open("rb") as read, target.open("xb") as write:
        shutil.copyfileobj(read, write)
