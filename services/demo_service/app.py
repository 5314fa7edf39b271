"""The demo platform service: a FastAPI app behind the auth gateway.

Run it with `uvicorn --factory demo_service.app:app_from_env` (settings from the
environment: `SESSIONS_GATEWAY_TENANT_ID` is required), or build it in code with
`create_app(settings)`. Sign-in (`/signin`, `POST /api/signin`), `/healthz` and `/readyz`
are exempt from the gateway; every other path is checked.

Sessions are known here by the credential the demo issued; it publishes their events through
`SessionEventPublisher.created`/`terminated`, which put only the handle on the wire. A request
is signed in only with a credential this instance issued (unknown ones are signed out unless
`demo_admit_unknown_sessions`), and only such a request is marked
`request.state.session_authenticated`, so only its activity is reported.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from auth_gateway import SessionGateway
from demo_service import api, pages
from demo_service.context import Context, DemoContext
from demo_service.policy import (
    PolicySource,
    PolicyUnavailable,
    SettingsTopicPolicySource,
    StaticPolicySource,
)
from demo_service.sessions import SessionBook, SignIn, SignInUnrecorded
from demo_service.settings import DemoSettings
from session_contracts.body_limits import RequestLimits
from session_contracts.http_answers import validation_failed
from session_contracts.logs import LogSettings, quiet_kafka_reconnects
from session_contracts.publisher import SessionEventPublisher
from session_contracts.tracing import configure_tracing

MAX_QUERY_BYTES = 8 * 1024
"""The longest query string the demo reads (414 above it)."""
SIGN_IN_PATHS = ["/signin", "/api/signin", "/healthz", "/readyz", "/metrics", "/static/"]


def create_app(settings: DemoSettings, policies: PolicySource | None = None) -> FastAPI:
    """The demo service wired from `settings`; Kafka is contacted when it starts serving."""
    gateway_settings = settings.model_copy(
        update={
            "gateway_exempt_paths": sorted({*settings.gateway_exempt_paths, *SIGN_IN_PATHS}),
        }
    )
    gateway = SessionGateway.from_settings(gateway_settings)
    metrics = CollectorRegistry()  # the app's own: tests build several apps in one process
    gateway.register_metrics(metrics)  # the one line a platform service adds
    publisher = SessionEventPublisher(settings)
    book = SessionBook(settings.demo_max_sessions)
    followed: SettingsTopicPolicySource | None = None
    if policies is None:
        policies = StaticPolicySource.from_settings(settings)
        if settings.demo_policy_source == "settings_topic":
            policies = followed = SettingsTopicPolicySource(settings, policies)
    sign_in = SignIn(
        settings.gateway_tenant_id,
        book,
        policies,
        publisher,
        publish_within=settings.demo_publish_timeout_seconds,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        follow = asyncio.create_task(followed.run()) if followed else None
        try:
            async with publisher:
                # The gateway was started just before this (see SessionGateway.install).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(settings.demo_ready_wait_seconds):
                        await gateway.wait_ready()
                        if followed is not None:
                            await followed.wait_current()
                try:
                    yield
                finally:
                    # the terminations it publishes itself, sent before the producer stops
                    await sign_in.drain(settings.demo_publish_timeout_seconds)
        finally:
            if follow is not None:
                follow.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follow

    app = FastAPI(title="Demo platform service", lifespan=lifespan)
    app.state.demo = DemoContext(settings, gateway, book, sign_in, policies)
    app.include_router(pages.router)
    app.include_router(api.router)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness."""
        return {"status": "ok"}

    @app.get("/metrics", response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus metrics: the gateway's (`session_gateway_*`)."""
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    @app.get("/readyz", response_model=None)
    async def readyz(context: Context) -> JSONResponse:
        """Ready while the gateway's revocations are read and current (503 before, and once
        stale past `gateway_max_staleness_seconds`). Whether sign-in can take the tenant's
        session settings is said beside it (`settings`), not in it: signed-in traffic needs
        only the revocations."""
        status = context.gateway.status()
        if followed is not None:
            # not the follower's last failure: it can name the brokers and the SASL user, and
            # /readyz answers anyone (a review, stop 72); the log has it
            why = followed.unavailable()
            status["settings"] = {"ready": why is None, "why": why}
        return JSONResponse(status, status_code=200 if status["ready"] else 503)

    @app.exception_handler(PolicyUnavailable)
    async def settings_unavailable(request: Request, exc: PolicyUnavailable) -> JSONResponse:
        # No session with a policy the admin may have changed: the fallback's was laxer.
        return JSONResponse(
            {"error": "settings_unavailable", "detail": str(exc)},
            status_code=503,
            headers={"retry-after": "5"},
        )

    @app.exception_handler(KafkaError)
    @app.exception_handler(SignInUnrecorded)
    async def event_log_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # Sign-in cannot be recorded without the broker; say so instead of a 500 or a wait.
        detail = str(exc) if isinstance(exc, SignInUnrecorded) else type(exc).__name__
        return JSONResponse(
            {"error": "event_log_unavailable", "detail": detail},
            status_code=503,
            headers={"retry-after": "5"},
        )

    app.add_exception_handler(RequestValidationError, validation_failed)
    gateway.install(app)
    # outermost: the sign-in routes are open to anyone, and no route reads a body past this
    app.add_middleware(
        RequestLimits,
        max_query_bytes=MAX_QUERY_BYTES,
        max_body_bytes=settings.demo_max_body_bytes,
    )
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn: settings read from the environment now, not at import."""
    quiet_kafka_reconnects()  # a process of its own: one line per 30 s while Kafka is away
    logs = LogSettings()
    if logs.log_format == "json":  # text: uvicorn's own logging, as before
        logs.apply()
    configure_tracing("session-control-demo-service")  # SESSIONS_OTLP_ENDPOINT; unset: off
    return create_app(DemoSettings())
