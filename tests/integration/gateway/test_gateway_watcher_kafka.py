"""The revocation watcher on a real broker: catch-up, following, tombstones, tenants, eviction,
and records of another tenant's producer or a broken one (issue 12 items 2 and 4)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

from auth_gateway import GatewaySettings, SessionGateway
from fresh_topics import connection
from java_producer import CODECS, java_send
from raw_producer import raw_send
from session_contracts.codec import encode
from session_contracts.handles import record_key, session_handle
from session_contracts.kafka_admin import ensure_topics
from session_contracts.kafka_clients import new_producer
from session_contracts.models import SessionRevoked, SessionType, TerminationReason
from session_contracts.record_batches import INFLATED_MAX_BYTES
from session_contracts.topics import Topics

pytestmark = pytest.mark.kafka

Revoke = Callable[..., Awaitable[None]]
TRACEPARENT = b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01"
Eventually = Callable[..., Awaitable[float]]


def gateway_for(
    kafka_bootstrap: str, topics: Topics, *, every_tenant: bool = False, **overrides: Any
) -> SessionGateway:
    settings = GatewaySettings(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        topic_prefix=topics.prefix,
        topic_partitions=topics.partitions,
        gateway_tenant_id=None if every_tenant else "acme",
        **overrides,
    )
    resolver = (lambda scope: None) if every_tenant else None
    return SessionGateway.from_settings(settings, tenant_resolver=resolver)


@contextlib.asynccontextmanager
async def running(gateway: SessionGateway, ready_within: float = 30) -> AsyncIterator[None]:
    await gateway.start()
    try:
        async with asyncio.timeout(ready_within):
            await gateway.wait_ready()
        yield
    finally:
        await gateway.stop()


async def test_catches_up_with_everything_published_before_start(
    kafka_bootstrap: str, topics: Topics, revoke: Revoke, producer: AIOKafkaProducer
) -> None:
    for n in range(300):
        await revoke(f"early-{n}")
    for n in range(40):
        await revoke(f"other-tenant-{n}", tenant_id="globex")
    for n in range(20):
        await revoke(f"early-{n}", tombstone=True)  # before valid_until: ignored
    for n in range(20, 30):
        await revoke(f"early-{n}", tenant_id="globex", tombstone=True)  # globex's keys
    await revoke("already-over", valid_for=timedelta(minutes=-5))
    await producer.send_and_wait(topics.revocations, b"{not json", key=b"garbage")
    await producer.send_and_wait(topics.revocations, b'{"type": "session.revoked"}', key=b"bad")

    gateway = gateway_for(kafka_bootstrap, topics, gateway_eviction_grace_seconds=0)
    assert not gateway.ready
    async with running(gateway):
        assert gateway.ready
        assert len(gateway.table) == 300
        assert gateway.is_revoked("early-0")
        assert gateway.is_revoked("early-20")
        assert gateway.is_revoked("early-299")
        assert not gateway.is_revoked("other-tenant-1")  # nothing crosses tenants
        assert not gateway.is_revoked("already-over")
        assert gateway.watcher.records_rejected == 2
        assert gateway.watcher.tombstones_ignored == 20
        assert gateway.staleness_seconds < 5


async def test_follows_new_revocations_and_tombstones_after_start(
    kafka_bootstrap: str, topics: Topics, revoke: Revoke, eventually: Eventually
) -> None:
    gateway = gateway_for(kafka_bootstrap, topics, gateway_eviction_grace_seconds=0)
    async with running(gateway):
        assert len(gateway.table) == 0
        await revoke("late", valid_for=timedelta(seconds=3))

        async def revoked() -> bool:
            return gateway.is_revoked("late")

        await eventually(revoked, within=10)  # how fast: bench.revocation, not a test
        await revoke("late", tombstone=True)  # early: the revocation stays

        async def tombstone_seen() -> bool:
            return gateway.watcher.tombstones_ignored == 1

        await eventually(tombstone_seen, within=5)
        assert gateway.is_revoked("late")
        await asyncio.sleep(3)  # now past valid_until: the registry's tombstone ends it
        await revoke("late", tombstone=True)

        async def forgotten() -> bool:
            return not gateway.is_revoked("late")

        await eventually(forgotten, within=5)
        assert len(gateway.table) == 0


@pytest.mark.parametrize("every_tenant", [False, True], ids=["one tenant", "every tenant"])
async def test_another_tenants_producer_cannot_undo_a_revocation_nor_a_broken_record_stop_it(
    kafka_bootstrap: str,
    topics: Topics,
    revoke: Revoke,
    producer: AIOKafkaProducer,
    eventually: Eventually,
    every_tenant: bool,
) -> None:
    """Issue 12 item 4 and 2: globex's producer writes under the same handle, tombstones,
    a shorter revocation and keys that lie; then a record that once stopped every gateway.
    acme's revoked session stays refused and a later revocation is still enforced."""
    gateway = gateway_for(kafka_bootstrap, topics, every_tenant=every_tenant)
    async with running(gateway):
        await revoke("victim", valid_for=timedelta(hours=1))

        async def victim_revoked() -> bool:
            return gateway.is_revoked("victim", "acme")

        await eventually(victim_revoked, within=10)
        until = gateway.table.until(record_key("acme", session_handle("acme", "victim")))
        acme_handle = session_handle("acme", "victim")
        hostile: list[tuple[bytes, bytes | None]] = [
            # globex revokes "the same handle" and tombstones it, under its own key
            (record_key("globex", acme_handle), encode(_revoked("globex", acme_handle, 4))),
            (record_key("globex", acme_handle), None),
            # globex's value under acme's key (key and value disagree), then its tombstone
            (record_key("acme", acme_handle), encode(_revoked("globex", acme_handle, 4))),
            (record_key("acme", acme_handle), None),
            # a shorter revocation of acme's own handle (as a buggy release would write)
            (record_key("acme", acme_handle), encode(_revoked("acme", acme_handle, 4))),
            # issue 12 item 1's record: a 5,000-digit integer
            (b"acme/x", b'{"type": "session.revoked", "schema_version": ' + b"9" * 5000 + b"}"),
        ]
        for key, value in hostile:
            await producer.send_and_wait(topics.revocations, value, key=key)
        await revoke("later")  # a later revocation, after all of it

        async def later_revoked() -> bool:
            return gateway.is_revoked("later", "acme")

        await eventually(later_revoked, within=10)
        assert gateway.is_revoked("victim", "acme")
        assert gateway.table.until(record_key("acme", acme_handle)) == until
        assert gateway.ready
        assert gateway.watcher.records_rejected == 2  # disagreeing key, 5,000 digits
        assert gateway.watcher.tombstones_ignored == (2 if every_tenant else 1)


