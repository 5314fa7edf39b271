"""One trace from an admin's termination to the gateway that enforces it, on the real broker.

With tracing on (the SDK with an in-memory exporter), the admin API's span publishes the
command with its trace context in the record headers; the registry applies the command under
a child span and stores that span's context with the revocation in the outbox; the relay
publishes it in the revocation's headers; the gateway applies the revocation under a child of
that. The three spans share one trace id and chain parent to child.
"""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext
from test_first_path import SECRET, TENANT, served

from admin_api.app import create_app as create_admin_app
from admin_api.auth import issue_dev_token
from admin_api.settings import AdminApiSettings
from auth_gateway import GatewaySettings, SessionGateway
from fresh_topics import connection
from polling import until
from read_model.database import upgrade_schema
from session_contracts.handles import session_handle
from session_contracts.models import SessionPolicy, SessionType
from session_contracts.publisher import SessionEventPublisher, created_event
from session_contracts.topics import Topics
from session_contracts.tracing import configure_tracing
from session_registry.bootstrap import Registry
from session_registry.settings import RegistrySettings

pytestmark = pytest.mark.kafka
EXPORTER = InMemorySpanExporter()


def tracing_on() -> TracerProvider:
    """The process's SDK provider exporting to `EXPORTER` (set once per process)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        installed = configure_tracing("session-control-tests", exporter=EXPORTER)
        assert installed is not None
        return installed
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    return provider


@pytest.mark.parametrize("by", ["ids", "text filter"])
async def test_one_trace_id_from_the_post_to_the_gateway(
    kafka_bootstrap: str, topics: Topics, db_url: str, by: str
) -> None:
    """By ids the command is applied in the registry's batch; by a filter with a text
    condition, beside its loop (`deferred_terminations`), from the trace context kept with
    it."""
    provider = tracing_on()
    EXPORTER.clear()
    kafka: dict[str, Any] = {
        "kafka_bootstrap_servers": kafka_bootstrap,
        "topic_prefix": topics.prefix,
    }
    await upgrade_schema(db_url)
    registry = Registry.from_settings(
        RegistrySettings(database_url=db_url, consumer_group=f"reg-{uuid.uuid4().hex}", **kafka)
    )
    admin_settings = AdminApiSettings(
        database_url=db_url, environment="development", jwt_secret=SECRET, **kafka
    )
    gateway = SessionGateway.from_settings(GatewaySettings(gateway_tenant_id=TENANT, **kafka))
    token = issue_dev_token(
        admin_settings, sub="admin-1", tenant=TENANT, grants=["edit_user_sessions"]
    )
    credential = f"traced-{uuid.uuid4().hex}"
    handle = session_handle(TENANT, credential)

    async with AsyncExitStack() as stack:
        await registry.start()
        stack.push_async_callback(registry.stop)
        await gateway.start()
        stack.push_async_callback(gateway.stop)
        admin = await stack.enter_async_context(
            served(create_admin_app(admin_settings), "http://admin")
        )
        publisher = await stack.enter_async_context(
            SessionEventPublisher(connection(kafka_bootstrap, topics))
        )
        await publisher.publish(
            created_event(
                tenant_id=TENANT,
                credential=credential,
                user_id="u1",
                user_name="Ada",
                session_type=SessionType.browser,
                ip_address="10.0.0.1",
                user_agent="Mozilla/5.0",
                policy=SessionPolicy(max_session_seconds=86400, idle_timeout_seconds=3600),
            )
        )
        await registry.wait_until_idle(60)
        async with asyncio.timeout(60):  # a bound on a hang, not a speed claim
            await gateway.wait_ready()

        async def admin_ready() -> bool:
            return bool((await admin.get("/readyz")).json()["status"] == "ready")

        await until(admin_ready, 60, "the admin API's producer connected")
        target = {"session_ids": [handle]} if by == "ids" else {"filter": {"user_name": "Ada"}}
        accepted = await admin.post(
            "/api/v1/sessions/terminations",
            json=target,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert accepted.status_code == 202, accepted.text

        async def revoked() -> bool:
            return gateway.is_handle_revoked(TENANT, handle)

        await until(revoked, 60, "the gateway holds the revocation")
    provider.force_flush()

    spans = {span.name: span for span in EXPORTER.get_finished_spans()}
    post = spans["admin_api.request_termination"]
    applied = spans["registry.apply_command"]
    enforced = spans["gateway.apply_revocation"]
    assert _trace(post) == _trace(applied) == _trace(enforced)
    assert applied.parent is not None and applied.parent.span_id == _span(post)
    assert enforced.parent is not None and enforced.parent.span_id == _span(applied)
    assert applied.attributes is not None
    assert applied.attributes["command_id"] == accepted.json()["command_id"]
    assert applied.attributes.get("deferred", False) is (by == "text filter")


def _trace(span: ReadableSpan) -> int:
    return _context(span).trace_id


def _span(span: ReadableSpan) -> int:
    return _context(span).span_id


def _context(span: ReadableSpan) -> SpanContext:
    context: SpanContext | None = span.context  # the SDK leaves `context` unannotated
    assert context is not None
    return context
