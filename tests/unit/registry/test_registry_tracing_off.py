"""Tracing off costs nothing per record: no span, no context, no header, anywhere on the path.

OpenTelemetry's entry points are replaced by ones that fail the test when called; the registry
then ingests events and a termination command (one carrying a trace context, as an admin API
with tracing on would send it), and a gateway's watcher applies the revocation records the
registry queued. With a provider installed, the same command does start a span and its
revocations carry the context: the switch is what decides, not the absence of headers.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from hotloop_fakes import NOW, TOPICS, FakeLog, FakeRecord, RecordingIngestor, migrated_store
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import select

from auth_gateway.revocations import RevocationTable
from auth_gateway.watcher import RevocationWatcher
from fresh_topics import connection
from read_model.store import Store
from read_model.tables import outbox
from session_contracts.codec import encode
from session_contracts.handles import record_key
from session_contracts.models import SessionFilter, TerminateSessions
from session_contracts.tracing import decode_headers, tracing_on
from session_registry.workload import Workload
from session_registry.workload import records as workload_records

PARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TENANT = "tenant-0"
AFTER = NOW + timedelta(hours=1)  # every session of the workload created by then


class Forbidden(AssertionError):
    """An OpenTelemetry entry point was called while tracing is off."""


def _forbidden(*args: Any, **kwargs: Any) -> Any:
    raise Forbidden("tracing is off, yet OpenTelemetry was called")


@pytest.fixture
def tracing_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No provider installed (whatever another test of this process did), and every way to
    make a span, a context or a header fails the test."""
    monkeypatch.setattr(trace, "get_tracer_provider", trace.ProxyTracerProvider)
    for module, name in (
        (trace, "get_tracer"),
        (trace, "get_current_span"),
        (propagate, "inject"),
        (propagate, "extract"),
    ):
        monkeypatch.setattr(module, name, _forbidden)
    assert not tracing_on()
    yield


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await migrated_store(tmp_path)
    yield store
    await store.dispose()


def batch_of(records: list[FakeRecord]) -> dict[TopicPartition, list[FakeRecord]]:
    batch: dict[TopicPartition, list[FakeRecord]] = {}
    for record in records:
        batch.setdefault(TopicPartition(record.topic, record.partition), []).append(record)
    return batch


async def ingest_and_terminate(store: Store) -> list[Any]:
    """Ingest a tenant's sessions, then a command ending all of them (its record carrying a
    trace context); return the outbox rows it queued."""
    log = FakeLog()
    workload = Workload(
        sessions=20,
        tenants=1,
        activity=0,
        terminated_share=0.0,
        duplicate_share=0.0,
        session_types=("browser",),
    )
    events = [log.append(TOPICS.events, 0, value, key) for key, value in workload_records(workload)]
    ingestor = RecordingIngestor(store)
    await ingestor.ingest(batch_of(events))
    command = TerminateSessions(
        command_id=uuid.uuid4(),
        requested_at=AFTER,
        tenant_id=TENANT,
        requested_by="admin-1",
        filter=SessionFilter(),
        confirmed_at=AFTER,
    )
    record = log.append(
        TOPICS.commands,
        0,
        encode(command),
        record_key(TENANT, str(command.command_id)),
        (("traceparent", PARENT),),
    )
    outcome = await ingestor.ingest(batch_of([record]))
    assert (outcome.commands, outcome.terminated) == (1, 20)
    async with store.engine.connect() as conn:
        return list((await conn.execute(select(outbox).order_by(outbox.c.id))).all())


async def test_tracing_off_no_span_context_or_header_per_record(
    tracing_off: None, store: Store
) -> None:
    rows = await ingest_and_terminate(store)
    revocation_rows = [row for row in rows if row.topic == TOPICS.revocations]
    assert len(revocation_rows) == 20
    assert all(row.headers is None for row in rows)  # no header stored, none relayed

    gateway = RevocationWatcher(connection("unused:1"), TOPICS.revocations, None, RevocationTable())
    for row in revocation_rows:
        # as the follower hands a polled record over: its headers (none) included
        gateway._apply_one(bytes(row.key), bytes(row.value), decode_headers(row.headers))
    assert len(gateway.table) == 20  # applied, and OpenTelemetry never called


async def test_tracing_on_the_same_command_starts_a_span_and_carries_it(
    monkeypatch: pytest.MonkeyPatch, store: Store
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    assert tracing_on()

    rows = await ingest_and_terminate(store)
    (span,) = exporter.get_finished_spans()
    assert span.name == "registry.apply_command"
    assert f"{span.context.trace_id:032x}" == PARENT.split(b"-")[1].decode()
    revocation_rows = [row for row in rows if row.topic == TOPICS.revocations]
    assert len(revocation_rows) == 20
    for row in revocation_rows:
        (name, value), *_ = decode_headers(row.headers)
        assert name == "traceparent" and value.split(b"-")[1] == PARENT.split(b"-")[1]