def _revoked(tenant: str, handle: str, valid_for_seconds: float) -> SessionRevoked:
    now = datetime.now(UTC)
    return SessionRevoked(
        tenant_id=tenant,
        session_id=handle,
        session_type=SessionType.browser,
        revoked_at=now,
        reason=TerminationReason.admin,
        valid_until=now + timedelta(seconds=valid_for_seconds),
    )


async def test_v1_revocations_are_enforced_against_the_handle_of_the_same_credential(
    kafka_bootstrap: str, topics: Topics, producer: AIOKafkaProducer, eventually: Eventually
) -> None:
    """A record a v1 registry wrote (keyed and naming the session by its credential) is read
    through the upcaster: the gateway refuses the credential, filed by its handle."""
    v1 = json.loads(encode(_revoked("acme", session_handle("acme", "x"), 3600)))
    v1.update(schema_version=1, session_id="v1-credential-0123456789")
    await producer.send_and_wait(
        topics.revocations, json.dumps(v1).encode(), key=b"v1-credential-0123456789"
    )
    gateway = gateway_for(kafka_bootstrap, topics)
    async with running(gateway):
        assert gateway.is_revoked("v1-credential-0123456789")
        assert gateway.is_handle_revoked("acme", session_handle("acme", "v1-credential-0123456789"))
        assert gateway.watcher.records_rejected == 0


async def test_revocations_whose_headers_have_no_value_or_no_sense_are_enforced(
    kafka_bootstrap: str, topics: Topics, producer: AIOKafkaProducer, eventually: Eventually
) -> None:
    """Kafka allows a header without a value (aiokafka reads it as None): a revocation
    carrying one was passed over whole (`bytes(None)` raised reading its trace context), its
    session left valid. Headers are the trace's; what they hold never costs the revocation."""
    odd_headers: dict[str, list[tuple[str, bytes | None]]] = {
        "null-traceparent": [("traceparent", None)],
        "null-tracestate": [
            ("traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01"),
            ("tracestate", None),
        ],
        "null-other": [("x-origin", None)],
        "garbage-traceparent": [("traceparent", b"\xff\xfe not a trace"), ("traceparent", b"")],
    }

    async def publish(credential: str, headers: list[tuple[str, bytes | None]]) -> None:
        record = _revoked("acme", session_handle("acme", credential), 3600)
        key = record_key("acme", record.session_id)
        await producer.send_and_wait(topics.revocations, encode(record), key=key, headers=headers)

    for credential, headers in odd_headers.items():
        await publish(f"{credential}-early", headers)  # read at the catch-up
    gateway = gateway_for(kafka_bootstrap, topics)
    async with running(gateway):
        for credential, headers in odd_headers.items():
            await publish(f"{credential}-late", headers)  # read while following

        async def all_revoked() -> bool:
            return all(
                gateway.is_revoked(f"{credential}-{when}")
                for credential in odd_headers
                for when in ("early", "late")
            )

        await eventually(all_revoked, within=10)
        assert gateway.watcher.records_applied == 2 * len(odd_headers)
        assert gateway.watcher.records_rejected == 0


