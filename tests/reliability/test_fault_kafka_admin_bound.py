"""The broker goes away after the admin API connected: a termination answers 503 within the
publish bound, and is never sent, not even once the broker is back.

Before, aiokafka's idempotent producer retried the command for as long as the broker was away
and the POST waited as long; the command was then applied whenever the broker came back, with
no answer to the admin meanwhile. Runs on a broker of the test's own (`private_kafka`), stopped
and started. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from fault_support import admin_headers, admin_settings, handle, until
from registry_helpers import read_topic, table_rows

from admin_api.app import create_app
from asgi_served import served
from fresh_topics import connection
from private_services import PrivateKafka
from read_model.database import upgrade_schema
from read_model.tables import termination_requests
from session_contracts.codec import decode_command
from session_contracts.kafka_admin import ensure_topics
from session_contracts.topics import Topics

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
TERMINATIONS = "/api/v1/sessions/terminations"
BOUND = 2.0


async def test_a_termination_the_broker_cannot_take_answers_503_and_is_never_sent(
    private_kafka: PrivateKafka, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    bootstrap = private_kafka.bootstrap
    topics = Topics(prefix=f"bound{uuid.uuid4().hex[:6]}.", partitions=1)
    await ensure_topics(connection(bootstrap, topics))
    await upgrade_schema(db_url)
    settings = admin_settings(bootstrap, topics, db_url).model_copy(
        update={"publish_timeout_seconds": BOUND}
    )
    headers = admin_headers(settings)

    async def terminate(credential: str) -> httpx.Response:
        body = {"session_ids": [handle(credential)]}
        return await admin.post(TERMINATIONS, json=body, headers=headers)

    async def status() -> str:
        return str((await admin.get("/readyz")).json()["status"])

    async def ready() -> bool:
        return await status() == "ready"

    async with served(create_app(settings)) as admin:
        await until(ready, 30, "the admin API connected to Kafka")
        before = await terminate("before")
        assert before.status_code == 202, before.text

        await private_kafka.stop()
        async with asyncio.timeout(BOUND + 20):  # a bound on the hang it was, not a speed claim
            refused = await terminate("during")
        assert refused.status_code == 503, refused.text
        assert refused.headers["Retry-After"]
        # what is known and what to do: it may have been written before the answer was lost
        assert "may still be applied" in refused.text and "nothing was changed" not in refused.text
        assert refused.json()["reason"] == "outcome_unknown"  # the page offers the same request
        # one line says it, naming the topic, the bound and what happens next
        timed_out = [
            r.getMessage()
            for r in caplog.records
            if r.name == "admin_api.adapters.bus" and "no acknowledgement" in r.getMessage()
        ]
        assert len(timed_out) == 1, timed_out
        assert timed_out[0].startswith(
            f"sending to {topics.commands}: no acknowledgement within 2 s; reconnecting to Kafka"
        ), timed_out
        assert await status() == "degraded"  # the producer was given up: writes refused
        meanwhile = await terminate("meanwhile")  # at once: not connected, nothing sent
        assert meanwhile.status_code == 503 and "reason" not in meanwhile.json(), meanwhile.text

        await private_kafka.start()
        await until(ready, 60, "a new producer connected")
        after = await terminate("after")
        assert after.status_code == 202, after.text

    sent = [decode_command(r.value) for r in await read_topic(bootstrap, topics.commands)]
    assert [c.session_ids for c in sent] == [[handle("before")], [handle("after")]]
    recorded = await table_rows(db_url, termination_requests, [termination_requests.c.requested_at])
    assert [str(r["command_id"]) for r in recorded] == [str(c.command_id) for c in sent]
