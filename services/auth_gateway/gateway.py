"""`SessionGateway`: the one object a platform service builds, starts and mounts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from starlette.applications import Starlette
from starlette.types import ASGIApp, Lifespan, Scope

from auth_gateway.activity import ActivityReporter
from auth_gateway.client_ip import ClientAddress
from auth_gateway.connections import OpenConnections
from auth_gateway.keys import TenantKeys
from auth_gateway.metrics import REFUSAL_REASONS, GatewayCollector
from auth_gateway.middleware import GatewayMiddleware, TenantResolver
from auth_gateway.revocations import RevocationTable
from auth_gateway.settings import GatewaySettings
from auth_gateway.watcher import RevocationWatcher
from session_contracts.handles import record_key
from session_contracts.kafka_clients import new_producer

log = logging.getLogger(__name__)

REGISTRY_ACTIVITY_GRACE_SECONDS = 120
"""The registry's default `SESSIONS_ACTIVITY_GRACE_SECONDS`: an activity interval at or above
it is warned of at start (a gateway cannot read the registry's setting)."""

EVICTION_TICK_SECONDS = 1.0
EVICTION_SLOTS_PER_TICK = 65_536
"""A tick scans this many table slots (~4 ms); a 2-million-slot table is swept every ~30 s."""


class SessionGateway:
    """Revocation watcher + activity reporter + the middleware that consults them."""

    def __init__(
        self,
        settings: GatewaySettings,
        table: RevocationTable,
        watcher: RevocationWatcher,
        activity: ActivityReporter,
        tenant_resolver: TenantResolver | None = None,
    ) -> None:
        self.settings = settings
        self.table = table
        self.watcher = watcher
        self.activity = activity
        self.tenant_resolver = tenant_resolver
        tenant = settings.gateway_tenant_id
        self.fixed_tenant = None if tenant_resolver or tenant is None else TenantKeys(tenant)
        self.client_addresses = ClientAddress(settings.gateway_trusted_proxies)
        self.connections = OpenConnections()
        """The WebSockets let through with a session, closed when it is revoked."""
        watcher.on_revoked = self.connections.revoked
        self.refused: dict[str, int] = dict.fromkeys(REFUSAL_REASONS, 0)
        """Requests the middleware refused, by reason (revoked, tenant_unknown, not_ready,
        stale, cookie_too_large, too_many_credentials, malformed_credential)."""
        self.admitted_unverified = 0
        """Requests with a session let through with `gateway_fail_open` while the revocations
        were not read or not current, checked only against those read: a session revoked
        since got through."""
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def from_settings(
        cls,
        settings: GatewaySettings,
        *,
        tenant_resolver: TenantResolver | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> SessionGateway:
        """Wire a gateway from its settings (nothing connects until `start()`).

        One tenant: `settings.gateway_tenant_id`. Many: `tenant_resolver`, called with each
        checked request's ASGI scope, answers its tenant id (None, or anything that is not a
        tenant id: no tenant); the gateway then keeps every tenant's revocations. Exactly one
        of the two must be given. `monotonic` is the clock staleness is measured on.
        """
        tenant = settings.gateway_tenant_id
        if (tenant is None) == (tenant_resolver is None):
            raise ValueError(
                "give the gateway exactly one of a fixed tenant (SESSIONS_GATEWAY_TENANT_ID) "
                "and a tenant_resolver"
            )
        topics = settings.topics
        table = RevocationTable()
        watcher = RevocationWatcher(
            settings,
            topics.revocations,
            None if tenant is None else [tenant],
            table,
            fetch_max_wait_ms=settings.gateway_fetch_max_wait_ms,
            grace_seconds=settings.gateway_eviction_grace_seconds,
            max_staleness_seconds=settings.gateway_max_staleness_seconds,
            monotonic=monotonic,
            partitions_check_seconds=settings.gateway_partitions_check_seconds,
        )
        activity = ActivityReporter(
            lambda: new_producer(settings, linger_ms=20),
            topics.events,
            interval_seconds=settings.gateway_activity_interval_seconds,
            flush_seconds=settings.gateway_activity_flush_seconds,
            max_tracked=settings.gateway_activity_max_tracked,
            max_pending=settings.gateway_activity_max_pending,
        )
        return cls(settings, table, watcher, activity, tenant_resolver)

    @property
    def ready(self) -> bool:
        """Revocations read up to the start-up end offsets, and confirmed current since
        within `gateway_max_staleness_seconds`: the gateway vouches for what it admits."""
        return self.watcher.is_current

    @property
    def state(self) -> str:
        """`starting` (not read up to the start-up end offsets yet), `current` or `stale`."""
        if self.watcher.is_current:
            return "current"
        return "stale" if self.watcher.ready else "starting"

    @property
    def staleness_seconds(self) -> float:
        """Seconds since the revocations were last confirmed read up to the topic's end."""
        return self.watcher.staleness_seconds()

    async def wait_ready(self) -> None:
        """Wait until ready (wrap in `asyncio.timeout(...)` to bound the wait)."""
        await self.watcher.wait_current()

    def client_address(self, scope: Scope) -> str | None:
        """A request's client address as the gateway reports it: the connection's peer, or,
        from a trusted proxy, the right-most X-Forwarded-For address not itself trusted."""
        client = scope.get("client")
        return self.client_addresses.of(client[0] if client else None, scope["headers"])

    def is_revoked(self, credential: str, tenant_id: str | None = None) -> bool:
        """Whether this gateway currently refuses `credential` in `tenant_id` (default: the
        fixed tenant)."""
        keys = self.fixed_tenant if tenant_id is None else TenantKeys(tenant_id)
        if keys is None:
            raise ValueError("a gateway with a tenant resolver needs the tenant_id")
        return keys.key(credential.encode()) in self.table

    def is_handle_revoked(self, tenant_id: str, handle: str) -> bool:
        """Whether this gateway currently refuses the session `handle` of `tenant_id`."""
        return record_key(tenant_id, handle) in self.table

    def register_metrics(self, registry: CollectorRegistry = REGISTRY) -> GatewayCollector:
        """Export this gateway's metrics (`auth_gateway.metrics`) through `registry`: the one
        line a host service adds; its /metrics then carries them."""
        collector = GatewayCollector(self)
        registry.register(collector)
        return collector

    def status(self) -> dict[str, Any]:
        """Readiness and counters, for a service's /readyz or /metrics."""
        return {
            "ready": self.ready,
            "state": self.state,
            "staleness_seconds": round(self.staleness_seconds, 3),
            "max_staleness_seconds": self.watcher.max_staleness_seconds,
            "revocations": len(self.table),
            "records_applied": self.watcher.records_applied,
            "records_rejected": self.watcher.records_rejected,
            "records_newer": self.watcher.records_newer,
            "revocations_unread": len(self.watcher.unread),
            "tombstones_ignored": self.watcher.tombstones_ignored,
            "activity_sent": self.activity.sent,
            "activity_pending": self.activity.pending,
            "activity_dropped": self.activity.dropped,
            "requests_refused": dict(self.refused),
        }

    async def start(self) -> None:
        """Start following revocations and reporting activity (returns at once; see `ready`)."""
        if self._tasks:
            return
        interval = self.settings.gateway_activity_interval_seconds
        if interval >= REGISTRY_ACTIVITY_GRACE_SECONDS:
            log.warning(
                "SESSIONS_GATEWAY_ACTIVITY_INTERVAL_SECONDS=%g is not below the registry's "
                "default grace (SESSIONS_ACTIVITY_GRACE_SECONDS=%d): the registry may expire a "
                "session its platform still serves, and then revokes it at its next reported "
                "request, signing its user out early (docs/operations.md"
                "#registryexpiredsessionsserved)",
                interval,
                REGISTRY_ACTIVITY_GRACE_SECONDS,
            )
        self._spawn(self.watcher.run, "revocation-watcher")
        self._spawn(self.activity.run, "activity-reporter")
        self._spawn(self._evict_forever, "revocation-eviction")

    def _spawn(self, factory: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        task = asyncio.create_task(factory(), name=f"gateway-{name}")
        task.add_done_callback(_log_crash)
        self._tasks.append(task)

    async def stop(self) -> None:
        """Stop the background tasks and send pending activity."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if tasks:
            await self.activity.stop()

    async def _evict_forever(self) -> None:
        while True:
            await asyncio.sleep(EVICTION_TICK_SECONDS)
            self.table.evict(time.time(), EVICTION_SLOTS_PER_TICK)
            self.cut_off_if_stale()

    def cut_off_if_stale(self) -> int:
        """Once the revocations are stale (read once, not confirmed current within the bound)
        and the gateway fails closed, close every connection served past its check (open
        WebSockets, streamed responses): a revocation made meanwhile may be missing, as a new
        request is refused 503 then. How many were closed. Run each second with the eviction.
        Before stop 66 they were served for the whole outage (a review as an attacker)."""
        watcher = self.watcher
        if self.settings.gateway_fail_open or not watcher.ready or watcher.is_current:
            return 0
        if not self.connections:
            return 0
        closed = self.connections.cut_off_stale()
        log.warning(
            "revocations stale for %.1f s: closed %d open connection(s) of sessions the "
            "gateway cannot vouch for",
            watcher.staleness_seconds(),
            closed,
        )
        return closed

    def wrap(self, app: ASGIApp, *, manage_lifespan: bool = True) -> GatewayMiddleware:
        """`app` behind the gateway; `manage_lifespan`: the app's lifespan starts/stops it."""
        return GatewayMiddleware(app, self, manage_lifespan)

    def install(self, app: Starlette, *, manage_lifespan: bool = True) -> None:
        """Add the gateway middleware to a Starlette/FastAPI app (before it first serves).

        With `manage_lifespan` the gateway starts before the app's own lifespan and stops
        after it; it is hooked into the router's lifespan, so it also runs when tests enter
        `app.router.lifespan_context(app)` directly.
        """
        app.add_middleware(GatewayMiddleware, gateway=self, manage_lifespan=False)
        if manage_lifespan:
            app.router.lifespan_context = self._around(app.router.lifespan_context)

    def _around(self, lifespan: Lifespan[Any]) -> Lifespan[Any]:
        @contextlib.asynccontextmanager
        async def gateway_then_app(app: Any) -> AsyncIterator[Any]:
            await self.start()
            try:
                async with lifespan(app) as state:
                    yield state
            finally:
                await self.stop()

        return gateway_then_app


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s crashed", task.get_name(), exc_info=task.exception())
