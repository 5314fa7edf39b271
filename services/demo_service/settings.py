"""Settings of the demo platform service: the gateway's, plus its session policy and cookie."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from auth_gateway.settings import GatewaySettings
from session_contracts.models import TenantId

HOUR = 3600
DAY = 86400


class DemoSettings(GatewaySettings):
    """`SESSIONS_GATEWAY_*` for the gateway, `SESSIONS_DEMO_*` for the demo service itself."""

    gateway_tenant_id: TenantId = Field(
        description="The tenant this demo instance serves (SESSIONS_GATEWAY_TENANT_ID): the "
        "demo is a single-tenant service."
    )

    demo_browser_idle_timeout_seconds: int = Field(default=8 * HOUR, gt=0)
    demo_browser_max_session_seconds: int = Field(default=30 * DAY, gt=0)
    demo_mobile_idle_timeout_seconds: int = Field(default=30 * DAY, gt=0)
    demo_mobile_max_session_seconds: int = Field(default=180 * DAY, gt=0)
    demo_policy_source: Literal["settings_topic", "static"] = Field(
        default="settings_topic",
        description="settings_topic: the tenant's settings as published by the admin API "
        "(the SESSIONS_DEMO_* policies until it publishes any); static: those policies only.",
    )
    demo_ready_wait_seconds: float = Field(
        default=10.0,
        ge=0,
        description="Start-up waits up to this long for the gateway to read the revocations "
        "topic; after it the service serves anyway (checked paths answer 503 until ready).",
    )
    demo_cookie_secure: bool = Field(
        default=False, description="Mark the session cookie Secure (serve over HTTPS then)."
    )
    demo_admit_unknown_sessions: bool = Field(
        default=False,
        description="Admit credentials this instance did not issue as anonymous sessions, "
        "never reporting their activity: any well-formed credential the gateway holds no "
        "revocation for, a session opened elsewhere on the platform or a made-up one alike "
        "(nothing here can tell them apart). The default, False: only sessions signed in "
        "here are signed in; any other credential is treated as signed out.",
    )
    demo_max_sessions: int = Field(
        default=100_000,
        ge=1,
        description="Sessions remembered by one demo instance; the least recently used is "
        "let go to make room, and ended on the platform (session.terminated).",
    )
    demo_publish_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="How long a sign-in waits for the broker to take its session.created: "
        "then 503 event_log_unavailable, and the session is withdrawn (a termination follows "
        "it, should the broker take it later). Also how long a sign-out waits for its "
        "termination, and a stop for the terminations not yet sent.",
    )
    demo_max_body_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        description="The largest request body the demo reads (413 above it): its sign-in "
        "routes are open to anyone.",
    )
