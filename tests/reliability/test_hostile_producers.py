"""A hostile producer of tenant B on every topic, against tenant A, on the real broker and both
backends (issue 12's last bullet).

Tenant A (the victim) has three sessions created through `SessionEventPublisher`, one of them
revoked by a terminate command; a registry, a one-tenant gateway (A), a many-tenant gateway (a
resolver) and A's settings follower run. Tenant B then sends what `hostile_records` builds: the
nine attacks of issue 12 by hand and Hypothesis-generated records (a fixed number, derandomized)
on `sessions.events`, `sessions.commands`, `sessions.revocations` and `sessions.settings`, and
on each what only a client writing Kafka's bytes sends (`byte_level`: a header name that is not
UTF-8, a compression bomb, a record with neither key nor value; since 2026-12-05; a record
placed past its batch, since stop 69).
Once everything has read to the end, the test shows:

- the registry, both gateways and the settings follower still run, and the gateways are ready;
  a gateway started afterwards reads the whole revocations topic and becomes ready;
- every event and command record is applied (its history, command or session row is there) or
  on the dead-letter topic once, with an escaped, non-empty reason; applied + dead-lettered =
  sent; the decoder refuses exactly what was dead-lettered, and a bomb or a record placed past
  its batch is dead-lettered as an unreadable batch at its own offset;
- A's rows (sessions, history, applied commands, termination requests, revocations) are the
  same as before the attack, even after a sweep that tombstones B's short-lived revocations;
- A's revoked session is refused by every gateway, A's live one admitted; and A's next command,
  whose id B used first, is still applied and enforced.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from hostile_records import (
    BAD_NAME,
    COMMAND_TOPIC,
    EVENT_TOPIC,
    REVOCATION_TOPIC,
    SETTINGS_TOPIC,
    VICTIM,
    A,
    B,
    byte_level,
    generated,
    issue_twelve,
    now,
    victim_fields,
)
from hostile_support import Hostile, Sent, consumed_all, running, send_all
from registry_helpers import read_topic
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from auth_gateway import GatewaySettings, SessionGateway
from demo_service.policy import SettingsTopicPolicySource, StaticPolicySource
from demo_service.settings import DemoSettings
from fresh_topics import connection
from java_producer import java_send
from polling import until
from raw_producer import raw_send, send_offset_forged
from read_model.tables import (
    applied_commands,
    revocations,
    session_history,
    sessions,
    termination_requests,
)
from session_contracts.codec import DecodeError, decode_command, decode_event, encode
from session_contracts.handles import record_key, session_handle
from session_contracts.kafka_clients import new_producer
from session_contracts.kafka_records import UNREADABLE_PREFIX, unreadable_reason
from session_contracts.models import (
    SessionPolicy,
    SessionSettingsChanged,
    SessionType,
    TerminateSessions,
    as_utc,
)
from session_contracts.publisher import SessionEventPublisher, created_event
from session_contracts.record_batches import INFLATED_MAX_BYTES
from session_contracts.topics import Topics
from session_registry.adapters.dead_letters import (
    REASON,
    SOURCE_OFFSET,
    SOURCE_PARTITION,
    SOURCE_TOPIC,
)
from session_registry.adapters.outbox import outbox_size
from session_registry.bootstrap import Registry

pytestmark = pytest.mark.kafka

A_TABLES = {
    "sessions": (sessions, [sessions.c.session_id]),
    "session_history": (session_history, [session_history.c.event_id]),
    "applied_commands": (applied_commands, [applied_commands.c.command_id]),
    "termination_requests": (termination_requests, [termination_requests.c.command_id]),
    "revocations": (revocations, [revocations.c.session_id]),
}
UNESCAPED = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
"""What a dead letter's reason must never carry raw (docs/contract.md, dead letters)."""
A_SETTINGS = {"browser": SessionPolicy(max_session_seconds=7 * 86_400, idle_timeout_seconds=7_200)}


async def echo(request: Request) -> JSONResponse:
    """The app behind a gateway: the handle it was handed (it authenticates nobody)."""
    return JSONResponse({"handle": getattr(request.state, "session_handle", None)})


def _tenant_header(scope: Any) -> str | None:
    """The many-tenant gateway's resolver: the request's `x-tenant` header."""
    value = dict(scope["headers"]).get(b"x-tenant")
    return value.decode("latin-1") if value else None


def _gateway(kafka_bootstrap: str, topics: Topics, tenant: str | None) -> SessionGateway:
    settings = GatewaySettings(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        topic_prefix=topics.prefix,
        topic_partitions=topics.partitions,
        gateway_tenant_id=tenant,
        gateway_activity_interval_seconds=1,
    )
    return SessionGateway.from_settings(
        settings, tenant_resolver=None if tenant else _tenant_header
    )


