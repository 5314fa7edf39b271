"""Scratch PostgreSQL databases for the tests and the benchmarks: made, then dropped.

Both make an empty database next to a URL whose role may create databases (the admin URL of
`deploy/postgres.sh`, `SESSIONS_TEST_POSTGRES_URL`) and drop it when done. It lives here, with
the rest of what runs the system on a developer's machine, because the benchmarks may not
import the tests' helpers; no service ever creates or drops its own database.
"""

from __future__ import annotations

import re

import asyncpg  # type: ignore[import-untyped]

_NAME = re.compile(r"[A-Za-z0-9_]{1,63}")


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy `postgresql+asyncpg://` URL as asyncpg's own `connect` takes it."""
    return re.sub(r"^postgresql\+asyncpg://", "postgresql://", url)


def sibling_url(url: str, name: str) -> str:
    """The URL of database `name` on the same server, as the same role, as `url`."""
    return f"{url.rpartition('/')[0]}/{_checked(name)}"


async def create_database(url: str, name: str, template: str | None = None) -> str:
    """Create the database `name` on `url`'s server, empty or a copy of database `template`
    (which nobody may be connected to); return its URL."""
    copied = f' TEMPLATE "{_checked(template)}"' if template is not None else ""
    await _execute(url, f'CREATE DATABASE "{_checked(name)}"{copied}')
    return sibling_url(url, name)


async def drop_database(url: str, name: str) -> None:
    """Drop database `name` on `url`'s server if it exists, ending its connections first."""
    await _execute(url, f'DROP DATABASE IF EXISTS "{_checked(name)}" WITH (FORCE)')


async def _execute(url: str, statement: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _checked(name: str) -> str:
    # the name goes into the statement as an identifier: letters, digits and _ only
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a scratch database name: {name!r}")
    return name
