"""Indexes built while the registry keeps writing: `CREATE INDEX CONCURRENTLY` (PostgreSQL).

A revision runs in the migrations' one transaction, and a `CREATE INDEX` there holds a `SHARE`
lock on `sessions` until it commits: no session is created, touched or terminated meanwhile.
Revision 0801's index of the session id's keys took 15 min 47 s to build at ten million
sessions on the bench's machine, so an upgrade in place would have stopped ingest, and with
it the termination commands and the revocations they publish, for that long.

So the indexes of `STEPS` are built after the migrations' transaction has committed, each
with `CREATE INDEX CONCURRENTLY`, which lets inserts, updates and deletes through while it
reads the table, and the indexes they replace are dropped (`DROP INDEX CONCURRENTLY`) only
once their successor is valid, so searches keep an index throughout:

- `upgrade_schema` runs them at once, after the migrations (the command line's `migrate`, a
  rebuild's fresh database, the development stack, the tests);
- a registry migrating on start runs them in the background while it consumes
  (`build_in_background`), and logs each step.

A build that stops half-way (a crash, a lost connection, a cancelled task) leaves an index
marked invalid: PostgreSQL keeps it up to date but never reads it. The next run finds it
invalid, drops it and builds it again. Two processes running the steps take turns: a
session-level advisory lock makes the second wait for the first, then find the indexes valid.

A database at an older revision than the head is left alone: the steps belong to the head's
schema (the keys index needs revision 0801's function).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from read_model.listing_indexes import ID_KEYS_INDEX_NAME, KEYS_INDEX, KEYS_INDEX_NAME
from read_model.revisions import head_revision, revision_of
from read_model.store import Store

log = logging.getLogger(__name__)


ONLINE_LOCK_KEY = 0x5E55_C0DE_0002
"""The advisory lock (session level) the steps run under; `MIGRATION_LOCK_KEY` is ...0001."""
RETRY_SECONDS = 30.0
"""How long a registry waits before trying the steps again after they failed."""


@dataclass(frozen=True)
class Step:
    """Build `name` with `statement` (a plain `CREATE INDEX`), or drop it (`statement` None)."""

    name: str
    statement: str | None = None


STEPS: tuple[Step, ...] = (
    Step(KEYS_INDEX_NAME, KEYS_INDEX),  # revisions 0801 and 1101
    Step(ID_KEYS_INDEX_NAME),  # revision 0801's keys alone, replaced by 1101's
    Step("ix_sessions_trgm_session_id"),  # what the keys replace: dropped once they are valid
)


def concurrently(statement: str) -> str:
    """`CREATE INDEX name ...` as `CREATE INDEX CONCURRENTLY IF NOT EXISTS name ...`."""
    prefix = "CREATE INDEX "
    if not statement.startswith(prefix):
        raise ValueError(f"not a plain CREATE INDEX: {statement[:60]!r}")
    return f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {statement[len(prefix) :]}"


async def build_online_indexes(store: Store, steps: tuple[Step, ...] = STEPS) -> list[str]:
    """Run the steps that are not done yet; return what was done (`built <name>`, `rebuilt
    <name>` for one left invalid, `dropped <name>`). Nothing on SQLite, nor on a database
    whose schema is not at the head revision."""
    if store.engine.dialect.name != "postgresql":
        return []
    done: list[str] = []
    async with store.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ONLINE_LOCK_KEY})
        try:
            if await revision_of(conn) != head_revision():
                return []
            for step in steps:
                action = await _run(conn, step)
                if action is not None:
                    log.info("online index step: %s", action)
                    done.append(action)
            if any(not action.startswith("dropped") for action in done):
                # A GIN built concurrently came out with its entries in its pending list (600
                # sessions: 69 pages, 221 once VACUUM had merged them into the tree), and the
                # planner passed it over after ANALYZE alone and took it after VACUUM (a
                # test's EXPLAIN). Neither blocks writes.
                await conn.execute(text("VACUUM (ANALYZE) sessions"))
        except BaseException:
            # Failed or cancelled (a registry stopping): the connection is closed, never
            # pooled in whatever state the statement left, and its closing releases the lock.
            await conn.invalidate()
            raise
        finally:
            if not conn.invalidated:
                await conn.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": ONLINE_LOCK_KEY}
                )
    return done


async def _run(conn: AsyncConnection, step: Step) -> str | None:
    found = await conn.execute(
        text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"),
        {"name": step.name},
    )
    valid = found.scalar_one_or_none()
    if step.statement is None:
        if valid is None:
            return None
        await conn.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {step.name}"))
        return f"dropped {step.name}"
    if valid:
        return None
    if valid is not None:  # left invalid by a build that stopped: PostgreSQL never reads it
        log.warning("index %s is invalid (a build stopped half-way); building it again", step.name)
        await conn.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {step.name}"))
    log.info("building index %s concurrently (writes go on meanwhile)", step.name)
    await conn.execute(text(concurrently(step.statement)))
    return f"{'rebuilt' if valid is not None else 'built'} {step.name}"


async def build_in_background(store: Store) -> None:
    """`build_online_indexes` until it succeeds, `RETRY_SECONDS` apart (a registry's task)."""
    while True:
        try:
            await build_online_indexes(store)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("online index steps failed; trying again in %.0f s", RETRY_SECONDS)
        await asyncio.sleep(RETRY_SECONDS)
