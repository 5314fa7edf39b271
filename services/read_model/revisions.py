"""The schema's Alembic revisions: the package's configuration, a database's revision, the head.

Its own module so that both `database` (migrations) and `online_indexes` (steps run only at
the head) read them, and neither imports the other for it.
"""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

PACKAGE_DIR = Path(__file__).resolve().parent


def alembic_config(url: str | None = None) -> Config:
    """The package's Alembic configuration, optionally pointed at a database URL."""
    config = Config(str(PACKAGE_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(PACKAGE_DIR / "migrations"))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    """The newest revision among the package's migrations."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def revision_of(connection: AsyncConnection) -> str | None:
    """The Alembic revision of the database `connection` is on (None for an empty database)."""
    return await connection.run_sync(_current)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The database's Alembic revision (None for an empty database)."""
    async with engine.connect() as connection:
        return await revision_of(connection)
