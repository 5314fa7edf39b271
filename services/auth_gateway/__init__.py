"""Auth gateway: ASGI middleware that refuses revoked sessions within milliseconds.

A platform service mounts it like this::

    from auth_gateway import GatewaySettings, SessionGateway

    settings = GatewaySettings()              # SESSIONS_GATEWAY_TENANT_ID=... etc., at start-up
    gateway = SessionGateway.from_settings(settings)
    # serving many tenants: no tenant setting, and a resolver of each request's tenant:
    #   SessionGateway.from_settings(settings, tenant_resolver=lambda scope: ...)
    gateway.install(app)                      # FastAPI/Starlette, before the app first serves
    # or, for any ASGI app:  app = gateway.wrap(app)

`install`/`wrap` run the gateway inside the app's lifespan (`start()` before the app's own
startup, `stop()` after its shutdown; `install` hooks the router's lifespan, so entering
`app.router.lifespan_context(app)` in a test starts it too). Pass `manage_lifespan=False` and
call `await gateway.start()` / `await gateway.stop()` yourself when the server runs without
lifespan events. `start()` returns at once: the gateway answers 503 until `ready`.

What it does:
- follows the compacted `sessions.revocations` topic from the beginning, every partition,
  without a consumer group (`RevocationWatcher`), into a compact in-memory table
  (`RevocationTable`) keyed `<tenant_id>/<handle>`, dropping entries once past `valid_until`
  (+ a grace for clock skew); a presented credential is checked by the key of its handle
  (`session_contracts.handles.session_handle`, derived in `keys`);
- answers a revoked session's next request with `303` to `gateway_sign_in_url` when the
  client accepts `text/html`, else `401 {"error": "session_revoked"}`;
- answers `503 {"error": "gateway_not_ready"}` until the topic was read up to the end offsets
  seen at start-up (or admits traffic and warns, with `gateway_fail_open`);
- reports `session.activity` at most once per session per interval, in the background
  (`ActivityReporter`), only for requests whose session the app authenticated
  (`request.state.session_authenticated = True`);
- exposes `gateway.ready`, `gateway.staleness_seconds`, `await gateway.wait_ready()`,
  `gateway.status()` for readiness probes, and `request.state.session_credential`,
  `session_handle`, `session_tenant` to the app.
"""

from auth_gateway.gateway import SessionGateway
from auth_gateway.middleware import GatewayMiddleware
from auth_gateway.settings import GatewaySettings

__all__ = ["GatewayMiddleware", "GatewaySettings", "SessionGateway"]
