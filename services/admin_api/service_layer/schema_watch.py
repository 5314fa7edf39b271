"""The database schema's standing against this release, as the admin API reports it.

An admin API upgraded before its registry has migrated the database cannot serve the searches
that call what the newer revisions create. `/readyz` reads the standing on every call (calls at
the same moment share one read: `read_shared`) and says when it is behind; `SchemaWatch` also
reads it when the process starts and every `schema_check_seconds`, so the log and the
`admin_api_schema_behind` gauge (the `AdminApiSchemaBehind` alert) tell it without a load
balancer polling. Either way the
standing is logged with its revisions once each time it changes; `/readyz` itself names none.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy.ext.asyncio import AsyncEngine

from read_model.revisions import SchemaStanding, read_standing

log = logging.getLogger(__name__)


def schema_gauge(metrics: CollectorRegistry | None) -> Gauge:
    """`admin_api_schema_behind` on `metrics`: 1 while the database's schema is behind this
    release, else 0 (also before it is first read); across uvicorn workers, the highest of the
    live ones."""
    return Gauge(
        "admin_api_schema_behind",
        "1 while the database's schema is behind this release's migrations (run "
        "session-registry migrate), else 0",
        registry=metrics,
        multiprocess_mode="livemax",
    )


class SchemaWatch:
    """Reads and reports the standing of `engine`'s database (`read`, `note`, `run`)."""

    def __init__(self, engine: AsyncEngine, gauge: Gauge) -> None:
        self._engine = engine
        self._gauge = gauge
        self._said: str | None = None
        self._reading: asyncio.Future[SchemaStanding] | None = None

    async def read_shared(self) -> SchemaStanding:
        """`read`, one at a time: a caller while a read is under way gets its answer (or its
        error) instead of starting another. `/readyz` answers anyone, and each call took a
        pooled connection for two queries: a flood of them took the pool from the admins (a
        review, stop 72). Now a flood holds one connection at a time per process; a call after
        a read has ended reads afresh, and a call that joins a read under way gets an answer at
        most as old as that read (one migrated meanwhile is seen by the next call)."""
        if self._reading is None or self._reading.done():
            self._reading = asyncio.ensure_future(self.read())
            self._reading.add_done_callback(_retrieved)
        return await asyncio.shield(self._reading)

    async def read(self) -> SchemaStanding:
        """The standing now, noted (`note`); raises what the database raises."""
        standing = await read_standing(self._engine)
        self.note(standing)
        return standing

    def note(self, standing: SchemaStanding) -> None:
        """Set the gauge; log the standing with its revisions when it changed (a warning
        while behind)."""
        self._gauge.set(1 if standing.state == "behind" else 0)
        said = standing.describe()
        if said != self._said:
            self._said = said
            level = logging.WARNING if standing.state == "behind" else logging.INFO
            log.log(level, "schema %s", said)

    async def run(self, interval: float) -> None:
        """`read` now and every `interval` seconds until cancelled. A database that does not
        answer is `/readyz`'s to report: the gauge keeps its last value meanwhile."""
        while True:
            try:
                await self.read()
            except Exception as exc:  # the database away: tried again next time
                log.debug("schema standing unread: %s", type(exc).__name__)
            await asyncio.sleep(interval)


def _retrieved(read: asyncio.Future[SchemaStanding]) -> None:
    """Take a shared read's error, so that one whose every caller went away (cancelled while
    shielded) is not logged as never retrieved."""
    if not read.cancelled():
        read.exception()
