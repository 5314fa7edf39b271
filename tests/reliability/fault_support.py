"""Fault tests' shared parts: registries, admin API and gateways on a given broker; the log.

The fault tests stop and restart real components (a private broker, a private PostgreSQL
cluster, the admin API process, a gateway, registries of one group), so they build the
services themselves instead of taking the shared fixtures, on whichever broker and database
the test controls. Every check polls a condition with a generous deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "registry"))

from registry_helpers import read_topic, registry_settings, table_rows
from test_registry_rebuild import as_the_log_has_it, read_model

from admin_api.auth import EDIT_USER_SESSIONS, issue_dev_token
from admin_api.settings import AdminApiSettings
from auth_gateway import GatewaySettings, SessionGateway
from fresh_topics import connection
from polling import until as until  # the fault tests import it from here
from read_model.tables import applied_commands, outbox
from session_contracts.codec import decode_event, encode
from session_contracts.handles import record_key, session_handle
from session_contracts.kafka_clients import new_producer
from session_contracts.models import SessionEvent
from session_contracts.settings import KafkaSettings
from session_contracts.topics import Topics
from session_registry.bootstrap import Registry
from session_registry.service_layer.rebuild import rebuild

TENANT = "acme"
SECRET = "faults-" + "s" * 40


def handle(credential: str, tenant: str = TENANT) -> str:
    """The session id on the wire (contract v2) of the session whose credential (what a client
    presents to a gateway) is `credential`."""
    return session_handle(tenant, credential)


@contextlib.asynccontextmanager
async def running_registry(
    bootstrap: str, topics: Topics, db_url: str, **overrides: Any
) -> AsyncIterator[Registry]:
    """A started registry (in this process) on these topics and database; stopped afterwards."""
    registry = Registry.from_settings(registry_settings(bootstrap, topics, db_url, **overrides))
    await registry.start()
    try:
        yield registry
    finally:
        await registry.stop()


def consumer_alive(registry: Registry) -> bool:
    """Whether the registry's consumer task still runs (it ends only when it failed)."""
    return bool(registry._tasks) and not registry._tasks[0].done()


