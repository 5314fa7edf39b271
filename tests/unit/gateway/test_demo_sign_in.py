"""The demo login service's sign-in and sign-out (`demo_service.sessions.SignIn`): every session
the registry would list is one a user holds. Each case from a review of the demo as an attacker
(stop 71), each failing on the code before; the event sink stands in for the broker."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError

from demo_service.policy import StaticPolicySource
from demo_service.sessions import (
    EVICTED_BY,
    UNRECORDED_BY,
    SessionBook,
    SignIn,
    SignInUnrecorded,
    user_agent_text,
)
from session_contracts.handles import session_handle
from session_contracts.models import (
    DEFAULT_POLICIES,
    Event,
    SessionCreated,
    SessionTerminated,
    SessionType,
)

TENANT = "acme"


class Sink:
    """Records what is published; `refuse` raises as a producer with the broker gone would,
    `hold` keeps each publish waiting until `release` is set (the broker away)."""

    def __init__(self) -> None:
        self.published: list[Event] = []
        self.tried: list[Event] = []
        self.refuse = False
        self.hold = False
        self.release = asyncio.Event()

    async def publish(self, event: Event) -> None:
        self.tried.append(event)
        if self.refuse:
            raise KafkaConnectionError("broker away")
        if self.hold:
            await self.release.wait()
        self.published.append(event)


def _sign_in(sink: Sink, capacity: int = 10, publish_within: float = 10.0) -> SignIn:
    policies = StaticPolicySource(DEFAULT_POLICIES["browser"], DEFAULT_POLICIES["mobile"])
    return SignIn(TENANT, SessionBook(capacity), policies, sink, publish_within=publish_within)


async def _open(sign_in: SignIn, name: str, user_agent: str | None = None) -> str:
    session = await sign_in.sign_in(name, SessionType.browser, "10.0.0.1", user_agent)
    return session.credential


async def test_a_sign_out_the_broker_did_not_take_keeps_the_session_and_the_retry_ends_it() -> None:
    # it forgot the session first: the retry found nothing, published nothing, and the
    # registry listed the session until its idle timeout
    sink = Sink()
    sign_in = _sign_in(sink)
    credential = await _open(sign_in, "Ada")
    sink.refuse = True
    with pytest.raises(KafkaConnectionError):
        await sign_in.sign_out(credential)
    sink.refuse = False
    await sign_in.sign_out(credential)
    ended = [e for e in sink.published if isinstance(e, SessionTerminated)]
    assert [e.session_id for e in ended] == [session_handle(TENANT, credential)]
    assert ended[0].terminated_by is None  # a user's own sign-out names no one


async def test_a_session_let_go_to_make_room_is_ended_on_the_platform() -> None:
    # it was dropped without an event: listed until its idle timeout, and its user's sign-out
    # then published nothing
    sink = Sink()
    sign_in = _sign_in(sink, capacity=2)
    first = await _open(sign_in, "Ada")
    await _open(sign_in, "Grace")
    await _open(sign_in, "Linus")  # the third: Ada's, the least recently used, goes
    await sign_in.drain()
    ended = [e for e in sink.published if isinstance(e, SessionTerminated)]
    assert [(e.session_id, e.terminated_by) for e in ended] == [
        (session_handle(TENANT, first), EVICTED_BY)
    ]


async def test_a_sign_in_the_broker_does_not_take_in_time_is_refused_and_withdrawn() -> None:
    # it waited for the whole outage (the producer gives no record up), and a session whose
    # client had given up was delivered afterwards and listed, held by no one
    sink = Sink()
    sign_in = _sign_in(sink, publish_within=0.2)
    sink.hold = True
    with pytest.raises(SignInUnrecorded, match=r"within 0\.2 s"):
        await _open(sign_in, "Ada")
    await asyncio.sleep(0)  # the withdrawal is under way
    created, ended = sink.tried
    assert isinstance(created, SessionCreated) and isinstance(ended, SessionTerminated)
    assert ended.session_id == created.session_id and ended.terminated_by == UNRECORDED_BY
    sink.release.set()  # the broker back: the termination is sent
    await sign_in.drain()
    assert sink.published == [ended]


async def test_a_user_agent_any_client_can_send_is_recorded_never_a_failed_sign_in() -> None:
    # HTTP allows a TAB and bytes 0x80-0xFF in a header; the contract refuses controls, and
    # created_event raised: a 500 for the sign-in
    sink = Sink()
    sign_in = _sign_in(sink)
    await _open(sign_in, "Ada", "Mozilla/5.0\t(X11)\x01 \x85\x9b")
    (created,) = sink.published
    assert isinstance(created, SessionCreated)
    # TAB and 0x01 a space each; 0x85 and 0x9B are no UTF-8 of their own: U+FFFD each
    assert created.user_agent == "Mozilla/5.0 (X11)  \ufffd\ufffd"


@pytest.mark.parametrize(
    ("header", "text"),
    [
        (None, None),
        ("", None),
        ("Mozilla/5.0\t(X11)", "Mozilla/5.0 (X11)"),
        ("a\x85b\x9bc\x7fd", "a\ufffdb\ufffdc d"),  # bytes 0x85, 0x9B: no UTF-8
        ("a\u0085b\u2014", "a b\u2014"),  # text already (not Latin-1): the C1 control a space
        ("Ada \u2014 Phone".encode().decode("latin-1"), "Ada \u2014 Phone"),  # as ASGI gives it
        (b"bad \xff utf-8".decode("latin-1"), "bad \ufffd utf-8"),
        ("x" * 2000, "x" * 1024),
        ("already \u2014 text", "already \u2014 text"),  # not handed over as Latin-1
    ],
)
def test_user_agent_text(header: str | None, text: str | None) -> None:
    assert user_agent_text(header) == text
