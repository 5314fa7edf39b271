"""The gateway's metrics as the demo service exports them (one `register_metrics` line), on the
real broker: revocations held and applied, refusals by reason, skipped records, staleness."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from test_gateway_demo_kafka import (
    Eventually,
    Revoke,
    Serve,
    demo,
    demo_app,
)

from revocation_records import revocation
from session_contracts.codec import encode
from session_contracts.handles import record_key
from session_contracts.models import SessionType
from session_contracts.topics import Topics

pytestmark = pytest.mark.kafka


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


async def test_demo_service_exports_the_gateway_metrics(
    kafka_bootstrap: str,
    topics: Topics,
    serve: Serve,
    revoke: Revoke,
    eventually: Eventually,
    producer: AIOKafkaProducer,
) -> None:
    app = demo_app(kafka_bootstrap, topics)
    async with demo(serve, app) as client:
        before = await scrape(client)
        assert before[("session_gateway_ready", frozenset())] == 1
        assert before[("session_gateway_revocations_held", frozenset())] == 0
        staleness = before[("session_gateway_staleness_seconds", frozenset())]
        assert 0 <= staleness <= before[("session_gateway_max_staleness_seconds", frozenset())]
        await revoke("revoked-1")
        # a record no gateway can read: skipped, counted
        await producer.send_and_wait(topics.revocations, b"not json", key=b"acme/x")
        # one of a newer contract (the registry upgraded first): counted apart, which pages
        record = revocation(
            "revoked-2", session_type=SessionType.mobile, valid_for=timedelta(hours=1)
        )
        newer = encode(record).replace(b'"schema_version":3', b'"schema_version":4')
        assert b'"schema_version":4' in newer
        await producer.send_and_wait(
            topics.revocations, newer, key=record_key("acme", record.session_id)
        )

        async def applied() -> bool:
            figures = await scrape(client)
            skipped = "session_gateway_records_skipped_total"
            return (
                figures[("session_gateway_records_applied_total", frozenset())] == 1
                and figures[(skipped, frozenset({("why", "rejected")}))] == 1
                and figures[(skipped, frozenset({("why", "newer_version")}))] == 1
                and figures[("session_gateway_revocations_unread", frozenset())] == 1
            )

        await eventually(applied, within=10)
        refused = await client.get("/api/me", headers={"x-session-id": "revoked-1"})
        assert refused.status_code == 401
        after = await scrape(client)
    assert after[("session_gateway_revocations_held", frozenset())] == 1
    reason = "session_gateway_requests_refused_total"
    assert after[(reason, frozenset({("reason", "revoked")}))] == 1
    assert after[(reason, frozenset({("reason", "stale")}))] == 0
    assert after[("session_gateway_activity_dropped_total", frozenset())] == 0
