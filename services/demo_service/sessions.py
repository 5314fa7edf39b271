"""The demo service's own view of its sessions: who signed in, and signing in and out.

The gateway only knows revocations; like any platform service, the demo keeps its own
session state (user, type, policy) and honours the policy's limits itself, so a session the
gateway has forgotten after `valid_until` is still not valid here.
"""

from __future__ import annotations

import secrets
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from demo_service.policy import PolicySource
from session_contracts.models import (
    Event,
    SessionCreated,
    SessionPolicy,
    SessionTerminated,
    SessionType,
    TerminationReason,
)


class EventSink(Protocol):
    """Where session events go (a `SessionEventPublisher` in production)."""

    async def publish(self, event: Event) -> None:
        """Deliver one event, waiting for the broker's acknowledgement."""
        ...


@dataclass
class DemoSession:
    """One signed-in session as this service remembers it."""

    session_id: str
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
    """A session opened elsewhere on the platform: this instance knows only its id."""

    session_id: str


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
        self._sessions[session.session_id] = session
        while len(self._sessions) > self._capacity:
            self._sessions.popitem(last=False)

    def use(self, session_id: str, now: datetime) -> DemoSession | None:
        """The active session with this id, marked as used now; None if unknown or ended."""
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if not session.is_active(now):
            del self._sessions[session_id]
            return None
        session.last_seen_at = now
        self._sessions.move_to_end(session_id)
        return session

    def forget(self, session_id: str) -> DemoSession | None:
        """Drop a session (signed out); return it if it was known."""
        return self._sessions.pop(session_id, None)


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
        session = DemoSession(
            session_id=secrets.token_urlsafe(32),
            user_id=user_name.strip().casefold()[:128] or user_name[:128],
            user_name=user_name,
            session_type=session_type,
            created_at=now,
            last_seen_at=now,
            policy=await self._policies.current(self._tenant, session_type),
        )
        await self._events.publish(
            SessionCreated(
                event_id=uuid.uuid4(),
                occurred_at=now,
                tenant_id=self._tenant,
                session_id=session.session_id,
                user_id=session.user_id,
                user_name=user_name,
                session_type=session_type,
                ip_address=ip_address,
                user_agent=user_agent[:1024] if user_agent else None,
                policy=session.policy,
            )
        )
        self._book.add(session)
        return session

    async def sign_out(self, session_id: str) -> None:
        """Forget the session and publish `session.terminated` (reason `logout`)."""
        session = self._book.forget(session_id)
        if session is None:
            return
        await self._events.publish(
            SessionTerminated(
                event_id=uuid.uuid4(),
                occurred_at=datetime.now(UTC),
                tenant_id=self._tenant,
                session_id=session_id,
                reason=TerminationReason.logout,  # no terminated_by: that names an admin
            )
        )
