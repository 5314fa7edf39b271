"""One gateway, many tenants (a resolver), and activity only for sessions the app authenticated.

In process, no broker: revocations are put in the table under the keys the watcher files them
under (`<tenant>/<handle>`).
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Scope

from auth_gateway import GatewaySettings, SessionGateway
from auth_gateway.keys import TenantKeys
from session_contracts.handles import record_key, session_handle

CREDENTIAL = "shared-credential-0123456789"
HTML = {"accept": "text/html,application/xhtml+xml"}
TENANT_OF_HOST = {"acme.example.test": "acme", "globex.example.test": "globex"}


def by_host(scope: Scope) -> str | None:
    """A multi-tenant host's resolver: the tenant is named by the Host header."""
    for name, value in scope["headers"]:
        if name == b"host":
            return TENANT_OF_HOST.get(value.decode("latin-1"))
    return None


def revoke(gateway: SessionGateway, tenant: str, credential: str = CREDENTIAL) -> None:
    gateway.table.add(record_key(tenant, session_handle(tenant, credential)), 4_000_000_000)


async def app_route(request: Request) -> JSONResponse:
    """Echoes what the gateway handed over; authenticates when told to (?auth=1)."""
    state = request.state
    if request.query_params.get("auth") == "1":
        state.session_authenticated = True
    return JSONResponse(
        {
            "credential": getattr(state, "session_credential", None),
            "handle": getattr(state, "session_handle", None),
            "tenant": getattr(state, "session_tenant", None),
        }
    )


def gateway_with(resolver: Any = None, **settings: Any) -> SessionGateway:
    if resolver is None:
        settings.setdefault("gateway_tenant_id", "acme")
    gateway = SessionGateway.from_settings(
        GatewaySettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", **settings),
        tenant_resolver=resolver,
    )
    gateway.watcher.mark_current()
    return gateway


def client_for(gateway: SessionGateway, state: dict[str, Any] | None = None) -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/{path:path}", app_route)])
    gateway.install(app, manage_lifespan=False)
    asgi: Any = app
    if state is not None:  # what a server copies from the lifespan state into each request

        async def with_state(scope: Scope, receive: Any, send: Any) -> None:
            await app({**scope, "state": dict(state)}, receive, send)

        asgi = with_state
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://svc")


def test_the_gateways_key_is_the_contracts_key_of_the_same_credential() -> None:
    keys = TenantKeys("acme")
    for size in (1, 16, 43, 64, 128):
        credential = secrets.token_urlsafe(size)[:size]
        expected = record_key("acme", session_handle("acme", credential))
        assert keys.key(credential.encode()) == expected
        assert keys.handle(expected) == session_handle("acme", credential)


async def test_the_app_gets_the_credential_its_handle_and_tenant() -> None:
    async with client_for(gateway_with()) as client:
        body = (await client.get("/x", headers={"x-session-id": CREDENTIAL})).json()
    assert body == {
        "credential": CREDENTIAL,
        "handle": session_handle("acme", CREDENTIAL),
        "tenant": "acme",
    }


async def test_a_multi_tenant_gateway_refuses_a_revoked_session_only_in_its_tenant() -> None:
    gateway = gateway_with(by_host)
    revoke(gateway, "acme")
    async with client_for(gateway) as client:
        acme = await client.get(
            "/x", headers={"host": "acme.example.test", "cookie": f"sid={CREDENTIAL}"}
        )
        globex = await client.get(
            "/x", headers={"host": "globex.example.test", "cookie": f"sid={CREDENTIAL}"}
        )
        acme_html = await client.get(
            "/x", headers={"host": "acme.example.test", "x-session-id": CREDENTIAL, **HTML}
        )
    assert acme.status_code == 401 and acme.json() == {"error": "session_revoked"}
    assert acme_html.status_code == 303
    assert globex.status_code == 200
    assert globex.json()["tenant"] == "globex"
    assert globex.json()["handle"] == session_handle("globex", CREDENTIAL)
    assert gateway.is_revoked(CREDENTIAL, "acme") and not gateway.is_revoked(CREDENTIAL, "globex")


