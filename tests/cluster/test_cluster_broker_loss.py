"""A broker of the secured cluster SIGKILLed during ingestion, another during a termination burst.

Three brokers, every topic with 3 replicas and min.insync.replicas 2, every producer
idempotent with acks=all, every service its own principal over SASL_SSL. Node 2 is killed
while events stream in and restarted; once it is back in every ISR, node 3 is killed while
ten termination commands are accepted and applied, and restarted. Afterwards: no event lost
(the read model holds every session, and equals a rebuild from the log), each command applied
once (one `session.terminated` per session, the applied commands agree), and both gateways
refuse exactly the terminated sessions.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "registry"))

from fault_support import (
    applied,
    assert_equals_rebuild,
    consumer_alive,
    request_termination,
    send_models,
    terminations_by_command,
    until,
)
from registry_helpers import created, read_topic

from admin_api.app import create_app
from admin_api.auth import EDIT_USER_SESSIONS, issue_dev_token
from admin_api.settings import AdminApiSettings
from asgi_served import served
from auth_gateway import GatewaySettings, SessionGateway
from cluster_support import Cluster, start_cluster
from read_model.database import upgrade_schema
from session_contracts.codec import DecodeError, decode_event
from session_contracts.handles import session_handle
from session_contracts.kafka_clients import new_admin, new_producer
from session_contracts.models import SessionEvent
from session_contracts.settings import KafkaSettings
from session_contracts.topics import Topics
from session_registry.bootstrap import Registry
from session_registry.settings import RegistrySettings

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.xdist_group("cluster")]

SESSIONS = 200
COMMANDS = 10
PER_COMMAND = 10
SECRET = "cluster-faults-" + "s" * 40


def kill(cluster: Cluster, node: int) -> None:
    """SIGKILL one broker: no controlled shutdown, no leadership handed over."""
    os.kill(cluster.node_pid(node), signal.SIGKILL)


async def fully_replicated(cluster: Cluster) -> bool:
    """Every partition of the environment's topics has all three replicas in sync."""
    admin = new_admin(KafkaSettings(**cluster.as_user("admin")))
    await admin.start()
    try:
        names = [spec.name for spec in KafkaSettings(topic_prefix=cluster.prefix).topics.specs()]
        described = await admin.describe_topics(names)
        return all(len(p["isr"]) == 3 for topic in described for p in topic["partitions"])
    except Exception:  # a node still starting: not yet
        return False
    finally:
        await admin.close()


def gateway_and_client(cluster: Cluster, tenant: str) -> tuple[SessionGateway, httpx.AsyncClient]:
    gateway = SessionGateway.from_settings(
        GatewaySettings(**cluster.as_user("gateway"), gateway_tenant_id=tenant)
    )
    app = gateway.wrap(
        Starlette(routes=[Route("/api/data", lambda request: PlainTextResponse("data"))]),
        manage_lifespan=False,
    )
    return gateway, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s")


