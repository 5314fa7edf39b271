"""Helpers of the registry's integration tests: event factories, settings, row snapshots.

The event factories take a session's credential (a short name such as "s1", as a platform
service knows its sessions) and build the event with `SessionEventPublisher`'s builders, so
the event carries its handle (contract v2); `sid(name)` is that handle, the session id rows,
revocations and commands use.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from devstack.scratch_databases import create_database, drop_database
from fresh_topics import read_records
from read_model.tables import sessions
from session_contracts.codec import decode_event
from session_contracts.handles import session_handle
from session_contracts.models import (
    ExpiryReason,
    SessionActivity,
    SessionCreated,
    SessionEvent,
    SessionExpired,
    SessionPolicy,
    SessionTerminated,
    SessionType,
    TerminationReason,
)
from session_contracts.publisher import activity_event, created_event, terminated_event
from session_contracts.settings import KafkaSettings
from session_contracts.topics import Topics
from session_registry.bootstrap import Registry
from session_registry.domain.fold import apply, refresh
from session_registry.domain.state import ACTIVITY_ONLY_SECONDS, SessionState
from session_registry.service_layer.ingest import append_time
from session_registry.settings import RegistrySettings

NOW = datetime.now(UTC).replace(microsecond=0)
StartRegistry = Callable[..., Awaitable[Registry]]


def past_the_appends(grace_seconds: int = 120) -> datetime:
    """A moment to sweep at once every record sent so far lies more than the registry's
    activity grace behind it. The sweeper expires no session before the grace past its
    creation's append (`session_store.due_for_expiry`), and tests date records from `NOW`,
    the module's import time, while the broker appends them when the test sends them: a sweep
    at `NOW` leaves open a session whose creation arrived past its deadline."""
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=grace_seconds + 1)


def sid(credential: str, tenant: str = "acme") -> str:
    """The handle (the session id on the wire and in rows) of a session of `tenant`."""
    return session_handle(tenant, credential)


def created(
    credential: str,
    *,
    tenant: str = "acme",
    at: datetime | None = None,
    session_type: SessionType = SessionType.browser,
    user: str = "u1",
    max_s: int = 86400,
    idle_s: int = 3600,
    ip: str = "10.0.0.1",
) -> SessionCreated:
    """A session.created event with sensible defaults, for the session `credential` names."""
    return created_event(
        event_id=uuid.uuid4(),
        occurred_at=at or NOW - timedelta(minutes=5),
        tenant_id=tenant,
        credential=credential,
        user_id=user,
        user_name=f"User {user}",
        session_type=session_type,
        ip_address=ip,
        user_agent="Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Chrome/124.0 Safari/537.36",
        policy=SessionPolicy(max_session_seconds=max_s, idle_timeout_seconds=idle_s),
    )


def activity(credential: str, at: datetime, *, tenant: str = "acme") -> SessionActivity:
    """A session.activity event."""
    return activity_event(
        event_id=uuid.uuid4(), occurred_at=at, tenant_id=tenant, credential=credential
    )


def logout(credential: str, at: datetime, *, tenant: str = "acme") -> SessionTerminated:
    """A session.terminated event from a platform service (the user logged out)."""
    return terminated_event(
        event_id=uuid.uuid4(),
        occurred_at=at,
        tenant_id=tenant,
        credential=credential,
        reason=TerminationReason.logout,
    )


def expired(credential: str, at: datetime, *, tenant: str = "acme") -> SessionExpired:
    """A session.expired event, as the registry's sweeper writes it (dated the deadline)."""
    return SessionExpired(
        event_id=uuid.uuid4(),
        occurred_at=at,
        tenant_id=tenant,
        session_id=session_handle(tenant, credential),
        reason=ExpiryReason.max_length,
    )


