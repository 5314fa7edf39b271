"""DDL on a table the running release reads and writes, without stalling it.

`ALTER TABLE ... ADD COLUMN` is instant on PostgreSQL, but it first takes the table's ACCESS
EXCLUSIVE lock, and waits for every transaction that has read the table to end: an admin's CSV
export streams for up to a minute, a long list query, an SRE's open `psql`. While it waits it
sits in the lock queue, and every other reader and writer of the table (the admin list, the
registry's batches, so revocations) queues behind it: one slow export would stall them all for
as long as it lasts. So the statement waits at most `ATTEMPT_MS` at a time (`lock_timeout`, in a
savepoint it is rolled back to), lets the queue drain for `PAUSE_SECONDS`, and tries again, up
to `WITHIN_SECONDS`; then the migration fails, naming what held the table. SQLite has no such
queue: the statement runs as it is.

A revision that does this is listed in `POLITE_REVISIONS`, and `database.upgrade_schema` runs it
in a transaction of its own: in one with earlier revisions it would hold their locks (revision
1301's on `revocations`) all the while it waits, and a registry batch holding a session row
while it waits for `revocations` would wait for it, and it for the batch (found by a review).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

ATTEMPT_MS = 1000
"""How long one attempt waits for the lock: the longest the table's other users queue behind it."""
PAUSE_SECONDS = 1.0
"""Between attempts: the queue behind the last one drains."""
WITHIN_SECONDS = 600.0
"""How long to keep trying before the migration fails (and the start with it)."""
POLITE_REVISIONS = ("1401_creation_appended",)
"""Revisions whose DDL waits politely: each runs in a transaction of its own, after the
revisions before it are committed (`database.upgrade_schema`)."""
LOCK_NOT_AVAILABLE = "55P03"
"""The attempt's `lock_timeout` ran out: the statement did not run, and another attempt may. A
deadlock (40P01) is raised: the statement takes no lock before it waits, so the cycle runs
through locks its transaction held before, which rolling back the attempt keeps, and every
attempt would make it again."""


def _waited_out(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "pgcode", None) or getattr(exc.orig, "sqlstate", None)
    return code == LOCK_NOT_AVAILABLE or "lock timeout" in str(exc.orig)


def _holders(bind: Connection, table: str) -> str:
    """Who holds a lock on `table` now: pid, state and age of each other backend (never its
    query text, which may hold values), for the error that ends the wait."""
    rows = bind.execute(
        text(
            "SELECT a.pid, a.state, a.application_name, clock_timestamp() - a.xact_start AS age "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.relation = CAST(:table AS regclass) AND l.granted AND a.pid <> "
            "pg_backend_pid() ORDER BY a.xact_start"
        ),
        {"table": table},
    ).all()
    return "; ".join(
        f"pid {r.pid} ({r.application_name or 'no name'}, {r.state}, transaction open {r.age})"
        for r in rows
    )


def politely(
    bind: Connection,
    table: str,
    statement: Callable[[], None],
    *,
    attempt_ms: int = ATTEMPT_MS,
    pause_seconds: float = PAUSE_SECONDS,
    within_seconds: float = WITHIN_SECONDS,
) -> None:
    """Run `statement` (DDL on `table`, which takes its ACCESS EXCLUSIVE lock) without queueing
    the table's other users behind it for more than `attempt_ms` at a time (module docstring).
    Raises TimeoutError, naming who holds the table, after `within_seconds`."""
    if bind.dialect.name != "postgresql":
        statement()
        return
    deadline = time.monotonic() + within_seconds
    before = bind.execute(text("SELECT current_setting('lock_timeout')")).scalar_one()
    attempts = 0
    while True:
        attempts += 1
        try:
            with bind.begin_nested():
                bind.execute(text(f"SET LOCAL lock_timeout = {int(attempt_ms)}"))
                statement()
                # the rest of the transaction waits as it would have
                bind.execute(
                    text("SELECT set_config('lock_timeout', :before, true)"), {"before": before}
                )
            return
        except DBAPIError as exc:
            if not _waited_out(exc):
                raise
        holders = _holders(bind, table)
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"could not take the lock on {table} in {within_seconds:.0f} s ({attempts} "
                f"attempts of {attempt_ms} ms): transactions that read or write it stay open: "
                f"{holders or 'none now'}; end them (pg_stat_activity) and migrate again"
            )
        if attempts == 1 or attempts % 30 == 0:
            log.warning(
                "waiting to alter %s: transactions hold it (%s); trying again after %.0f s, "
                "each time for %d ms, for up to %.0f s, without holding its other users up",
                table,
                holders or "none now",
                pause_seconds,
                attempt_ms,
                within_seconds,
            )
        # pg_sleep, not time.sleep: this runs in a greenlet on the caller's event loop
        bind.execute(text("SELECT pg_sleep(:seconds)"), {"seconds": pause_seconds})
