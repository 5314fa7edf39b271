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
        description="Admit credentials this instance did not issue (sessions opened elsewhere "
        "on the platform) as anonymous sessions, never reporting their activity. The "
        "default, False: only sessions signed in here are signed in; any other credential "
        "is treated as signed out.",
    )
    demo_max_sessions: int = Field(
        default=100_000, ge=1, description="Sessions remembered by one demo instance."
    )
