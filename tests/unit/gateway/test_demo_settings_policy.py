"""The demo login service's policy source (`demo_service.policy.SettingsTopicPolicySource`):
what a new session takes from the tenant's settings on `sessions.settings`, and when it takes
none. Each case from a review as an attacker (stop 68), each failing on the code before."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from demo_service.policy import PolicyUnavailable, SettingsTopicPolicySource, StaticPolicySource
from demo_service.settings import DemoSettings
from session_contracts.codec import encode
from session_contracts.models import (
    DEFAULT_POLICIES,
    SessionPolicy,
    SessionSettingsChanged,
    SessionType,
)

AT = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
STRICT = SessionPolicy(max_session_seconds=3600, idle_timeout_seconds=600)
STRICTER = SessionPolicy(max_session_seconds=1800, idle_timeout_seconds=300)


def _source() -> SettingsTopicPolicySource:
    demo = DemoSettings(gateway_tenant_id="acme")
    fallback = StaticPolicySource(DEFAULT_POLICIES["browser"], DEFAULT_POLICIES["mobile"])
    return SettingsTopicPolicySource(demo, fallback)


def _changed(
    policy: SessionPolicy, at: datetime = AT, *, mobile: SessionPolicy | None = None
) -> bytes:
    return encode(
        SessionSettingsChanged(
            event_id=uuid.uuid4(),
            occurred_at=at,
            tenant_id="acme",
            changed_by="admin-1",
            settings={"browser": policy, "mobile": mobile or policy},
        )
    )


async def test_no_session_takes_a_policy_before_the_settings_are_read_or_while_stale() -> None:
    """A sign-in before the topic was read took the fallback's 30 days whatever the admin had
    set (a restart, a missing READ ACL): refused now, as the revocations are."""
    source = _source()
    source.apply(b"acme", _changed(STRICT))
    with pytest.raises(PolicyUnavailable, match="not read yet"):
        await source.current("acme", SessionType.browser)
    source.mark_current()
    assert await source.current("acme", SessionType.browser) == STRICT
    source.current_until = source.monotonic() - 1  # not confirmed since: stale
    with pytest.raises(PolicyUnavailable, match="not confirmed current"):
        await source.current("acme", SessionType.browser)


async def test_a_tombstone_or_an_unreadable_record_leaves_the_settings() -> None:
    """A tombstone cleared the tenant's settings: the laxer defaults then. A record this
    release cannot read changes nothing either (refusing sign-ins for it would let one
    malformed record stop them). Of readable records the last read is kept (one partition
    holds a tenant's, in the order they were published)."""
    source = _source()
    source.mark_current()
    source.apply(b"acme", _changed(STRICT))
    source.apply(b"acme", None)
    assert await source.current("acme", SessionType.browser) == STRICT
    newer = _changed(STRICTER).replace(b'"schema_version":3', b'"schema_version":99')
    source.apply(b"acme", newer)
    assert await source.current("acme", SessionType.browser) == STRICT
    source.apply(b"acme", _changed(STRICTER, AT - timedelta(minutes=1)))
    assert await source.current("acme", SessionType.browser) == STRICTER


@pytest.mark.parametrize("kind", [t for t in SessionType if t is not SessionType.browser])
async def test_every_other_session_type_takes_the_tenants_mobile_policy(kind: SessionType) -> None:
    """Only browser and mobile are settable; an API client or access token kept the static
    180 days after the tenant had tightened mobile to an hour."""
    source = _source()
    source.mark_current()
    source.apply(b"acme", _changed(STRICTER, mobile=STRICT))
    assert await source.current("acme", kind) == STRICT
    assert await source.current("acme", SessionType.browser) == STRICTER
