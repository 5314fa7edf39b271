"""Moving a test's database down the schema's revisions (Alembic), as `upgrade_schema` moves
it up, and making it look as one made by an older release: for tests of a revision."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Connection, text
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


async def drop_keys_index(engine: AsyncEngine) -> None:
    """Drop the session id keys index from a database below revision 0801. Revision 0101
    builds today's listing indexes (`create_statements`), the keys' among them, so a new
    database has it at every revision; one made before revision 0801 existed has not."""
    async with engine.begin() as conn:
        await conn.execute(text("DROP INDEX IF EXISTS ix_sessions_session_id_keys"))