async def test_partitions_added_to_the_topic_while_it_runs_are_followed(
    kafka_bootstrap: str,
    topics: Topics,
    revoke: Revoke,
    producer: AIOKafkaProducer,
    eventually: Eventually,
) -> None:
    """An operator adds partitions (to spread the registry's work, say): keys move, and the
    registry's producer sends revocations to the new ones once it refreshes its metadata. The
    gateway assigned the partitions it found at start and read the new ones only after a
    restart, while `/readyz` said current."""
    gateway = gateway_for(kafka_bootstrap, topics, gateway_partitions_check_seconds=0.5)
    async with running(gateway):
        await revoke("before")

        async def before_revoked() -> bool:
            return gateway.is_revoked("before")

        await eventually(before_revoked, within=10)
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_partitions(
                {topics.revocations: NewPartitions(total_count=topics.partitions + 2)}
            )
        finally:
            await admin.close()
        added = range(topics.partitions, topics.partitions + 2)

        async def producer_knows_them() -> bool:
            await producer.client.force_metadata_update()
            return len(await producer.partitions_for(topics.revocations)) == added.stop

        await eventually(producer_knows_them, within=10)
        for partition in added:  # as the registry's producer sends once it knows them
            record = _revoked("acme", session_handle("acme", f"on-{partition}"), 3600)
            await producer.send_and_wait(
                topics.revocations,
                encode(record),
                key=record_key("acme", record.session_id),
                partition=partition,
            )

        async def added_ones_revoked() -> bool:
            return all(gateway.is_revoked(f"on-{p}") for p in added)

        await eventually(added_ones_revoked, within=20)
        assert gateway.is_revoked("before")
        await revoke("after")  # and the follower goes on

        async def after_revoked() -> bool:
            return gateway.is_revoked("after")

        await eventually(after_revoked, within=10)
        assert gateway.ready
        assert gateway.watcher.records_rejected == 0


async def test_revocations_compressed_with_every_codec_are_enforced(
    kafka_bootstrap: str, topics: Topics, eventually: Eventually
) -> None:
    """As a broker recompressing the topic (`compression.type` set on it) or a producer of
    another make writes them: without `cramjam` (undeclared until 2026-12-05) a snappy, lz4
    or zstd batch failed the follower's fetch, again and again: the gateway went stale."""

    def records(codec: str) -> list[tuple[bytes, bytes]]:
        made = [_revoked("acme", session_handle("acme", f"{codec}-{n}"), 3600) for n in range(3)]
        return [(record_key("acme", r.session_id), encode(r)) for r in made]

    gateway = gateway_for(kafka_bootstrap, topics)
    async with running(gateway):
        await asyncio.gather(
            *(java_send(kafka_bootstrap, topics.revocations, records(c), c) for c in CODECS)
        )

        async def all_revoked() -> bool:
            return all(gateway.is_revoked(f"{c}-{n}") for c in CODECS for n in range(3))

        await eventually(all_revoked, within=20)
        assert gateway.ready
        assert gateway.watcher.records_rejected == 0


async def test_revocations_with_header_names_not_utf8_are_enforced(
    kafka_bootstrap: str, topics: Topics, eventually: Eventually
) -> None:
    """The broker takes any bytes as a header's name; aiokafka's parser decoded it strictly and
    failed the follower's fetch at that batch, again and again: the revocations in it and after
    it were never read, and the gateway went stale (it refused every session)."""
    made = [_revoked("acme", session_handle("acme", f"named-{n}"), 3600) for n in range(3)]
    names: list[tuple[bytes, bytes | None]] = [(b"\xff\xfe", b"x"), (b"traceparent\x80", b"1")]
    gateway = gateway_for(kafka_bootstrap, topics)
    async with running(gateway):
        await raw_send(
            kafka_bootstrap,
            topics.revocations,
            [
                (record_key("acme", r.session_id), encode(r), names if n == 1 else [])
                for n, r in enumerate(made)
            ],
        )

        async def all_revoked() -> bool:
            return all(gateway.is_revoked(f"named-{n}") for n in range(3))

        await eventually(all_revoked, within=20)
        assert gateway.ready
        assert gateway.watcher.records_rejected == 0


