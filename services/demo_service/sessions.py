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

import asyncio
import contextlib
import itertools
import logging
import secrets
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from aiokafka.errors import KafkaTimeoutError

from demo_service.policy import PolicySource
from session_contracts.escaping import escape_reason
from session_contracts.models import (
    Event,
    SessionPolicy,
    SessionType,
    TerminationReason,
)
from session_contracts.publisher import created_event, terminated_event

log = logging.getLogger(__name__)


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

    @property
    def capacity(self) -> int:
        return self._capacity

    def add(self, session: DemoSession) -> list[DemoSession]:
        """Remember a new session; the sessions let go to make room (the least recently used),
        which the caller must end on the platform too."""
        self._sessions[session.credential] = session
        evicted = []
        while len(self._sessions) > self._capacity:
            evicted.append(self._sessions.popitem(last=False)[1])
        return evicted

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

    def __contains__(self, credential: object) -> bool:
        return credential in self._sessions

    def forget(self, credential: str) -> DemoSession | None:
        """Drop a session (signed out); return it if it was known."""
        return self._sessions.pop(credential, None)


class SignInUnrecorded(Exception):
    """The broker did not take a new session's `session.created` within the bound, or too many
    withdrawals wait for it: the sign-in is refused (`SignIn.sign_in`)."""


MAX_PENDING_ENDS = 10_000
"""The most terminations (of any kind) the demo waits to send at once; past it a sign-in is
refused, so an outage's sign-ins cannot queue without bound."""


