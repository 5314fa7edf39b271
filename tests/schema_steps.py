"""Moving a test's database down the schema's revisions (Alembic), as `upgrade_schema` moves
it up, and making it look as one made by an older release: for tests of a revision."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from alembic import command
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from read_model.listing_indexes import (
    ACTIVITY_BUCKET,
    ACTIVITY_KEYS,
    ACTIVITY_WINDOW,
    ID_KEYS_INDEX,
    ID_KEYS_INDEX_NAME,
    KEYS_INDEX_NAME,
)
from read_model.revisions import alembic_config
from session_contracts.handles import session_handle


async def downgrade_schema(engine: AsyncEngine, revision: str) -> None:
    """`engine`'s database down to `revision`, in one transaction."""
    async with engine.begin() as conn:
        await conn.run_sync(_downgrade, revision)


def _downgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def drop_keys_index(engine: AsyncEngine) -> None:
    """Drop the keys index from a database below revision 0801. Revision 0101 builds today's
    listing indexes (`create_statements`), the keys' among them, so a new database has it at
    every revision; one made before revision 0801 existed has not."""
    async with engine.begin() as conn:
        for name in (KEYS_INDEX_NAME, ID_KEYS_INDEX_NAME):
            await conn.execute(text(f"DROP INDEX IF EXISTS {name}"))


async def as_before_activity_keys(engine: AsyncEngine) -> None:
    """Make a database at revision 1001 look as one made before revision 1101 existed: the
    index of the id's keys alone (revision 0801's, the trigram index it replaced dropped), no
    activity keys, no functions of them."""
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP INDEX IF EXISTS {KEYS_INDEX_NAME}"))
        await conn.execute(text("DROP INDEX IF EXISTS ix_sessions_trgm_session_id"))
        await conn.execute(text(ID_KEYS_INDEX))
        # the two that call it first
        for name in (ACTIVITY_WINDOW, ACTIVITY_KEYS, ACTIVITY_BUCKET):
            await conn.execute(text(f"DROP FUNCTION IF EXISTS {name}"))


INSERT_SESSION = (
    "INSERT INTO sessions (tenant_id, session_id, user_name, state, session_type, created_at, "
    "expires_at) VALUES (:tenant, :id, 'u', 'open', 'browser', now(), now() + interval '1 day')"
)
"""A listed session of `:tenant` with the id (handle) `:id`, in any revision's `sessions`."""


async def insert_sessions(engine: AsyncEngine, tenant: str, credentials: list[str]) -> list[str]:
    """Insert a listed session of `tenant` per credential (`INSERT_SESSION`, in one
    transaction); their handles, in order."""
    handles = [session_handle(tenant, credential) for credential in credentials]
    async with engine.begin() as conn:
        for handle in handles:
            await conn.execute(text(INSERT_SESSION), {"tenant": tenant, "id": handle})
    return handles


async def session_id_indexes(engine: AsyncEngine) -> dict[str, bool]:
    """The session id indexes there are (the keys', revision 1101's; revision 0801's of the
    id's keys alone; the trigram one before it), and whether each is valid."""
    names = (KEYS_INDEX_NAME, ID_KEYS_INDEX_NAME, "ix_sessions_trgm_session_id")
    async with engine.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c "
                "ON c.oid = i.indexrelid WHERE c.relname = ANY(:names)"
            ),
            {"names": list(names)},
        )
        return {str(name): bool(valid) for name, valid in found}


@contextlib.asynccontextmanager
async def old_snapshot(
    engine: AsyncEngine, table: str = "sessions"
) -> AsyncIterator[AsyncConnection]:
    """A transaction with a snapshot of now (taken by reading `table`), open until the caller
    sends `COMMIT` on the connection given (or leaves). `CREATE INDEX CONCURRENTLY` waits for
    every such older snapshot, whatever it read, before its index becomes valid: it holds a
    concurrent build at its last wait."""
    async with engine.connect() as holder:
        await holder.execute(text("BEGIN ISOLATION LEVEL REPEATABLE READ"))
        await holder.execute(text(f"SELECT count(*) FROM {table}"))
        yield holder


async def through_the_keys(
    engine: AsyncEngine, tenant: str, term: str, index: str = KEYS_INDEX_NAME
) -> list[str]:
    """The tenant's ids holding `term`, read through the keys index `index` alone (checked by
    EXPLAIN), ordered by id."""
    statement = (
        # the tenant compared by code point, as the search does: no B-tree's tenant column
        'SELECT session_id FROM sessions WHERE tenant_id COLLATE "C" = :tenant AND '
        "session_id_keys(tenant_id, session_id) @> session_id_keys(:tenant, :term) AND "
        "session_id ILIKE '%' || :term || '%' AND state = 'open' AND created_at IS NOT NULL"
        " AND session_type IN ('browser', 'mobile') ORDER BY session_id COLLATE \"C\""
    )
    values = {"tenant": tenant, "term": term}
    async with engine.connect() as conn, conn.begin():
        await conn.execute(text("SET LOCAL enable_seqscan = off"))
        await conn.execute(text("SET LOCAL enable_indexscan = off"))
        plan = "\n".join(row[0] for row in await conn.execute(text(f"EXPLAIN {statement}"), values))
        assert index in plan, plan
        return [str(found) for (found,) in await conn.execute(text(statement), values)]


async def build_waiting(engine: AsyncEngine) -> bool:
    """Whether a `CREATE INDEX CONCURRENTLY` is waiting on a lock (another transaction)."""
    async with engine.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND query LIKE 'CREATE INDEX CONCURRENTLY%' AND wait_event_type = 'Lock'"
            )
        )
        return bool(found.scalar_one())
