"""Where the session policy of a new session comes from: the tenant's current settings.

Admins change a tenant's session settings through the admin API, which publishes the full
settings of the tenant on the compacted `sessions.settings` topic (keyed by tenant id).
`SettingsTopicPolicySource` follows that topic and snapshots the latest settings into each
new session; until a tenant has published any (or without the admin API at all) the
configured `StaticPolicySource` answers, whose defaults equal the admin API's. Until the
topic is read (and while it is stale) no session is created: sign-in answers 503.
"""

from __future__ import annotations

import logging
from typing import Protocol

from auth_gateway.follower import CompactedTopicFollower
from demo_service.settings import DemoSettings
from session_contracts.codec import DecodeError, decode_settings
from session_contracts.models import SessionPolicy, SessionType

log = logging.getLogger(__name__)


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


class PolicyUnavailable(Exception):
    """The tenant's current settings are not known: no session is created (503)."""


class SettingsTopicPolicySource(CompactedTopicFollower):
    """The tenant's settings as last published by the admin API, else `fallback`'s.

    Run `run()` as a background task. `current()` never waits for it, and refuses
    (`PolicyUnavailable`) until the topic has been read to its end, and again while that is
    not confirmed within `gateway_max_staleness_seconds`: a sign-in before then took the
    fallback's policy whatever the admin had set (a review, stop 68; the contract says a login
    service reads the topic to its end first).

    Of the records on the tenant's key the last read is kept (one partition holds them, in
    the order the admin API published them). A tombstone leaves it as it is (the admin API
    writes none; clearing fell back to the laxer defaults), and so does a record this release
    cannot read (refusing sign-ins for it would let any writer of the topic stop a tenant's
    sign-ins with one malformed record). Types the settings do not name take the tenant's
    mobile policy, as `StaticPolicySource` gives them.
    """

    def __init__(self, settings: DemoSettings, fallback: PolicySource) -> None:
        super().__init__(
            settings,
            settings.topics.settings,
            max_staleness_seconds=settings.gateway_max_staleness_seconds,
            partitions_check_seconds=settings.gateway_partitions_check_seconds,
        )
        self._tenant = settings.gateway_tenant_id
        self._key = self._tenant.encode()
        self._fallback = fallback
        self._latest: dict[str, SessionPolicy] = {}

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Keep the latest settings record of this service's tenant."""
        if key != self._key:
            return
        if value is None:
            log.warning(
                "a tombstone on the session settings of %s ignored (the admin API writes none)",
                self._tenant,
            )
            return
        try:
            record = decode_settings(value)
        except DecodeError as exc:
            log.warning("session settings record of %s ignored: %s", self._tenant, exc.reason)
            return
        if record.tenant_id != self._tenant:
            return
        self._latest = {kind: policy for kind, policy in record.settings.items()}

    def unavailable(self) -> str | None:
        """Why no session can be given the tenant's policy now (None: it can)."""
        if not self.ready:
            return f"the session settings ({self.topic}) are not read yet"
        if not self.is_current:
            return f"the session settings ({self.topic}) are not confirmed current"
        return None

    async def current(self, tenant_id: str, session_type: SessionType) -> SessionPolicy:
        """The published policy for this type (for types the settings do not name, the
        mobile one), else the fallback's."""
        if (why := self.unavailable()) is not None:
            raise PolicyUnavailable(why)
        policy = self._latest.get(session_type.value)
        if policy is None and session_type is not SessionType.browser:
            policy = self._latest.get(SessionType.mobile.value)
        if policy is None:
            return await self._fallback.current(tenant_id, session_type)
        return policy