class SignIn:
    """Creates sessions and announces them; ends them on sign-out.

    Every session the registry learns of is one a user holds: a sign-in whose creation the
    broker does not take within `publish_within` seconds is refused, and a termination follows
    the creation (same key, same producer: after it, in order) should the broker take it
    later; a session let go to make room in the book, signed out, or replaced by a second
    sign-in is ended on the platform too. The demo publishes every termination as the user's
    own (`logout`, naming no one: `terminated_by` names an admin) and logs why."""

    retry_pause = 1.0
    """Seconds before a termination the producer had no room for is sent again (doubled each
    time, up to 30)."""

    def __init__(
        self,
        tenant_id: str,
        book: SessionBook,
        policies: PolicySource,
        events: EventSink,
        publish_within: float = 10.0,
    ) -> None:
        self._tenant = tenant_id
        self._book = book
        self._policies = policies
        self._events = events
        self._publish_within = publish_within
        self._ending: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._order = itertools.count()
        self._browsers: OrderedDict[str, tuple[int, str]] = OrderedDict()
        """Per browser (`sign_in`'s `browser`): the order and the credential of its latest
        sign-in, at most as many as the book holds."""

    async def sign_in(
        self,
        user_name: str,
        session_type: SessionType,
        ip_address: str,
        user_agent: str | None,
        replacing: str | None = None,
        browser: str | None = None,
    ) -> DemoSession:
        """Open a session, publish `session.created`, and remember it once the broker has it.
        `user_agent` as the request gave it: made to fit the contract (`user_agent_text`).
        `replacing`: the credential the client held until now, signed out once this one is
        open. `browser`: what tells the client's cookie jar from others (the sign-in page's
        cookie), which holds one session cookie: of its sign-ins, the one started last is kept
        and the others are ended (`_one_per_browser`). Raises SignInUnrecorded when the broker
        does not take it in time."""
        order = next(self._order)
        if len(self._ending) >= MAX_PENDING_ENDS:
            raise SignInUnrecorded(
                f"{len(self._ending)} terminations are waiting for the event log"
            )
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
            user_agent=user_agent_text(user_agent),
            policy=policy,
            occurred_at=now,
        )
        try:
            async with asyncio.timeout(self._publish_within):
                await self._events.publish(created)
        except TimeoutError:
            # the producer may still deliver it once the broker is back: ended after it
            log.warning("sign-in of %s not recorded in time: withdrawn", created.session_id)
            self._end_later(credential)
            raise SignInUnrecorded(
                f"the event log did not take the sign-in within {self._publish_within:g} s"
            ) from None
        except asyncio.CancelledError:
            # the request cancelled (a graceful shutdown's end): its creation may be queued
            log.warning("sign-in of %s cancelled: withdrawn", created.session_id)
            self._end_later(credential)
            raise
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
        for evicted in self._book.add(session):
            log.info("session %s let go to make room: ended", evicted.handle)
            self._end_later(evicted.credential)
        if replacing is not None and (replaced := self._book.forget(replacing)) is not None:
            log.info("session %s replaced by a new sign-in: ended", replaced.handle)
            self._end_later(replacing)
        if browser is not None:
            self._one_per_browser(browser, order, credential)
        return session

    def holds(self, credential: str) -> bool:
        """Whether the session of `credential` is open here (not ended, replaced or let go)."""
        return credential in self._book

    def _one_per_browser(self, browser: str, order: int, credential: str) -> None:
        """A browser keeps one session cookie, so of two sign-ins from it (a form sent twice,
        two tabs' forms) only the one started later is held; the other was held by no one and
        listed until its idle timeout (a review, stop 71). Ended here, whichever finished
        first. `replacing` cannot see it: both requests carried the cookie from before."""
        held = self._browsers.get(browser)
        unheld: str | None
        if held is not None and held[0] > order:  # a later sign-in of this browser is open
            unheld = credential
        else:
            self._browsers[browser] = (order, credential)
            self._browsers.move_to_end(browser)
            while len(self._browsers) > self._book.capacity:
                self._browsers.popitem(last=False)
            unheld = None if held is None else held[1]
        if unheld is not None and (ended := self._book.forget(unheld)) is not None:
            log.info("session %s replaced by a later sign-in of its browser: ended", ended.handle)
            self._end_later(unheld)

    async def sign_out(self, credential: str) -> None:
        """Forget the session and publish `session.terminated` (reason `logout`), waiting up to
        `publish_within` for the broker: through an outage the termination waits in the
        producer, which sends it once the broker is back (the session is signed out here at
        once either way)."""
        if self._book.forget(credential) is None:
            return
        await asyncio.wait({self._end_later(credential)}, timeout=self._publish_within)

    def _end_later(self, credential: str) -> asyncio.Task[None]:
        """Publish the session's termination without waiting for the broker, until it is sent
        (`_until_sent`)."""
        ended = terminated_event(
            tenant_id=self._tenant,
            credential=credential,
            reason=TerminationReason.logout,  # no terminated_by: that names an admin
        )
        task = asyncio.get_running_loop().create_task(self._until_sent(ended))
        self._ending.add(task)
        task.add_done_callback(self._ended)
        return task

    async def _until_sent(self, ended: Event) -> None:
        """Publish `ended`, again after a pause each time the producer has no room for it.

        Through an outage a record already in a batch waits in the producer (an idempotent
        producer gives none up), but only one batch per partition fills behind the one being
        retried: once it is full, `send` waits the request timeout and raises KafkaTimeoutError,
        the record never queued (a review, stop 71: 25 of 80 sign-outs were lost so). Sent
        again, it cannot be doubled (the record was never queued) nor overtake its session's
        creation (queued before it)."""
        pause = self.retry_pause
        while True:
            try:
                await self._events.publish(ended)
                return
            except KafkaTimeoutError:
                if pause == self.retry_pause:
                    log.warning(
                        "termination of %s waits for room in the producer (the broker away?): "
                        "sent again until it is sent",
                        ended.session_id,
                    )
                # a stop wakes it: the broker may be back, and the producer is about to close
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._stopping.wait()
                pause = min(pause * 2, 30.0)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._ending.discard(task)
        if task.cancelled():
            log.error("a session's termination was not sent: the service stopped first")
        elif task.exception() is not None:
            log.error(
                "a session's termination was not sent: %s",
                escape_reason(repr(task.exception())),
            )

    async def drain(self, within: float) -> None:
        """Wait up to `within` seconds for the terminations not yet sent, before the publisher
        stops; those still waiting then are logged. The publisher's stop then waits for the
        records its producer holds (through an outage, until the broker is back); those not
        yet in it are given up, each logged."""
        self._stopping.set()  # retries pausing try again now
        if not self._ending:
            return
        _, waiting = await asyncio.wait(set(self._ending), timeout=within)
        if waiting:
            log.error(
                "%d session terminations not sent within %g s of stopping: the producer's "
                "stop waits for those it holds",
                len(waiting),
                within,
            )


def user_agent_text(header: str | None) -> str | None:
    """A `User-Agent` header as the contract's `user_agent` takes it: its bytes read as UTF-8
    (ASGI servers hand them over as Latin-1, which turned `—` into `â\x80\x94`), each control
    character (a TAB, which HTTP allows; a C1 control) a space, at most 1,024 characters. A
    header refused nothing: an odd one is recorded as it reads, not a failed sign-in."""
    if not header:
        return None
    try:
        text = header.encode("latin-1").decode("utf-8", errors="replace")
    except UnicodeEncodeError:  # not handed over as Latin-1: taken as it is
        text = header
    text = "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)[:1024]
    return text or None