async def test_a_broker_killed_during_ingestion_and_during_a_termination_burst(
    own_environment: Cluster, tenant: str, tmp_path: Path
) -> None:
    # A log of its own (topics and ACLs of a fresh prefix): each run's registry starts on an
    # empty database, and on the environment's log it would apply every earlier run's
    # commands again, adding terminations of its own that a rebuild cannot tell apart.
    cluster = own_environment
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}"
    await upgrade_schema(db_url)
    registry_settings = RegistrySettings(
        **cluster.as_user("registry"),
        database_url=db_url,
        create_topics=False,
        sweep_interval_seconds=0,
    )
    topics = registry_settings.topics
    admin_settings = AdminApiSettings(
        **cluster.as_user("admin-api"),
        database_url=db_url,
        environment="development",
        jwt_secret=SECRET,
    )
    token = issue_dev_token(admin_settings, "admin-faults", tenant, [EDIT_USER_SESSIONS], 3600)
    headers = {"Authorization": f"Bearer {token}"}
    ids = [f"c-{n:03d}" for n in range(SESSIONS)]
    handles = [session_handle(tenant, sid) for sid in ids]
    events = [created(sid, tenant=tenant, user=f"u{n % 9}") for n, sid in enumerate(ids)]
    gateways = [gateway_and_client(cluster, tenant) for _ in range(2)]
    registry = Registry.from_settings(registry_settings)

    async with AsyncExitStack() as stack:
        # whatever happens, the cluster is whole again for the next test
        stack.push_async_callback(asyncio.to_thread, start_cluster)
        producer = new_producer(
            KafkaSettings(**cluster.as_user("gateway")), linger_ms=5, request_timeout_ms=120_000
        )
        await producer.start()
        stack.push_async_callback(producer.stop)
        await registry.start()
        stack.push_async_callback(registry.stop)
        admin = await stack.enter_async_context(served(create_app(admin_settings)))
        for gateway, client in gateways:
            stack.push_async_callback(client.aclose)
            stack.push_async_callback(gateway.stop)
            await gateway.start()

        async def admin_ready() -> bool:
            return (await admin.get("/readyz")).status_code == 200

        await until(admin_ready, 60, "the admin API connected to Kafka")

        # ingestion: node 2 dies a third of the way through
        third = SESSIONS // 3
        await send_models(producer, topics, *events[:third])
        streaming = asyncio.create_task(paced(producer, topics, events[third:]))
        await asyncio.sleep(0.5)
        kill(cluster, 2)
        assert not streaming.done()  # the broker dies mid-stream
        await asyncio.wait_for(streaming, 180)
        await registry.wait_until_idle(180)
        assert consumer_alive(registry)
        await asyncio.to_thread(start_cluster)
        await until(lambda: fully_replicated(cluster), 180, "node 2 back in every ISR")

        # a burst of terminations: node 3 dies after the first few are accepted
        chunks = [handles[n * PER_COMMAND : (n + 1) * PER_COMMAND] for n in range(COMMANDS)]
        commands = [(await request_termination(admin, headers, chunks[0], within=180))[0]]
        commands.append((await request_termination(admin, headers, chunks[1], within=180))[0])
        kill(cluster, 3)
        for chunk in chunks[2:]:
            commands.append((await request_termination(admin, headers, chunk, within=180))[0])
        await until(lambda: _all_applied(db_url, commands), 180, "every command applied")
        await asyncio.to_thread(start_cluster)
        await registry.wait_until_idle(180)
        assert consumer_alive(registry)

        ended = set(ids[: COMMANDS * PER_COMMAND])
        for _, client in gateways:

            async def enforced(client: httpx.AsyncClient = client) -> bool:
                for sid in ids:
                    status = (
                        await client.get("/api/data", headers={"X-Session-Id": sid})
                    ).status_code
                    if (status == 401) != (sid in ended):
                        return False
                return True

            await until(enforced, 120, "a gateway refuses exactly the terminated sessions")

    done = await applied(db_url)  # (the shared log holds other tests' commands too)
    assert {c: done.get(c) for c in commands} == dict.fromkeys(commands, PER_COMMAND)
    log = await readable_events(registry_settings)
    by_command = terminations_by_command(log)
    for command_id, chunk in zip(commands, chunks, strict=True):
        assert by_command[command_id] == dict.fromkeys(chunk, 1)
    created_here = [e for e in log if e.tenant_id == tenant and e.type == "session.created"]
    assert len(created_here) == SESSIONS  # idempotent producers: no duplicate on the log
    sessions, _ = await assert_equals_rebuild(registry_settings, topics, db_url, tmp_path)
    mine = {sid: s for (t, sid), s in sessions.items() if t == tenant}
    assert set(mine) == set(handles)  # nothing lost
    assert {sid for sid, s in mine.items() if s.state == "terminated"} == {
        session_handle(tenant, sid) for sid in ended
    }


async def paced(producer: AIOKafkaProducer, topics: Topics, events: list[Any]) -> None:
    """Send events ten at a time, a tenth of a second apart (a stream, not one batch)."""
    for n in range(0, len(events), 10):
        await send_models(producer, topics, *events[n : n + 10])
        await asyncio.sleep(0.1)


async def readable_events(kafka: KafkaSettings) -> list[SessionEvent]:
    """The events topic, decoded; the environment's log also holds the junk the security
    tests wrote (dead letters to the registry), which is passed over here."""
    found = []
    for record in await read_topic(kafka, kafka.topics.events):
        try:
            found.append(decode_event(record.value))
        except DecodeError:
            continue
    return found


async def _all_applied(db_url: str, commands: list[str]) -> bool:
    done = await applied(db_url)
    return all(c in done for c in commands)
