"""Where the session policy of a new session comes from: the seam to the tenant's settings.

Tenant session settings are edited through the admin API; until they are published for
platform services to read, `StaticPolicySource` serves the policy configured at start-up.
A source reading the tenant's published settings implements the same `PolicySource`.
"""

from __future__ import annotations

from typing import Protocol

from demo_service.settings import DemoSettings
from session_contracts.models import SessionPolicy, SessionType


class PolicySource(Protocol):
    """Answers the policy in force for a tenant's new sessions of one type."""

    async def current(self, tenant_id: str, session_type: SessionType) -> SessionPolicy:
        """The policy a session created now gets (it never changes afterwards)."""
        ...


class StaticPolicySource:
    """Browser sessions get the browser policy; every other type the mobile one."""

    def __init__(self, browser: SessionPolicy, mobile: SessionPolicy) -> None:
        self._browser = browser
        self._mobile = mobile

    @classmethod
    def from_settings(cls, settings: DemoSettings) -> StaticPolicySource:
        """The policies configured in `SESSIONS_DEMO_*`."""
        return cls(
            SessionPolicy(
                idle_timeout_seconds=settings.demo_browser_idle_timeout_seconds,
                max_session_seconds=settings.demo_browser_max_session_seconds,
            ),
            SessionPolicy(
                idle_timeout_seconds=settings.demo_mobile_idle_timeout_seconds,
                max_session_seconds=settings.demo_mobile_max_session_seconds,
            ),
        )

    async def current(self, tenant_id: str, session_type: SessionType) -> SessionPolicy:
        """The configured policy, whatever the tenant."""
        return self._browser if session_type is SessionType.browser else self._mobile
