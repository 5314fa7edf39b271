"""Opening the read model (the store for its URL) and bringing it to the current schema.

`open_store` is where a service chooses its backend, once, at start-up; everything after works
through the store it returns. Alembic's files live inside this package (`read_model/alembic.ini`,
`read_model/migrations/`), so `upgrade_schema` works from an installed wheel too.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from read_model.online_indexes import build_online_indexes
from read_model.polite_ddl import POLITE_REVISIONS
from read_model.postgres import PostgresStore
from read_model.revisions import (
    SchemaStanding,
    alembic_config,
    current_revision,
    release_revisions,
)
from read_model.sqlite import SqliteStore
from read_model.store import Store
from read_model.unit_of_work import UnitOfWork


def open_store(
    url: str,
    *,
    pool_size: int = 5,
    max_overflow: int | None = None,
    echo: bool = False,
    listing: bool = False,
) -> Store:
    """The store of `url`'s backend, with its engine (nothing is connected yet).

    `sqlite+aiosqlite://` gives a `SqliteStore`, `postgresql+asyncpg://` (or `postgresql://`)
    a `PostgresStore` with a pool of `pool_size` (and `max_overflow` more under bursts,
    default `pool_size`), tuned for the admin API's list queries when
    `listing`.
    """
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return SqliteStore(url, echo=echo)
    if backend in {"postgresql", "postgres"}:
        return PostgresStore(
            url, pool_size=pool_size, max_overflow=max_overflow, echo=echo, listing=listing
        )
    raise ValueError(f"no read model store for {backend!r}: use sqlite+aiosqlite or postgresql")


def make_engine(
    url: str, *, pool_size: int = 5, echo: bool = False, listing: bool = False
) -> AsyncEngine:
    """The engine of `url`'s store, for scripts and tests that only read and write tables."""
    return open_store(url, pool_size=pool_size, echo=echo, listing=listing).engine


def _steps(revision: str) -> list[str]:
    """The revisions to upgrade to, one transaction each: up to `revision`, with each polite
    revision on the way (`polite_ddl.POLITE_REVISIONS`) alone in its own, after those before
    it are committed. An upgrade to a revision already passed changes nothing. Only an
    upgrade to the head or to the polite revision itself is split."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    steps: list[str] = []
    for polite in POLITE_REVISIONS:
        if revision in ("head", polite):
            before = scripts.get_revision(polite).down_revision
            assert isinstance(before, str), f"{polite} has one parent"
            steps += [before, polite]
    return [*steps, revision] if revision not in steps else steps


def _upgrade(connection: Connection, revision: str) -> None:
    from alembic import command  # imported when used: read_model.revisions says why

    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def schema_of(url: str) -> str | None:
    """The schema revision of the database at `url`; None when it has none (nothing created)."""
    store = open_store(url)
    try:
        if not await store.exists():
            return None
        return await current_revision(store.engine)
    finally:
        await store.dispose()


async def standing_at(url: str) -> SchemaStanding:
    """Where the database at `url` stands against this release's head (an empty or missing
    database: behind, not migrated)."""
    head, known = await asyncio.to_thread(release_revisions)
    return SchemaStanding(await schema_of(url), head, known)


async def upgrade_schema(
    url_or_store: str | Store, revision: str = "head", *, online_indexes: bool = True
) -> None:
    """Bring a database to the current schema (Alembic migrations, on SQLite and PostgreSQL).

    Under the store's migration lock (PostgreSQL: an advisory lock), so replicas starting
    together run the migrations once, one after another, in one transaction each (a revision
    that waits politely for its lock in one of its own: `_steps`). Then, at the head revision,
    the indexes built concurrently (`read_model.online_indexes`), unless `online_indexes` is
    false: a registry builds them in the background instead.
    """
    store = open_store(url_or_store) if isinstance(url_or_store, str) else url_or_store
    try:
        for step in await asyncio.to_thread(_steps, revision):
            async with UnitOfWork(store) as uow:
                await store.lock_schema(uow.conn)
                await uow.conn.run_sync(_upgrade, step)
        if online_indexes:
            await build_online_indexes(store)
    finally:
        if isinstance(url_or_store, str):
            await store.dispose()
