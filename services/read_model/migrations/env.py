"""Alembic environment: runs on a connection handed in by `upgrade_schema`, or on the ini's URL.

SQLite gets batch mode (ALTER TABLE is limited there); the async engine is driven through
`run_sync`, so the same migrations serve aiosqlite and asyncpg.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from read_model.tables import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_url() -> None:
    from read_model.database import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


def _offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


handed_in = config.attributes.get("connection")
if context.is_offline_mode():
    _offline()
elif handed_in is not None:
    _run(handed_in)
else:
    asyncio.run(_run_from_url())
