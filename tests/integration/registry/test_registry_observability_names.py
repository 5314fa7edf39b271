"""Every metric the Grafana dashboard and the alert rules name is one the services export.

The registry runs on the real broker and serves its operations port; the demo service (the
gateway's metrics, mounted with one line) and the admin API answer /metrics over ASGI after a
request each. A query naming a metric nobody exports (a typo, a rename) fails here, naming it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from registry_helpers import StartRegistry, created

from admin_api.app import create_app as admin_app
from admin_api.auth import issue_dev_token
from admin_api.settings import AdminApiSettings
from demo_service.app import create_app as demo_app
from demo_service.settings import DemoSettings
from session_contracts.topics import Topics

pytestmark = pytest.mark.kafka
OBSERVABILITY = Path(__file__).resolve().parents[3] / "deploy" / "observability"
OURS = re.compile(r"\b(?:session_registry|session_gateway|admin_api)_[a-z_]+\b")


def named_in_queries() -> set[str]:
    """Every metric of ours a dashboard panel or an alert rule queries."""
    dashboard = json.loads((OBSERVABILITY / "dashboard.json").read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    queries.append((OBSERVABILITY / "alerts.yml").read_text())  # every name in the rules
    return {name for query in queries for name in OURS.findall(query)}


def sample_names(text: str) -> set[str]:
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


async def test_every_metric_the_dashboard_and_alerts_name_is_exported(
    start_registry: StartRegistry,
    send: Callable[..., Awaitable[None]],
    topics: Topics,
    kafka_bootstrap: str,
    db_url: str,
) -> None:
    registry = await start_registry(registry_http_port=0)
    port = registry.serve_operations()
    await send(created("names-1"))
    await registry.wait_until_idle(30)
    async with httpx.AsyncClient() as client:
        exported = sample_names((await client.get(f"http://127.0.0.1:{port}/metrics")).text)

    demo = demo_app(
        DemoSettings(
            KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
            topic_prefix=topics.prefix,
            gateway_tenant_id="acme",
        )
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=demo), base_url="http://demo"
    ) as client:
        exported |= sample_names((await client.get("/metrics")).text)

    settings = AdminApiSettings(
        database_url=db_url,
        environment="development",
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9",
    )
    api = admin_app(settings)
    token = issue_dev_token(settings, "admin-1", "acme")
    async with (
        api.router.lifespan_context(api),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://api") as c,
    ):
        listed = await c.get("/api/v1/sessions", headers={"Authorization": f"Bearer {token}"})
        assert listed.status_code == 200, listed.text
        exported |= sample_names((await c.get("/metrics")).text)

    named = named_in_queries()
    assert len(named) >= 15  # the extraction found the queries
    assert named - exported == set()
