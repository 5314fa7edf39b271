"""The burst of `bench.soak`: every session of several tenants terminated by one filter each.

Gateways (one `SessionGateway` per tenant, as a platform service of that tenant runs) follow
the revocations topic throughout. The clock starts when the first command is posted to the
admin API; it stops once every command reports `applied` (read model), and once every
session id is revoked at its tenant's gateway. Afterwards the read model is counted, and the
`session.terminated` events written since the commands are counted per session.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import func, select

from auth_gateway import SessionGateway
from read_model.database import make_engine
from read_model.tables import sessions
from session_registry.adapters.partitions import topic_partitions

POLL_SECONDS = 0.1


@dataclass
class BurstResult:
    """Counts and times of the burst (times None when never reached)."""

    sessions: int
    commands: int
    requested: int = 0
    terminated_reported: int = 0
    still_open: int = -1
    events: int = 0
    events_missing: int = -1
    events_duplicated: int = 0
    revoked_at_gateways: int = 0
    applied_seconds: float | None = None
    gateway_seconds: float | None = None

    @property
    def lost(self) -> list[str]:
        """What went wrong, in words (empty: every session ended, announced and revoked)."""
        problems = []
        if self.terminated_reported != self.sessions or self.still_open != 0:
            problems.append(
                f"burst: {self.terminated_reported} of {self.sessions} reported terminated, "
                f"{self.still_open} still open in the read model"
            )
        if self.events_missing or self.events_duplicated:
            problems.append(
                f"burst: session.terminated missing for {self.events_missing}, "
                f"duplicated for {self.events_duplicated}"
            )
        if self.revoked_at_gateways != self.sessions:
            problems.append(f"burst: {self.revoked_at_gateways} of {self.sessions} at gateways")
        return problems


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    """The topic's end offsets now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        ends: dict[TopicPartition, int] = await consumer.end_offsets(
            await topic_partitions(consumer, topic)
        )
        return ends
    finally:
        await consumer.stop()


async def terminated_events(
    bootstrap: str, since: dict[TopicPartition, int], tenants: set[str]
) -> Counter[tuple[str, str]]:
    """session.terminated events of these tenants after `since`, counted per session."""
    counts: Counter[tuple[str, str]] = Counter()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        ends = await consumer.end_offsets(list(since))
        consumer.assign(list(since))
        for tp, offset in since.items():
            consumer.seek(tp, offset)
        remaining = {tp for tp in since if ends[tp] > since[tp]}
        while remaining:
            batch = await consumer.getmany(timeout_ms=500, max_records=20_000)
            for records in batch.values():
                for record in records:
                    body = json.loads(record.value or b"{}")
                    if body.get("type") == "session.terminated" and body["tenant_id"] in tenants:
                        counts[body["tenant_id"], body["session_id"]] += 1
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return counts


async def run_burst(
    api: str,
    tokens: dict[str, str],
    expected: dict[str, set[str]],
    gateways: dict[str, SessionGateway],
    *,
    bootstrap: str,
    events_topic: str,
    database_url: str,
    within: float,
) -> BurstResult:
    """Post one `{"filter": {}}` termination per tenant; time and count what follows."""
    result = BurstResult(sum(len(ids) for ids in expected.values()), len(tokens))
    since = await end_offsets(bootstrap, events_topic)
    missing = {tenant: set(ids) for tenant, ids in expected.items()}
    pending: dict[str, str] = {}
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=api, timeout=60) as client:
        for tenant, token in tokens.items():
            response = await client.post(
                "/api/v1/sessions/terminations",
                json={"filter": {}},
                headers={"Authorization": f"Bearer {token}"},
            )
            if response.status_code != 202:
                raise SystemExit(f"burst command refused: {response.status_code} {response.text}")
            pending[tenant] = response.json()["command_id"]
            result.requested += response.json()["requested"]
        while time.monotonic() - started < within:
            for tenant, command_id in list(pending.items()):
                status = await client.get(
                    f"/api/v1/sessions/terminations/{command_id}",
                    headers={"Authorization": f"Bearer {tokens[tenant]}"},
                )
                if status.status_code == 200 and status.json()["status"] == "applied":
                    result.terminated_reported += status.json()["terminated"]
                    del pending[tenant]
            if not pending and result.applied_seconds is None:
                result.applied_seconds = time.monotonic() - started
            for tenant, ids in missing.items():
                revoked = gateways[tenant].is_handle_revoked  # the workload knows handles only
                ids.difference_update([s for s in ids if revoked(tenant, s)])
            if not any(missing.values()) and result.gateway_seconds is None:
                result.gateway_seconds = time.monotonic() - started
            if result.applied_seconds is not None and result.gateway_seconds is not None:
                break
            await asyncio.sleep(POLL_SECONDS)
    result.revoked_at_gateways = result.sessions - sum(len(ids) for ids in missing.values())
    result.still_open = await open_sessions(database_url, set(expected))
    counts = await terminated_events(bootstrap, since, set(expected))
    result.events = sum(counts.values())
    wanted = {(tenant, s) for tenant, ids in expected.items() for s in ids}
    result.events_missing = len(wanted - counts.keys())
    result.events_duplicated = sum(1 for n in counts.values() if n > 1)
    return result


async def open_sessions(database_url: str, tenants: set[str], ids: list[str] | None = None) -> int:
    """Sessions of these tenants (of these ids, if given) still open in the read model."""
    engine = make_engine(database_url)
    s = sessions.c
    query = select(func.count()).where(s.tenant_id.in_(sorted(tenants)), s.state == "open")
    if ids is not None:
        query = query.where(s.session_id.in_(ids))
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())
    finally:
        await engine.dispose()
