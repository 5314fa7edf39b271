"""The demo service's own view of its sessions: who signed in, and signing in and out.

The gateway only knows revocations; like any platform service, the demo keeps its own
session state (user, type, policy) and honours the policy's limits itself, so a session the
gateway has forgotten after `valid_until` is still not valid here.

A session is known here by its credential (the cookie value or token the demo issued); events
name it by its handle, which the publisher's builders derive from the credential (`created_event`,
`terminated_event`), so the demo never computes a handle or puts a credential on the
wire.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from demo_service.policy import PolicySource
from session_contracts.models import (
    Event,
    SessionPolicy,
    SessionType,
    TerminationReason,
)
from session_contracts.publisher import created_event, terminated_event


class EventSink(Protocol):
    """Where session events go (a `SessionEventPublisher` in production)."""

    async def publish(self, event: Event) -> None:
        """Send one event and wait until the broker has it."""
        ...


@dataclass
class DemoSession:
    """One signed-in session as this service remembers it."""

    credential: str
    """What the client presents (cookie or header); never leaves this service but to it."""
    handle: str
    """The session's public handle, as events, admins and logs name it."""
    user_id: str
    user_name: str
    session_type: SessionType
    created_at: datetime
    last_seen_at: datetime
    policy: SessionPolicy

    def expires_at(self) -> datetime:
        """When the policy ends the session, counting from creation and last use."""
        return min(
            self.created_at + timedelta(seconds=self.policy.max_session_seconds),
            self.last_seen_at + timedelta(seconds=self.policy.idle_timeout_seconds),
        )

    def is_active(self, now: datetime) -> bool:
        """Whether the policy still allows the session at `now`."""
        return now < self.expires_at()


@dataclass(frozen=True)
class ExternalSession:
    """A session opened elsewhere on the platform: this instance knows only its handle."""

    handle: str


Visitor = DemoSession | ExternalSession


class SessionBook:
    """Sessions created by this instance, bounded (the least recently used go first)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._sessions: OrderedDict[str, DemoSession] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def add(self, session: DemoSession) -> None:
        """Remember a new session."""
        self._sessions[session.credential] = session
        while len(self._sessions) > self._capacity:
            self._sessions.popitem(last=False)

    def use(self, credential: str, now: datetime) -> DemoSession | None:
        """The active session of this credential, marked as used now; None if unknown or
        ended."""
        session = self._sessions.get(credential)
        if session is None:
            return None
        if not session.is_active(now):
            del self._sessions[credential]
            return None
        session.last_seen_at = now
        self._sessions.move_to_end(credential)
        return session

    def forget(self, credential: str) -> DemoSession | None:
        """Drop a session (signed out); return it if it was known."""
        return self._sessions.pop(credential, None)


class SignIn:
    """Creates sessions and announces them; ends them on sign-out."""

    def __init__(
        self, tenant_id: str, book: SessionBook, policies: PolicySource, events: EventSink
    ) -> None:
        self._tenant = tenant_id
        self._book = book
        self._policies = policies
        self._events = events

    async def sign_in(
        self, user_name: str, session_type: SessionType, ip_address: str, user_agent: str | None
    ) -> DemoSession:
        """Open a session, publish `session.created`, and remember it once the broker has it."""
        now = datetime.now(UTC)
        credential = secrets.token_urlsafe(32)
        user_id = user_name.strip().casefold()[:128] or user_name[:128]
        policy = await self._policies.current(self._tenant, session_type)
        created = created_event(
            tenant_id=self._tenant,
            credential=credential,
            user_id=user_id,
            user_name=user_name,
            session_type=session_type,
            ip_address=ip_address,
            user_agent=user_agent[:1024] if user_agent else None,
            policy=policy,
            occurred_at=now,
        )
        await self._events.publish(created)
        session = DemoSession(
            credential=credential,
            handle=created.session_id,
            user_id=user_id,
            user_name=user_name,
            session_type=session_type,
            created_at=now,
            last_seen_at=now,
            policy=policy,
        )
        self._book.add(session)
        return session

    async def sign_out(self, credential: str) -> None:
        """Forget the session and publish `session.terminated` (reason `logout`)."""
        session = self._book.forget(credential)
        if session is None:
            return
        await self._events.publish(
            terminated_event(
                tenant_id=self._tenant,
                credential=credential,
                reason=TerminationReason.logout,  # no terminated_by: that names an admin
            )
        )