async def test_a_revocations_batch_inflating_past_the_bound_is_skipped_loudly_and_flow_goes_on(
    kafka_bootstrap: str, topics: Topics, eventually: Eventually, caplog: pytest.LogCaptureFixture
) -> None:
    """40 MB of zeros take 2 KB in zstd, and aiokafka inflated them whole in every gateway. Now
    refused past 32 MiB: logged as an error (the revocations in it are not enforced), the
    records after it are."""
    made = [_revoked("acme", session_handle("acme", f"near-bomb-{n}"), 3600) for n in range(2)]
    gateway = gateway_for(kafka_bootstrap, topics)
    producer = new_producer(
        connection(kafka_bootstrap), compression_type="zstd", max_request_size=64_000_000
    )
    await producer.start()
    with caplog.at_level("ERROR", logger="auth_gateway.watcher"):
        async with running(gateway):
            try:
                first, last = ((record_key("acme", r.session_id), encode(r)) for r in made)
                bomb = b"\x00" * (INFLATED_MAX_BYTES + 8_000_000)
                # one partition: the last revocation is read after the bomb, not beside it
                for key, value in (first, (first[0], bomb), last):
                    await producer.send_and_wait(topics.revocations, value, key=key, partition=0)
            finally:
                await producer.stop()

            async def both_revoked() -> bool:
                return all(gateway.is_revoked(f"near-bomb-{n}") for n in range(2))

            await eventually(both_revoked, within=20)
            assert gateway.ready
            assert gateway.watcher.records_rejected == 1
    (error,) = [r.getMessage() for r in caplog.records if r.name == "auth_gateway.watcher"]
    assert "cannot read, skipped; the revocations in it are not enforced here" in error
    assert f"decompress to more than {INFLATED_MAX_BYTES} bytes" in error


async def test_a_rejected_record_under_a_v1_key_is_logged_without_the_key(
    kafka_bootstrap: str,
    topics: Topics,
    producer: AIOKafkaProducer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A v1 key is the session id itself, a credential: the warning for a record whose value
    names another session printed up to 128 bytes of it."""
    credential = "v1-credential-that-must-not-be-logged"
    other = json.loads(encode(_revoked("acme", session_handle("acme", "y"), 3600)))
    other.update(schema_version=1, session_id="another-session-entirely")
    await producer.send_and_wait(
        topics.revocations, json.dumps(other).encode(), key=credential.encode()
    )
    contract_key = record_key("acme", session_handle("acme", "z"))
    await producer.send_and_wait(topics.revocations, b"{not json", key=contract_key)
    gateway = gateway_for(kafka_bootstrap, topics)
    with caplog.at_level("WARNING", logger="auth_gateway.watcher"):
        async with running(gateway):
            assert gateway.watcher.records_rejected == 2
    warnings = sorted(r.getMessage() for r in caplog.records if r.name == "auth_gateway.watcher")
    assert len(warnings) == 2, warnings
    assert credential not in caplog.text
    # a contract key names a tenant and a handle (a digest): shown, to find the record
    assert warnings[0].startswith(f"revocation record {contract_key.decode()} ignored, not a")
    assert warnings[1] == (
        f"revocation record with a key of {len(credential)} bytes (not shown: it may be a "
        "credential) ignored, its key does not name the session its value names"
    )


async def test_entries_leave_memory_once_past_valid_until(
    kafka_bootstrap: str, topics: Topics, revoke: Revoke, eventually: Eventually
) -> None:
    gateway = gateway_for(kafka_bootstrap, topics, gateway_eviction_grace_seconds=0)
    async with running(gateway):
        await revoke("short-lived", valid_for=timedelta(seconds=2))
        await revoke("long-lived", valid_for=timedelta(hours=1))

        async def both_known() -> bool:
            return len(gateway.table) == 2

        await eventually(both_known, within=5)

        async def short_one_evicted() -> bool:
            return len(gateway.table) == 1

        await eventually(short_one_evicted, within=8)
        assert gateway.is_revoked("long-lived")
        assert not gateway.is_revoked("short-lived")


async def test_not_ready_until_the_topic_exists_and_was_read(
    kafka_bootstrap: str, unmade_topics: Topics
) -> None:
    missing = unmade_topics
    gateway = gateway_for(kafka_bootstrap, missing)
    await gateway.start()
    try:
        await asyncio.sleep(2)
        assert not gateway.ready
        await ensure_topics(connection(kafka_bootstrap, missing))
        async with asyncio.timeout(20):
            await gateway.wait_ready()
    finally:
        await gateway.stop()
