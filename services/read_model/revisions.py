"""The schema's Alembic revisions: the package's configuration, a database's revision, the head.

Its own module so that both `database` (migrations) and `online_indexes` (steps run only at
the head) read them, and neither imports the other for it. Alembic is imported by the functions
that use it: importing it (and Mako) costs about 0.3 s, which every command of the registry's
command line paid, most of them never touching the schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

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


def head_revision() -> str | None:
    """The newest revision among the package's migrations."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


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
