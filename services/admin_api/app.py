"""Building the admin API: `create_app(settings)`; `app_from_env` for `uvicorn --factory`."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from admin_api import web
from admin_api.adapters.bus import CommandBus, KafkaBus
from admin_api.auth import TokenVerifier, jwks_fetch_counter
from admin_api.entrypoints import audit, health, session_settings, sessions, terminations
from admin_api.entrypoints.errors import install_error_handlers
from admin_api.metrics import RequestMetrics, app_registry
from admin_api.runtime import Clock, Runtime, system_clock
from admin_api.service_layer.schema_watch import SchemaWatch, schema_gauge
from admin_api.service_layer.shared_budgets import BudgetSync, sync_counter
from admin_api.settings import AdminApiSettings
from read_model.database import open_store
from session_contracts.body_limits import RequestLimits
from session_contracts.logs import LogSettings, quiet_kafka_reconnects
from session_contracts.tracing import configure_tracing

API_VERSION = "2.2.0"
"""The admin API's version, the OpenAPI document's `info.version` (semver: a patch for words, a
minor for an addition a client may ignore, a major for a change that breaks one). Any change
to the document needs a new one, with its line in docs/admin-api.md's "API versions": the
document under `schemas/http/` is checked against the code (`admin_api.openapi_doc`)."""

API_DESCRIPTION = """See every active browser and mobile session of your tenant and end any of them.

Every `/api/v1` endpoint needs `Authorization: Bearer <JWT>` with claims `sub`, `tenant` and
`grants` containing `edit_user_sessions`. 401: missing, invalid or expired token; 403: no grant;
another tenant's resources answer 404. Bad parameters answer 422 naming the field.
"""


def create_app(
    settings: AdminApiSettings,
    *,
    bus: CommandBus | None = None,
    clock: Clock = system_clock,
    admin_page: web.AdminPageConfig | None = None,
    freeze_heap: bool = False,
) -> FastAPI:
    """The admin API for `settings`; `bus` replaces Kafka in unit tests, `clock` the time.

    `admin_page` configures the web page; without it the `SESSIONS_ADMIN_PAGE_*` settings do.
    `freeze_heap` (a process of its own: `app_from_env`): once started, what start-up made is
    moved out of the cyclic collector's sight (`gc.freeze`), so a full collection scans only
    what requests left behind, not every module, model and route (40-50 ms a collection for
    the registry's similar heap, the slowest request when it lands in one).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = open_store(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            listing=True,
        )
        kafka = None
        if bus is None:
            kafka = KafkaBus(settings, settings.publish_timeout_seconds)
        runtime = app.state.runtime = Runtime(
            settings=settings,
            store=store,
            bus=bus or kafka,  # type: ignore[arg-type]
            verifier=TokenVerifier(settings, jwks_fetches),
            clock=clock,
            metrics=registry,
            schema=SchemaWatch(store.engine, behind),
        )
        watching = None
        if settings.schema_check_seconds:
            watching = asyncio.create_task(
                runtime.schema.run(settings.schema_check_seconds), name="read the schema's standing"
            )
        sharing = None
        if settings.search_budget_sync_seconds:
            sync = BudgetSync(store, runtime.budgets, syncs=syncs)
            sharing = asyncio.create_task(
                sync.run(settings.search_budget_sync_seconds), name="share search budgets"
            )
        if kafka is not None:
            # last before the try that stops it: a constructor above that raised left its
            # connecting task and producer running (a review, stop 73)
            kafka.start()
        if freeze_heap:
            gc.freeze()
        try:
            yield
        finally:
            for task in (sharing, watching):
                if task is not None:
                    task.cancel()
                    await asyncio.wait({task})  # ended; a cancellation of ours still raises
            if kafka is not None:
                await kafka.stop()
            await store.dispose()

    registry = app_registry()
    syncs = sync_counter(registry)
    jwks_fetches = jwks_fetch_counter(registry)
    behind = schema_gauge(registry)
    development = settings.environment == "development"
    app = FastAPI(
        title="Session Control admin API",
        version=API_VERSION,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        # No Swagger UI or ReDoc: FastAPI's pages load their scripts from a CDN, on the origin
        # whose sessionStorage holds the admin's token. The document itself only in development.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if development else None,
    )
    app.add_middleware(
        RequestLimits,
        max_query_bytes=settings.max_query_bytes,
        max_body_bytes=settings.max_body_bytes,
    )
    app.add_middleware(RequestMetrics, registry=registry)
    install_error_handlers(app)
    # terminations first: for a method /api/v1/sessions/terminations lacks, 405 names POST
    # (the first route that matches the path), not GET of /api/v1/sessions/{session_id}
    for module in (terminations, sessions, audit, session_settings, health):
        app.include_router(module.router)
    app.include_router(web.router)  # the admin web page at /admin (admin_api/web)
    token_header = settings.admin_page_token_header
    page = admin_page or web.AdminPageConfig(
        # "token" is /admin/token, relative to the page (and to a root path)
        token_url=settings.admin_page_token_url or ("token" if token_header else None),
        token_header=token_header,
        sign_in_url=settings.admin_page_sign_in_url,
        live_interval_seconds=settings.admin_page_live_interval_seconds,
        fragment_sign_in=development,
    )
    if page.fragment_sign_in and not development:
        raise ValueError(
            "admin_page.fragment_sign_in: the #token= sign-in link exists only with "
            "SESSIONS_ENVIRONMENT=development; production pages take tokens from token_url"
        )
    setattr(app.state, web.config.APP_STATE_KEY, page)
    return app


def app_from_env() -> FastAPI:
    """The app configured from the environment (`uvicorn --factory admin_api.app:app_from_env`)."""
    quiet_kafka_reconnects()  # a process of its own: one line per 30 s while Kafka is away
    logs = LogSettings()
    if logs.log_format == "json":  # text: uvicorn's own logging, as before
        logs.apply()
    configure_tracing("session-control-admin-api")  # SESSIONS_OTLP_ENDPOINT; unset: off
    return create_app(AdminApiSettings(), freeze_heap=True)
