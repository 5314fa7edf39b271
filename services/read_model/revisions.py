"""The schema's Alembic revisions: the package's configuration, a database's revision, the head.

Its own module so that both `database` (migrations) and `online_indexes` (steps run only at
the head) read them, and neither imports the other for it. Alembic is imported by the functions
that use it: importing it (and Mako) costs about 0.3 s, which every command of the registry's
command line paid, most of them never touching the schema.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

PACKAGE_DIR = Path(__file__).resolve().parent


def alembic_config(url: str | None = None) -> Config:
    """The package's Alembic configuration, optionally pointed at a database URL."""
    from alembic.config import Config

    config = Config(str(PACKAGE_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(PACKAGE_DIR / "migrations"))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest revision among the package's migrations (`release_revisions`)."""
    return release_revisions()[0]


def _current(connection: Connection) -> str | None:
    from alembic.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def revision_of(connection: AsyncConnection) -> str | None:
    """The Alembic revision of the database `connection` is on (None for an empty database)."""
    return await connection.run_sync(_current)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The database's Alembic revision (None for an empty database)."""
    async with engine.connect() as connection:
        return await revision_of(connection)


@functools.cache
def release_revisions() -> tuple[str, frozenset[str]]:
    """This release's head revision, and every revision among its migrations (read once a
    process: about 0.3 s with the import of Alembic)."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    head = scripts.get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations in {PACKAGE_DIR / 'migrations'}")
    return head, frozenset(script.revision for script in scripts.walk_revisions())


@dataclass(frozen=True)
class SchemaStanding:
    """A database's revision against this release's head.

    `behind`: not migrated, or at an older revision of this release's migrations, so what the
    newer revisions create (functions, tables, columns) is missing and statements calling it
    fail. `newer`: a revision this release does not know, made by a newer release (the
    registry is upgraded first: operations.md, "Upgrade order"); this release's statements
    still find what they call, since a revision only adds what the release before it reads.
    """

    database: str | None
    head: str
    known: frozenset[str]

    @property
    def state(self) -> Literal["current", "behind", "newer"]:
        """Where `database` stands against `head`."""
        if self.database == self.head:
            return "current"
        if self.database is None or self.database in self.known:
            return "behind"
        return "newer"

    def describe(self, *, named: bool = True) -> str:
        """The standing in words, with what to do when it is behind; `named=False` leaves
        the revisions out (for an answer anyone who reaches the port can read: they date the
        release)."""
        if self.state == "current":
            return "ok"
        if self.state == "newer":
            if not named:
                return "ok: newer than this release (a later release migrated it)"
            return (
                f"ok: the database is at revision {self.database}, newer than this "
                f"release's {self.head}"
            )
        migrate = (
            "run `session-registry migrate` (or start this release's registry, which migrates)"
        )
        if not named:
            return f"behind this release: {migrate}; `session-registry status` names the revisions"
        at = "not migrated" if self.database is None else f"at revision {self.database}"
        return f"behind: the database is {at}, this release needs {self.head}; {migrate}"


class SchemaBehind(RuntimeError):
    """The database's schema is older than this release's, and this process may not migrate
    it: what it writes or reads may be missing there."""

    def __init__(self, standing: SchemaStanding, remedy: str) -> None:
        super().__init__(f"schema {standing.describe()}; {remedy}")
        self.standing = standing


async def read_standing(engine: AsyncEngine) -> SchemaStanding:
    """Where `engine`'s database stands against this release's head. The release's revisions
    are read first (once a process, in a thread: Alembic's import), so no pooled connection
    is held while they load."""
    head, known = await asyncio.to_thread(release_revisions)
    async with engine.connect() as connection:
        return SchemaStanding(await revision_of(connection), head, known)