async def test_a_revocation_filed_under_another_tenants_key_refuses_nothing_here() -> None:
    gateway = gateway_with()  # fixed tenant acme
    revoke(gateway, "globex")
    gateway.table.add(record_key("globex", session_handle("acme", CREDENTIAL)), 4_000_000_000)
    gateway.table.add(CREDENTIAL.encode(), 4_000_000_000)  # filed by credential: never looked up
    async with client_for(gateway) as client:
        response = await client.get("/x", headers={"x-session-id": CREDENTIAL})
    assert response.status_code == 200


@pytest.mark.parametrize("host", ["unknown.example.test", None])
async def test_without_a_tenant_a_credential_is_refused_and_anonymous_requests_pass(
    host: str | None,
) -> None:
    gateway = gateway_with(by_host)
    base = {"host": host} if host else {}
    async with client_for(gateway) as client:
        api = await client.get("/x", headers={**base, "x-session-id": CREDENTIAL})
        page = await client.get("/x", headers={**base, "cookie": f"sid={CREDENTIAL}", **HTML})
        anonymous = await client.get("/x", headers=base)
    assert api.status_code == 401 and api.json() == {"error": "tenant_unknown"}
    assert page.status_code == 303 and page.headers["set-cookie"].startswith("sid=;")
    assert anonymous.status_code == 200 and anonymous.json()["credential"] is None
    assert gateway.activity.pending == 0


@pytest.mark.parametrize("answer", ["", "acme/x", "a" * 65, "ac me", 42, b"acme"])
async def test_a_resolver_answer_that_is_no_tenant_id_counts_as_no_tenant(answer: Any) -> None:
    gateway = gateway_with(lambda scope: answer)
    async with client_for(gateway) as client:
        response = await client.get("/x", headers={"x-session-id": CREDENTIAL})
    assert response.status_code == 401 and response.json() == {"error": "tenant_unknown"}


@pytest.mark.parametrize(
    ("tenant", "resolver"), [(None, None), ("acme", by_host)], ids=["neither", "both"]
)
def test_a_gateway_needs_exactly_one_of_a_fixed_tenant_and_a_resolver(
    tenant: str | None, resolver: Any
) -> None:
    settings = GatewaySettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", gateway_tenant_id=tenant)
    with pytest.raises(ValueError, match="exactly one"):
        SessionGateway.from_settings(settings, tenant_resolver=resolver)


async def test_activity_is_reported_only_for_sessions_the_app_authenticated() -> None:
    gateway = gateway_with(by_host)
    async with client_for(gateway) as client:
        for _ in range(20):  # random cookies, as in issue 12 item 6: the app knows none
            forged = secrets.token_urlsafe(32)
            await client.get("/x", headers={"host": "acme.example.test", "cookie": f"sid={forged}"})
        assert gateway.activity.pending == 0
        await client.get(
            "/x?auth=1", headers={"host": "globex.example.test", "x-session-id": CREDENTIAL}
        )
    [(key, _, _)] = gateway.activity._pending
    assert key == record_key("globex", session_handle("globex", CREDENTIAL))
    event = gateway.activity._event(gateway.activity._pending[0])
    assert event is not None
    assert (event.tenant_id, event.session_id) == ("globex", session_handle("globex", CREDENTIAL))


async def test_an_authenticated_flag_the_app_did_not_set_counts_for_nothing() -> None:
    gateway = gateway_with()
    # a host whose lifespan state holds the flag (a bug): it must not leak into every request
    async with client_for(gateway, state={"session_authenticated": True}) as client:
        await client.get("/x", headers={"x-session-id": CREDENTIAL})
        await client.get("/x?auth=1")  # authenticated, but no session: nothing to report
    assert gateway.activity.pending == 0


async def test_a_revoked_session_is_refused_before_the_app_can_authenticate_it() -> None:
    gateway = gateway_with()
    revoke(gateway, "acme")
    async with client_for(gateway) as client:
        response = await client.get("/x?auth=1", headers={"x-session-id": CREDENTIAL})
    assert response.status_code == 401
    assert gateway.activity.pending == 0