@contextlib.asynccontextmanager
async def producer_on(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """An idempotent producer that waits out a broker outage (2 minutes per request)."""
    producer = new_producer(connection(bootstrap), linger_ms=5, request_timeout_ms=120_000)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def send_models(producer: AIOKafkaProducer, topics: Topics, *models: Any) -> None:
    """Send events (keyed `<tenant>/<handle>`) and commands (keyed `<tenant>/<command_id>`),
    acknowledged."""
    futures = []
    for model in models:
        if hasattr(model, "requested_by"):
            topic, key = topics.commands, record_key(model.tenant_id, str(model.command_id))
        else:
            topic, key = topics.events, record_key(model.tenant_id, model.session_id)
        futures.append(await producer.send(topic, encode(model), key=key))
    await asyncio.gather(*futures)


async def event_log(bootstrap: str | KafkaSettings, topics: Topics) -> list[SessionEvent]:
    """Every event on the events topic, decoded."""
    return [decode_event(r.value) for r in await read_topic(bootstrap, topics.events)]


def terminations_by_command(log: list[SessionEvent]) -> dict[str, Counter[str]]:
    """command id -> how many `session.terminated` records each session (handle) got from it."""
    found: dict[str, Counter[str]] = defaultdict(Counter)
    for event in log:
        command_id = getattr(event, "command_id", None)
        if event.type == "session.terminated" and command_id is not None:
            found[str(command_id)][event.session_id] += 1
    return found


async def applied(db_url: str) -> dict[str, int]:
    """command id -> sessions it ended, as the registry recorded it."""
    rows = await table_rows(db_url, applied_commands, [applied_commands.c.command_id])
    return {row["command_id"]: row["terminated"] for row in rows}


async def outbox_rows(db_url: str) -> int:
    """Records still waiting in the outbox."""
    return len(await table_rows(db_url, outbox, [outbox.c.id]))


async def assert_equals_rebuild(
    bootstrap: str | KafkaSettings, topics: Topics, db_url: str, folder: Path
) -> tuple[dict[Any, Any], list[tuple[Any, ...]]]:
    """The live read model equals a clean rebuild from the log, row for row; return it."""
    live = as_the_log_has_it(await read_model(db_url))
    into = f"sqlite+aiosqlite:///{folder / f'rebuilt-{uuid.uuid4().hex[:6]}.db'}"
    kafka = bootstrap if isinstance(bootstrap, KafkaSettings) else connection(bootstrap, topics)
    await rebuild(kafka, topics, into, f"rebuild-{uuid.uuid4().hex[:6]}")
    rebuilt = as_the_log_has_it(await read_model(into))
    assert len(live[0]) == len(rebuilt[0]) and len(live[1]) == len(rebuilt[1])
    differing = [key for key in live[0] if live[0][key] != rebuilt[0].get(key)]
    assert not differing, [(live[0][k], rebuilt[0].get(k)) for k in differing[:3]]
    assert live[1] == rebuilt[1]
    return live


def admin_settings(bootstrap: str, topics: Topics, db_url: str) -> AdminApiSettings:
    """Admin API settings on this broker, topics and read model."""
    return AdminApiSettings(
        database_url=db_url,
        environment="development",
        jwt_secret=SECRET,
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=topics.prefix,
        topic_partitions=topics.partitions,
    )


def admin_headers(settings: AdminApiSettings) -> dict[str, str]:
    """Authorization of an admin of TENANT allowed to end sessions."""
    token = issue_dev_token(settings, "admin-faults", TENANT, [EDIT_USER_SESSIONS], 3600)
    return {"Authorization": f"Bearer {token}"}


def gateway_on(bootstrap: str, topics: Topics) -> tuple[SessionGateway, httpx.AsyncClient]:
    """A gateway of TENANT in front of a one-route service, and a client of it (not started)."""
    gateway = SessionGateway.from_settings(
        GatewaySettings(
            kafka_bootstrap_servers=bootstrap,
            topic_prefix=topics.prefix,
            topic_partitions=topics.partitions,
            gateway_tenant_id=TENANT,
        )
    )
    app = gateway.wrap(
        Starlette(routes=[Route("/api/data", lambda request: PlainTextResponse("data"))]),
        manage_lifespan=False,
    )
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")
    return gateway, client


async def gateway_status(client: httpx.AsyncClient, credential: str) -> int:
    """The status a gateway answers a request presenting `credential` with."""
    return (await client.get("/api/data", headers={"X-Session-Id": credential})).status_code


async def request_termination(
    admin: httpx.AsyncClient, headers: dict[str, str], session_ids: list[str], within: float = 90
) -> tuple[str, int]:
    """POST a termination by ids (handles), retrying the 503s an admin would retry, under one
    `Idempotency-Key`: (command id, 503s). Without it, a 503 whose command Kafka had taken made
    the retry a second command, applied to sessions the first had ended (its status: none)."""
    refused = 0
    deadline = time.monotonic() + within
    keyed = {**headers, "Idempotency-Key": str(uuid.uuid4())}
    while True:
        response = await admin.post(
            "/api/v1/sessions/terminations", json={"session_ids": session_ids}, headers=keyed
        )
        if response.status_code == 202:
            return str(response.json()["command_id"]), refused
        assert response.status_code == 503, response.text
        refused += 1
        assert time.monotonic() < deadline, "the admin API kept answering 503"
        await asyncio.sleep(0.5)


async def termination_status(
    admin: httpx.AsyncClient, headers: dict[str, str], command_id: str
) -> dict[str, Any]:
    """GET /api/v1/sessions/terminations/{command_id} (200 expected)."""
    response = await admin.get(f"/api/v1/sessions/terminations/{command_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