@contextlib.asynccontextmanager
async def _serving(gateway: SessionGateway) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway started, ready, in front of `echo`; an HTTP client of it."""
    app = Starlette(routes=[Route("/{path:path}", echo)])
    gateway.install(app, manage_lifespan=False)
    await gateway.start()
    try:
        async with asyncio.timeout(30):
            await gateway.wait_ready()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            yield client
    finally:
        await gateway.stop()


async def _status(client: httpx.AsyncClient, credential: str, tenant: str = A) -> int:
    response = await client.get("/me", headers={"x-session-id": credential, "x-tenant": tenant})
    return response.status_code


async def _a_rows(registry: Registry) -> dict[str, list[dict[str, Any]]]:
    """Every row of tenant A in the tables an attacker would want to change."""
    rows = {}
    async with registry.engine.connect() as conn:
        for name, (table, order) in A_TABLES.items():
            query = select(table).where(table.c.tenant_id == A).order_by(*order)
            rows[name] = [dict(r._mapping) for r in await conn.execute(query)]
    return rows


async def _gateway_read_to_end(
    gateway: SessionGateway, ends: dict[TopicPartition, int], what: str
) -> None:
    async def caught_up() -> bool:
        positions = gateway.watcher._positions
        return all(positions.get(tp, -1) >= end for tp, end in ends.items())

    await until(caught_up, within=30, what=what)


async def _end_offsets(kafka_bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=None)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        ends: dict[TopicPartition, int] = await consumer.end_offsets(
            [TopicPartition(topic, p) for p in partitions]
        )
        return ends
    finally:
        await consumer.stop()


async def _revocation_trail(
    registry: Registry, gateways: tuple[SessionGateway, ...], kafka_bootstrap: str, topics: Topics
) -> str:
    """Where A's revocations stopped: A's sessions and revocation rows in the read model, the
    registry's outbox, the revocations topic's end offsets and how far each gateway read."""
    rows = await _a_rows(registry)
    states = {r["session_id"]: (r["state"], r["end_reason"]) for r in rows["sessions"]}
    revoked = [r["session_id"] for r in rows["revocations"]]
    async with registry.engine.connect() as conn:
        pending = await outbox_size(conn)
    ends = await _end_offsets(kafka_bootstrap, topics.revocations)
    read = [
        {"ready": g.watcher.ready, "status": g.status(), "positions": g.watcher._positions}
        for g in gateways
    ]
    return (
        f"A's sessions {states}, revocation rows {revoked}, applied commands "
        f"{[r['command_id'] for r in rows['applied_commands']]}, outbox {pending}, "
        f"revocations topic ends {ends}, gateways {read}"
    )


async def _victim_sets_up(kafka_bootstrap: str, topics: Topics, producer: AIOKafkaProducer) -> None:
    """A's three sessions through its publisher, one revoked by an admin's command, and A's
    settings as the admin API publishes them."""
    async with SessionEventPublisher(connection(kafka_bootstrap, topics)) as publisher:
        credentials = [*VICTIM.credentials, VICTIM.stolen]
        for credential, event_id in zip(credentials, VICTIM.created_ids, strict=True):
            await publisher.publish(created_event(**victim_fields(credential, event_id)))
    await _command(producer, topics, VICTIM.command_id, VICTIM.revoked, VICTIM.stolen)
    record = SessionSettingsChanged(
        event_id=uuid.uuid4(),
        occurred_at=now(),
        tenant_id=A,
        changed_by="alice-admin",
        settings=A_SETTINGS,
    )
    await producer.send_and_wait(topics.settings, encode(record), key=A.encode())


async def _command(
    producer: AIOKafkaProducer, topics: Topics, command_id: Any, *credentials: str
) -> None:
    command = TerminateSessions(
        command_id=command_id,
        requested_at=now(),
        tenant_id=A,
        requested_by="alice-admin",
        session_ids=[session_handle(A, c) for c in credentials],
    )
    await producer.send_and_wait(
        topics.commands, encode(command), key=record_key(A, str(command_id))
    )


async def _effect_present(registry: Registry, topic: str, message: Any) -> bool:
    """Whether an accepted record left its mark: a history row (created, terminated,
    expired), a session row (activity) or an applied command."""
    async with registry.engine.connect() as conn:
        if topic == COMMAND_TOPIC:
            table, key = applied_commands, applied_commands.c.command_id == str(message.command_id)
        elif message.type == "session.activity":
            table, key = sessions, sessions.c.session_id == message.session_id
        else:
            table, key = session_history, session_history.c.event_id == str(message.event_id)
        query = select(table.c.tenant_id).where(table.c.tenant_id == message.tenant_id, key)
        return (await conn.execute(query)).first() is not None


async def _check_applied_or_dead_lettered(
    kafka_bootstrap: str,
    topics: Topics,
    registry: Registry,
    sent: dict[str, list[Sent]],
) -> dict[str, Counter[str]]:
    """Every event and command record sent: applied, or dead-lettered once with an escaped
    reason, as the decoder decides; the counts per topic."""
    names = {topics.events: EVENT_TOPIC, topics.commands: COMMAND_TOPIC}
    letters: dict[tuple[str, int, int], str] = {}
    for letter in await read_topic(kafka_bootstrap, topics.dead_letters):
        headers = dict(letter.headers)
        source = names[headers[SOURCE_TOPIC].decode()]
        where = (source, int(headers[SOURCE_PARTITION]), int(headers[SOURCE_OFFSET]))
        reason = headers[REASON].decode()
        assert where not in letters, ("dead-lettered twice", where)
        assert reason and not UNESCAPED.search(reason) and len(reason) <= 1024, reason
        letters[where] = reason
    figures: dict[str, Counter[str]] = {}
    for topic, decode in ((EVENT_TOPIC, decode_event), (COMMAND_TOPIC, decode_command)):
        counts: Counter[str] = Counter()
        for record, partition, offset, _ in sent[topic]:
            reason = letters.pop((topic, partition, offset), None)
            if record.bomb or record.placed_past:  # one placeholder, at the batch's offset
                prefix = f"{UNREADABLE_PREFIX}{offset} to {offset}): "
                assert reason is not None and reason.startswith(prefix), (record.name, reason)
                counts["dead-lettered"] += 1
                continue
            try:
                message, refusal = decode(record.value), None
            except DecodeError as error:
                message, refusal = None, error.reason
            if record.valid is not None:
                assert (message is not None) == record.valid, (record.name, refusal)
            if message is None:
                assert reason == refusal, (record.name, reason, refusal)
                counts["dead-lettered"] += 1
            elif reason is not None:  # accepted by the contract, refused by the database
                counts["refused by the database"] += 1
                raise AssertionError(f"{record.name}: the contract accepts it, but {reason}")
            else:
                assert await _effect_present(registry, topic, message), record.name
                counts["applied"] += 1
        counts["sent"] = len(sent[topic])
        assert counts["applied"] + counts["dead-lettered"] == counts["sent"], counts
        figures[topic] = counts
    assert not letters, ("dead letters of records nobody sent", letters)
    return figures


async def test_a_hostile_producer_on_every_topic_changes_nothing_of_another_tenant(
    kafka_bootstrap: str, topics: Topics, db_url: str
) -> None:
    started = time.monotonic()
    demo = DemoSettings(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        topic_prefix=topics.prefix,
        topic_partitions=topics.partitions,
        gateway_tenant_id=A,
    )
    policies = SettingsTopicPolicySource(demo, StaticPolicySource.from_settings(demo))
    policy_task = asyncio.create_task(policies.run())
    one, many = _gateway(kafka_bootstrap, topics, A), _gateway(kafka_bootstrap, topics, None)
    async with (
        running(kafka_bootstrap, topics, db_url) as (registry, producer),
        _serving(one) as one_client,
        _serving(many) as many_client,
    ):
        try:
            await _victim_sets_up(kafka_bootstrap, topics, producer)
            await consumed_all(registry)

            async def revoked_everywhere() -> bool:
                return all(
                    one.is_revoked(c) and many.is_revoked(c, A)
                    for c in (VICTIM.revoked, VICTIM.stolen)
                )

            try:
                await until(revoked_everywhere, within=30, what="A's revocation at both gateways")
            except AssertionError as missed:  # say where (it found a command read first, 12-05)
                trail = await _revocation_trail(registry, (one, many), kafka_bootstrap, topics)
                raise AssertionError(f"{missed}; {trail}") from None
            await until(
                lambda: _policy_is(policies, A_SETTINGS["browser"]), within=30, what="settings"
            )
            before = await _a_rows(registry)
            assert len(before["sessions"]) == 4 and len(before["revocations"]) == 2

            # --- the attack -------------------------------------------------------------
            attack_started = time.monotonic()
            hand = issue_twelve()  # now: item 4's sessions end a minute from now
            hostile = {topic: [*hand[topic], *generated(topic)] for topic in hand}
            targets = {
                EVENT_TOPIC: topics.events,
                COMMAND_TOPIC: topics.commands,
                REVOCATION_TOPIC: topics.revocations,
                SETTINGS_TOPIC: topics.settings,
            }
            sent = {
                topic: await send_all(producer, targets[topic], records)
                for topic, records in hostile.items()
            }
            raw = byte_level()
            landed = await asyncio.gather(
                *(_send_bytes(kafka_bootstrap, targets[t], records) for t, records in raw.items())
            )
            for topic, more in zip(raw, landed, strict=True):
                sent[topic] += more
            for n in range(20):  # issue 12 item 6 at the gateway: random credentials
                assert await _status(one_client, f"random-{n}-cookie") == 200
            await consumed_all(registry, seconds=90)
            figures = await _check_applied_or_dead_lettered(kafka_bootstrap, topics, registry, sent)
            async with registry.engine.connect() as conn:
                activity_only = (
                    await conn.execute(
                        select(sessions).where(
                            sessions.c.tenant_id == B, sessions.c.created_at.is_(None)
                        )
                    )
                ).all()
            assert len(activity_only) >= 20
            # item 6: rows never created have a bound, counted from the latest of their activity
            # and the moment the registry stored them (both before `stored_by`)
            stored_by = datetime.now(UTC)
            for row in activity_only:
                assert row.state != "open" or row.expires_at is not None, row
                if row.state == "open" and row.last_activity_at is not None:
                    latest = max(as_utc(row.last_activity_at), stored_by)
                    assert as_utc(row.expires_at) <= latest + timedelta(hours=1), row
            item_4 = [session_handle(A, VICTIM.stolen), session_handle(B, VICTIM.stolen)]
            async with registry.engine.connect() as conn:
                b_revoked = select(revocations.c.session_id).where(
                    revocations.c.tenant_id == B, revocations.c.session_id.in_(item_4)
                )
                assert len((await conn.execute(b_revoked)).all()) == 2
            # the registry's time moves past B's one-minute sessions: their revocations are
            # tombstoned (item 4's second half), keyed B's, so A's entry stays
            swept = await registry.sweep_once(now() + timedelta(seconds=90))
            assert swept.tombstoned >= 2
            async with registry.engine.connect() as conn:
                assert not (await conn.execute(b_revoked)).all()
            await consumed_all(registry)
            attack_seconds = time.monotonic() - attack_started

            _same_rows(await _a_rows(registry), before)
            ends = await _end_offsets(kafka_bootstrap, topics.revocations)
            for gateway, name in ((one, "one-tenant"), (many, "many-tenant")):
                await _gateway_read_to_end(gateway, ends, f"{name} gateway read the attack")
                assert gateway.ready and all(not t.done() for t in gateway._tasks), name
            assert policies.ready and not policy_task.done()
            assert await _policy_is(policies, A_SETTINGS["browser"])
            for client in (one_client, many_client):
                assert await _status(client, VICTIM.revoked) == 401
                assert await _status(client, VICTIM.stolen) == 401
                assert await _status(client, VICTIM.live) == 200
            # a listed handle is no credential (item 5): presented, it is another session
            response = await one_client.get(
                "/me", headers={"x-session-id": session_handle(A, VICTIM.live)}
            )
            assert response.json()["handle"] != session_handle(A, VICTIM.live)
            assert one.activity.sent == 0 and one.activity.pending == 0  # item 6
            assert one.watcher.records_rejected >= 1 and one.watcher.tombstones_ignored >= 2
            assert many.watcher.records_rejected >= 1 and many.watcher.tombstones_ignored >= 2

            # --- A's next command, whose id B used first, is still A's ------------------
            await _command(producer, topics, VICTIM.next_command_id, VICTIM.later)
            await consumed_all(registry)

            async def later_revoked() -> bool:
                return one.is_revoked(VICTIM.later) and many.is_revoked(VICTIM.later, A)

            await until(later_revoked, within=30, what="A's next revocation at both gateways")
            after = await _a_rows(registry)
            assert [r["command_id"] for r in after["applied_commands"]] == sorted(
                str(c) for c in (VICTIM.command_id, VICTIM.next_command_id)
            )
            for client in (one_client, many_client):
                assert await _status(client, VICTIM.later) == 401
                assert await _status(client, VICTIM.revoked) == 401

            # --- a gateway started now reads all of it --------------------------------
            fresh = _gateway(kafka_bootstrap, topics, None)
            async with _serving(fresh) as fresh_client:
                assert await _status(fresh_client, VICTIM.revoked) == 401
                assert await _status(fresh_client, VICTIM.stolen) == 401
                assert await _status(fresh_client, VICTIM.live) == 200
                records = await read_topic(kafka_bootstrap, topics.revocations)
                unreadable = [r for r in records if unreadable_reason(r.key, r.value, r.headers)]
                assert len(unreadable) == 2  # the bomb and the record placed past its batch
                valued = sum(r.value is not None for r in records) + len(unreadable)
                watcher = fresh.watcher
                read = watcher.records_applied + watcher.records_rejected + watcher.records_newer
                assert read == valued
                fresh_status = fresh.status()
        finally:
            policy_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await policy_task

    kinds = Counter(
        f"{topic}: {'issue 12' if r in hand[topic] else 'generated'}"
        for topic, records in hostile.items()
        for r in records
    )
    kinds.update(f"{topic}: bytes" for topic, records in raw.items() for _ in records)
    total = sum(len(r) for r in hostile.values()) + sum(len(r) for r in raw.values())
    print(
        f"\nhostile producers ({db_url.partition(':')[0]}): {total} records, {dict(kinds)}; "
        f"events {dict(figures[EVENT_TOPIC])}; commands {dict(figures[COMMAND_TOPIC])}; "
        f"gateways rejected {one.watcher.records_rejected}/{many.watcher.records_rejected}, "
        f"tombstones ignored {one.watcher.tombstones_ignored}/{many.watcher.tombstones_ignored}; "
        f"fresh gateway {fresh_status}; swept {swept}; "
        f"attack to caught up {attack_seconds:.1f} s, whole test {time.monotonic() - started:.1f} s"
    )


async def _send_bytes(kafka_bootstrap: str, topic: str, records: list[Hostile]) -> list[Sent]:
    """Send what only a client writing Kafka's bytes sends (`byte_level`), each in a batch of
    its own, and find each where it landed (Java's producer picks the partition of a record
    without a key; the registry writes revocations meanwhile), read as consumers read it."""
    before = await _end_offsets(kafka_bootstrap, topic)
    bombs = new_producer(
        connection(kafka_bootstrap), compression_type="zstd", max_request_size=64_000_000
    )
    await bombs.start()
    try:
        for record in records:
            if record.bomb:  # 40 MB of zeros: a few KB of zstd
                zeros = bytes(INFLATED_MAX_BYTES + 8_000_000)
                await bombs.send_and_wait(topic, zeros, key=record.key, partition=0)
            elif record.placed_past:
                assert record.key is not None and record.value is not None, record.name
                await send_offset_forged(
                    kafka_bootstrap, topic, [(2**31 - 1, record.key, record.value)]
                )
            elif record.raw_headers:
                await raw_send(
                    kafka_bootstrap, topic, [(record.key, record.value, record.raw_headers)]
                )
            else:
                assert record.key is None and record.value is None, record.name
                await java_send(kafka_bootstrap, topic, [(b"NULL", b"NULL")], null=b"NULL")
    finally:
        await bombs.stop()
    new = [
        r
        for r in await read_topic(kafka_bootstrap, topic)
        if r.offset >= before[TopicPartition(topic, r.partition)]
    ]

    def found(record: Hostile, read: Any) -> bool:
        if record.bomb or record.placed_past:
            reason = unreadable_reason(read.key, read.value, read.headers) or ""
            return bool(reason) and ("out of place" in reason) == record.placed_past
        if record.raw_headers:
            return bool(read.headers[:1] == ((BAD_NAME.decode(errors="replace"), b"1"),))
        return bool(read.key is None and read.value is None and not read.headers)

    sent = []
    for record in records:
        (read,) = [r for r in new if found(record, r)]
        at = datetime.fromtimestamp(read.timestamp / 1000, UTC)
        sent.append(Sent(record, read.partition, read.offset, at))
    return sent


async def _policy_is(policies: SettingsTopicPolicySource, policy: SessionPolicy) -> bool:
    return await policies.current(A, SessionType.browser) == policy


def _same_rows(
    now_rows: dict[str, list[dict[str, Any]]], before: dict[str, list[dict[str, Any]]]
) -> None:
    """A's rows are what they were, table by table (the assertion names what changed)."""
    for name, rows in before.items():
        changed = [
            {k: (b[k], a.get(k)) for k in b if a.get(k) != b[k]}
            for b, a in zip(rows, now_rows[name], strict=False)
            if a != b
        ]
        assert len(now_rows[name]) == len(rows) and not changed, (name, changed, now_rows[name])
