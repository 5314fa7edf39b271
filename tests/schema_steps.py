"""Moving a test's database down the schema's revisions (Alembic), as `upgrade_schema` moves
it up: for tests of a revision's downgrade."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from read_model.database import alembic_config


async def downgrade_schema(engine: AsyncEngine, revision: str) -> None:
    """`engine`'s database down to `revision`, in one transaction."""
    async with engine.begin() as conn:
        await conn.run_sync(_downgrade, revision)


def _downgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)
