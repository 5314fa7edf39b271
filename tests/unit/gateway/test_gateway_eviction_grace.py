"""The clock-skew grace (`SESSIONS_GATEWAY_EVICTION_GRACE_SECONDS`), found by a review on
2026-12-06: an infinite one switched enforcement off, and a tombstone ignored it.

- `inf` was accepted; `valid_until + inf` became NaN in the table, `int()` raised on it, and
  every revocation was rejected while the gateway said current. The setting is now finite and
  at most an hour, and an expiry that cannot be computed holds the revocation (fail closed).
- A tombstone was compared with `now + grace` while the entry held `valid_until + grace`: the
  two cancelled, and the registry's tombstone at `valid_until` ended the revocation then.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from auth_gateway import GatewaySettings, SessionGateway
from auth_gateway.revocations import RevocationTable
from auth_gateway.watcher import RevocationWatcher
from fresh_topics import connection
from session_contracts.codec import encode
from session_contracts.handles import record_key, session_handle
from session_contracts.models import SessionRevoked, SessionType, TerminationReason

NOW = datetime(2030, 1, 1, tzinfo=UTC)
CREDENTIAL = "k7Qd1S9yq0Xw-credential-of-a-session"
KEY = record_key("acme", session_handle("acme", CREDENTIAL))
LONGEST = 2**32 - 1
"""The latest expiry a table slot holds (2106)."""


class WallClock:
    """Epoch seconds that move only when the test says."""

    def __init__(self, now: datetime) -> None:
        self.now = now.timestamp()

    def __call__(self) -> float:
        return self.now


def revocation(valid_until: datetime) -> bytes:
    return encode(
        SessionRevoked(
            tenant_id="acme",
            session_id=session_handle("acme", CREDENTIAL),
            session_type=SessionType.browser,
            revoked_at=NOW,
            reason=TerminationReason.admin,
            valid_until=valid_until,
        )
    )


def watcher(grace: float, table: RevocationTable, clock: WallClock) -> RevocationWatcher:
    return RevocationWatcher(
        connection("unused:1"), "revocations", ["acme"], table, grace_seconds=grace, clock=clock
    )


@pytest.mark.parametrize("grace", ["inf", "1e400", "-inf", "nan", "-1", "3600.5"])
def test_a_grace_that_is_not_a_finite_number_up_to_an_hour_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, grace: str
) -> None:
    monkeypatch.setenv("SESSIONS_GATEWAY_EVICTION_GRACE_SECONDS", grace)
    with pytest.raises(ValidationError, match="gateway_eviction_grace_seconds"):
        GatewaySettings(gateway_tenant_id="acme")


@pytest.mark.parametrize("grace", ["0", "60", "3600"])
def test_a_grace_from_none_to_an_hour_is_accepted(
    monkeypatch: pytest.MonkeyPatch, grace: str
) -> None:
    monkeypatch.setenv("SESSIONS_GATEWAY_EVICTION_GRACE_SECONDS", grace)
    assert GatewaySettings(gateway_tenant_id="acme").gateway_eviction_grace_seconds == float(grace)


@pytest.mark.parametrize("grace", [math.inf, math.nan])
def test_a_revocation_whose_expiry_cannot_be_computed_is_held_not_rejected(grace: float) -> None:
    """Defence in depth under the setting's bounds: a watcher given such a grace anyway."""
    clock = WallClock(NOW)
    w = watcher(grace, RevocationTable(), clock)
    w.apply(KEY, revocation(NOW + timedelta(hours=1)))
    assert w.records_rejected == 0 and w.records_applied == 1
    assert KEY in w.table and w.table.until(KEY) == LONGEST
    clock.now += 86_400 * 365 * 50  # neither eviction nor a tombstone ends it before 2106
    assert w.table.evict(clock.now, w.table.capacity) == 0
    w.apply(KEY, None)
    assert KEY in w.table


@pytest.mark.parametrize("until", [math.inf, math.nan, 1e300, 2.0**40])
def test_the_table_holds_an_expiry_past_its_range_or_not_a_number_as_long_as_it_can(
    until: float,
) -> None:
    table = RevocationTable()
    table.add(KEY, until)
    assert table.until(KEY) == LONGEST
    table.add(KEY, NOW.timestamp())  # and it never moves earlier
    assert table.until(KEY) == LONGEST


async def _whoami(request: Request) -> JSONResponse:
    return JSONResponse({"session": getattr(request.state, "session_credential", None)})


async def test_a_tombstone_at_valid_until_leaves_the_session_refused_for_the_grace() -> None:
    """The registry tombstones a revocation at its `valid_until` (on its clock); the grace
    covers that clock being ahead of this one, so the tombstone waits for it too."""
    gateway = SessionGateway.from_settings(
        GatewaySettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", gateway_tenant_id="acme")
    )
    gateway.watcher.mark_current()
    clock = WallClock(NOW)
    w = watcher(60, gateway.table, clock)  # the gateway's table, on a clock the test moves
    app = Starlette(routes=[Route("/api/me", _whoami)])
    gateway.install(app, manage_lifespan=False)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")

    async def answer() -> int:
        return (await client.get("/api/me", headers={"x-session-id": CREDENTIAL})).status_code

    valid_until = NOW + timedelta(seconds=10)
    async with client:
        w.apply(KEY, revocation(valid_until))
        assert await answer() == 401
        for past in (0, 1, 30, 59.5):  # a tombstone at, or within the grace after, valid_until
            clock.now = valid_until.timestamp() + past
            w.apply(KEY, None)
            assert await answer() == 401, past
            assert gateway.table.evict(clock.now, gateway.table.capacity) == 0
        assert w.tombstones_ignored == 4
        clock.now = valid_until.timestamp() + 60  # valid_until + grace: it may go now
        w.apply(KEY, None)
        assert KEY not in gateway.table and w.tombstones_ignored == 4
        assert await answer() == 200