def registry_settings(
    kafka_bootstrap: str, topics: Topics, db_url: str, **overrides: Any
) -> RegistrySettings:
    """Settings of a registry on these topics and this database."""
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": kafka_bootstrap,
        "topic_prefix": topics.prefix,
        "topic_partitions": topics.partitions,
        "database_url": db_url,
        "consumer_group": f"registry-{uuid.uuid4().hex[:8]}",
        "sweep_interval_seconds": 0,
        "poll_timeout_ms": 100,
    }
    values.update(overrides)
    return RegistrySettings(**values)


async def session_rows(registry: Registry, tenant: str = "acme") -> dict[str, dict[str, Any]]:
    """The session rows of one tenant in the registry's database, by session id (handle)."""
    async with registry.engine.connect() as conn:
        result = await conn.execute(
            select(sessions).where(sessions.c.tenant_id == tenant).order_by(sessions.c.session_id)
        )
        return {row.session_id: dict(row._mapping) for row in result}


async def read_topic(bootstrap: str | KafkaSettings, topic: str) -> list[Any]:
    """Every record of a topic, up to its end offsets now (aiokafka ConsumerRecords)."""
    return await read_records(bootstrap, topic)


async def table_rows(url: str, table: Any, order_by: Any) -> list[dict[str, Any]]:
    """Every row of a table in a database, ordered."""
    from read_model.database import make_engine

    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(select(table).order_by(*order_by))
            return [dict(row._mapping) for row in result]
    finally:
        await engine.dispose()


async def sibling_database(db_url: str, folder: Path) -> tuple[str, Callable[[], Awaitable[None]]]:
    """A second empty database on the same backend as `db_url`, and how to drop it."""
    if db_url.startswith("sqlite"):
        path = folder / f"sibling-{uuid.uuid4().hex[:8]}.db"

        async def _nothing() -> None:
            return None

        return f"sqlite+aiosqlite:///{path}", _nothing
    name = f"{db_url.rpartition('/')[2]}_{uuid.uuid4().hex[:6]}"
    return await create_database(db_url, name), lambda: drop_database(db_url, name)


@dataclass(frozen=True)
class CliRun:
    """What a `session-registry` command printed."""

    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """Both streams, as an operator's terminal shows them."""
        return self.stdout + self.stderr


async def registry_cli(env: Mapping[str, str], *args: str, status: int = 0) -> CliRun:
    """`python -m session_registry *args` in a process of its own with `env`, awaited without
    blocking the test's event loop (a registry under test may be running in it); fails
    unless it exits with `status`."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "session_registry",
        *args,
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):  # a bound on a hang, not a speed claim
        out, err = await process.communicate()
    run = CliRun(out.decode(), err.decode())
    assert process.returncode == status, f"exit {process.returncode}: {run.output}"
    return run


def fold_records(
    log: Iterable[Any], until: datetime | None = None
) -> dict[tuple[str, str], SessionState]:
    """Events records (aiokafka's) folded in memory, per session in the order given, by the
    registry's own fold (`domain.fold.apply`): each creation with the time the broker appended
    it (the first appended wins). With `until`, each state refreshed as stored then.

    Not independent of the registry: it checks what the consumer does around the fold (which
    records reach it, in which order, stored where), never the fold's rules. Nor does it show
    a record applied twice: the fold is idempotent (an event applied again changes nothing,
    and `session_history` keeps one row per event id)."""
    return fold_appended(((decode_event(r.value), append_time(r)) for r in log), until)


def fold_appended(
    events: Iterable[tuple[SessionEvent, datetime | None]], until: datetime | None = None
) -> dict[tuple[str, str], SessionState]:
    """`fold_records` of events already decoded, each with its record's append time."""
    states: dict[tuple[str, str], SessionState] = {}
    for event, appended in events:
        key = (event.tenant_id, event.session_id)
        state = states.get(key)
        if state is None:
            state = states[key] = SessionState(tenant_id=key[0], session_id=key[1])
        apply(state, event, appended)
    if until is not None:
        for state in states.values():
            refresh(state, ACTIVITY_ONLY_SECONDS, until)
    return states
