"""Records a hostile producer of tenant B writes against tenant A, on every topic (issue 12).

Two sources, both fixed and bounded: the nine attacks of issue 12 written by hand
(`issue_twelve`), and Hypothesis strategies (`events`, `commands`, `revocations`, `settings`)
drawn a fixed number of times with a derandomized seed (`generated`), so every run sends the
same records. A record of B may name A in its key, reuse A's handles, raw credentials, event
and command ids, or carry any hostile value; its value never says tenant A unless it must be
refused (a producer that writes A's own valid records is a broker-authorization matter,
issue 14, not the data plane's).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hostile_support import Hostile
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from session_contracts.codec import encode
from session_contracts.handles import record_key, session_handle
from session_contracts.models import (
    SessionPolicy,
    SessionRevoked,
    SessionSettingsChanged,
    SessionType,
    TerminateSessions,
    TerminationReason,
)
from session_contracts.publisher import activity_event, created_event, terminated_event
from session_registry.domain.lifecycle import EXPIRY_NAMESPACE

A = "victim-co"
B = "attacker-co"
LOOKALIKES = ["Victim-co", "victim-co ", "victim-co\u0000", "victim-co/x", "victim\u2010co", ""]
"""Tenant ids that look like A: a different tenant, or refused."""
EVENT_TOPIC, COMMAND_TOPIC, REVOCATION_TOPIC, SETTINGS_TOPIC = (
    "events",
    "commands",
    "revocations",
    "settings",
)
EXAMPLES = {EVENT_TOPIC: 140, COMMAND_TOPIC: 60, REVOCATION_TOPIC: 80, SETTINGS_TOPIC: 40}
"""Hypothesis-generated records per topic (each an example of its own strategy)."""
HOSTILE_UA = "Mozilla/5.0 (" + "; " * 505 + "x"
"""1 KiB, the worst shape of `bench.devices` (issue 12 item 8)."""
HUGE = b"9" * 5000
"""Issue 12 item 1: an integer of 5,000 digits (Python refuses to convert past 4,300)."""
BAD_NAME = b"\xff\xferaw"
"""A header name that is not UTF-8: the broker takes any bytes; Java reads U+FFFD U+FFFD."""


@dataclass(frozen=True)
class Victim:
    """What tenant A has, and what B can learn of it (handles from the list, the event log's
    event ids, ids derived by rules the contract publishes; raw ids from v1 logs)."""

    live: str
    revoked: str
    later: str
    stolen: str
    """Revoked with `revoked`; only item 4's records name it (no generated record does, so
    nothing else decides when B's session of the same handle ends)."""
    created_ids: tuple[uuid.UUID, ...]
    command_id: uuid.UUID
    next_command_id: uuid.UUID

    @property
    def credentials(self) -> list[str]:
        return [self.live, self.revoked, self.later]

    @property
    def handles(self) -> list[str]:
        return [session_handle(A, c) for c in self.credentials]

    def predictable_ids(self) -> list[uuid.UUID]:
        """Ids A's own records have or will have: creations, the termination the command
        made (uuid5(command, handle)), each session's expiry (uuid5 of tenant and handle)."""
        made = uuid.uuid5(self.command_id, session_handle(A, self.revoked))
        expiries = [uuid.uuid5(EXPIRY_NAMESPACE, f"{A}\x1f{h}") for h in self.handles]
        return [*self.created_ids, made, *expiries, self.command_id, self.next_command_id]


VICTIM = Victim(
    live="victim-live-7f3c1e0a9b2d4c6e8f10a2b4c6d8e0f1",
    revoked="victim-revoked-0d9c8b7a6f5e4d3c2b1a09f8e7d6c5b4",
    later="victim-later-1a2b3c4d5e6f708192a3b4c5d6e7f809",
    stolen="victim-stolen-5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b",
    created_ids=tuple(uuid.UUID(int=0xA000 + n) for n in range(4)),
    command_id=uuid.UUID(int=0xC0FFEE),
    next_command_id=uuid.UUID(int=0xC0FFEF),
)
POLICY = SessionPolicy(max_session_seconds=86_400, idle_timeout_seconds=3_600)


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


VICTIM_AT = now() - timedelta(minutes=5)
"""When A's sessions were created (fixed, so that B's replay of them is byte for byte)."""


def victim_fields(credential: str, event_id: uuid.UUID) -> dict[str, Any]:
    """What A's platform service passes to `SessionEventPublisher.created` for a session."""
    return {
        "tenant_id": A,
        "credential": credential,
        "user_id": "alice",
        "user_name": "Alice",
        "session_type": SessionType.browser,
        "ip_address": "192.0.2.10",
        "policy": POLICY,
        "occurred_at": VICTIM_AT,
        "event_id": event_id,
    }


def victim_created(credential: str, event_id: uuid.UUID) -> bytes:
    """A's own `session.created`, as its publisher sent it."""
    return encode(created_event(**victim_fields(credential, event_id)))


# --- raw JSON the standard library will not write: spliced in for a marker -----------------

_RAW = "@@raw@@"


def _splice(payload: dict[str, Any], raw: bytes | None, ascii_only: bool) -> bytes:
    text = json.dumps(payload, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    return text if raw is None else text.replace(json.dumps(_RAW).encode(), raw, 1)


RAW_VALUES = [
    HUGE,
    b"-" + HUGE,
    b"1e999999",
    b"NaN",
    b"-Infinity",
    b"[" * 3000 + b"]" * 3000,
    b'{"a":' * 2000 + b"1" + b"}" * 2000,
    b'"\\ud800"',
    b'"\\u0000"',
    b"2.0",
    b"true",
]

_NASTY_CHARS = list("aZ09 %_'\"<>\\/.-\n\r\t\x00\x1b\x7f\x85\u2028\u2029\u202e\u2066\u061c\ud800🙂")
nasty_text = st.text(alphabet=st.sampled_from(_NASTY_CHARS), max_size=40)
long_text = st.sampled_from([129, 257, 1025, 4000, 70_000]).map(lambda n: "x" * n)
zone_ips = nasty_text.map(lambda zone: f"fe80::1%{zone}")
json_trees = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
hostile_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    nasty_text,
    long_text,
    zone_ips,
    json_trees,
    st.sampled_from(
        ["2026-11-30T09:00:00", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+01:00", "2"]
    ),
)
FIELD_NAMES = ["is_admin", "tenant", "__proto__", "a\nb", "x\u2028y", "\u202eevil", "é"]


@st.composite
def _mutated(draw: st.DrawFn, payload: dict[str, Any], valid_ids: list[Any]) -> tuple[bytes, str]:
    """`payload` with 0-2 fields replaced or added, hostile values, perhaps raw JSON spliced in
    or the whole value replaced by bytes; and a name saying what was done."""
    payload = dict(payload)
    names: list[str] = []
    for _ in range(draw(st.integers(0, 2))):
        field = draw(st.sampled_from([*payload, *FIELD_NAMES]))
        if field == "tenant_id":
            value: Any = draw(st.sampled_from([*LOOKALIKES, 42, None]))
        elif field in ("session_id", "session_ids") and draw(st.booleans()):
            value = draw(st.sampled_from(valid_ids))
        else:
            value = draw(hostile_values)
        payload[field] = value
        names.append(f"{field}={str(value)[:16]!r}")
    raw = None
    shape = draw(st.sampled_from(["json"] * 6 + ["raw", "bytes", "truncated"]))
    if shape == "raw":
        field = draw(st.sampled_from(list(payload)))
        raw = draw(st.sampled_from(RAW_VALUES))
        payload[field] = _RAW
        names.append(f"{field}=raw {raw[:12]!r}")
    body = _splice(payload, raw, draw(st.booleans()))
    if shape == "bytes":
        body = draw(st.binary(max_size=300))
        names.append("random bytes")
    elif shape == "truncated":
        body = body[: draw(st.integers(0, max(0, len(body) - 1)))]
        names.append("truncated")
    return body, ", ".join(names) or "as built"


def _session_ids(victim: Victim) -> list[str]:
    """Ids B's records name: A's handles (v2: B's own sessions of the same handle), A's raw
    credentials (v1: upcast under B; v2: refused), B's own handles."""
    return [
        *victim.handles,
        *victim.credentials,
        session_handle(B, "b-1"),
        session_handle(B, "b-2"),
    ]


def _keys(victim: Victim, name: str) -> st.SearchStrategy[bytes | None]:
    """Keys naming A with B's values, B's, v1-style raw ids, none, junk."""
    return st.sampled_from(
        [
            record_key(B, name),
            record_key(A, victim.handles[0]),
            record_key(A, victim.handles[1]),
            record_key(B, victim.handles[1]),
            victim.revoked.encode(),
            None,
            b"",
            b"\xff\xfe/\x00",
            b"k" * 300,
        ]
    )


HEADERS = st.sampled_from(
    [
        (),
        (),
        (("traceparent", None),),
        (("traceparent", None), ("tracestate", None)),
        (("x-origin", None), ("x-origin", b"")),
        (("traceparent", b"\xff\xfe not a trace"), ("traceparent", b"00-" + b"0" * 52)),
        (("dlq.reason", None), ("dlq.source.topic", b"sessions.commands")),
    ]
)
"""Headers a hostile producer may send: without a value, repeated, unreadable, forged."""


@st.composite
def events(draw: st.DrawFn, victim: Victim = VICTIM) -> Hostile:
    """A `session.*` record of B (v1 or v2), perhaps reusing A's ids, perhaps mutated."""
    kind = draw(st.sampled_from(["created", "created", "activity", "terminated", "expired"]))
    session_id = draw(st.sampled_from(_session_ids(victim)))
    event_id = draw(st.sampled_from(victim.predictable_ids()) | st.uuids())
    payload: dict[str, Any] = {
        "type": f"session.{kind}",
        "schema_version": draw(st.sampled_from([2, 2, 1])),
        "event_id": str(event_id),
        "occurred_at": (now() - timedelta(seconds=draw(st.integers(0, 600)))).isoformat(),
        "tenant_id": B,
        "session_id": session_id,
    }
    if kind == "created":
        payload |= {
            "user_id": draw(st.sampled_from(["mallory", "alice"])),
            "user_name": draw(st.sampled_from(["Mallory", "Alice", "' OR 1=1 --"])),
            "session_type": draw(st.sampled_from(["browser", "mobile", "api_client"])),
            "ip_address": draw(st.sampled_from(["203.0.113.9", "2001:db8::1", "fe80::1%eth0"])),
            "user_agent": draw(st.sampled_from(["curl/8", HOSTILE_UA])),
            "policy": {
                "max_session_seconds": draw(st.sampled_from([1, 4, 86_400])),
                "idle_timeout_seconds": draw(st.sampled_from([1, 4, 3_600])),
            },
        }
    elif kind == "activity":
        payload["ip_address"] = draw(st.sampled_from(["203.0.113.9", "::ffff:192.0.2.1"]))
    elif kind == "terminated":
        payload["reason"] = draw(st.sampled_from(["logout", "admin", "security"]))
    else:
        payload["reason"] = draw(st.sampled_from(["idle", "max_length"]))
    body, how = draw(_mutated(payload, _session_ids(victim)))
    key = draw(_keys(victim, session_id))
    return Hostile(
        f"generated {kind} v{payload['schema_version']}: {how}", key, body, None, draw(HEADERS)
    )


@st.composite
def commands(draw: st.DrawFn, victim: Victim = VICTIM) -> Hostile:
    """A `sessions.terminate` of B naming A's handles (or credentials), by ids or filter."""
    command_id = draw(st.sampled_from([victim.command_id, victim.next_command_id]) | st.uuids())
    payload: dict[str, Any] = {
        "type": "sessions.terminate",
        "schema_version": draw(st.sampled_from([2, 2, 1])),
        "command_id": str(command_id),
        "requested_at": now().isoformat(),
        "tenant_id": B,
        "requested_by": draw(st.sampled_from(["mallory", "admin-1"])),
        "reason": "admin",
    }
    if draw(st.booleans()):
        ids = _session_ids(victim)
        payload["session_ids"] = draw(st.lists(st.sampled_from(ids), min_size=1, max_size=4))
    else:
        fragment = st.sampled_from([victim.handles[0][:10], victim.live[:10], "%", "_"])
        payload["filter"] = draw(
            st.sampled_from([{}, {"q": ""}]) | st.builds(lambda f: {"session_id": f}, fragment)
        )
    body, how = draw(_mutated(payload, [_session_ids(victim)[:2]]))
    key = draw(_keys(victim, str(command_id)))
    return Hostile(
        f"generated command v{payload['schema_version']}: {how}", key, body, None, draw(HEADERS)
    )


@st.composite
def revocations(draw: st.DrawFn, victim: Victim = VICTIM) -> Hostile:
    """A `session.revoked` (or tombstone) of B under A's keys, B's, v1 ones, with any
    `valid_until`."""
    session_id = draw(st.sampled_from(_session_ids(victim)))
    key = draw(_keys(victim, session_id)) or b""  # a compacted topic refuses keyless records
    if draw(st.integers(0, 4)) == 0:
        return Hostile("generated tombstone", key, None, None)
    seconds = draw(st.sampled_from([-3600, 0, 2, 4, 86_400 * 400]))
    payload: dict[str, Any] = {
        "type": "session.revoked",
        "schema_version": draw(st.sampled_from([2, 2, 1])),
        "tenant_id": B,
        "session_id": session_id,
        "session_type": "browser",
        "revoked_at": now().isoformat(),
        "reason": draw(st.sampled_from(["admin", "logout", "idle"])),
        "valid_until": (now() + timedelta(seconds=seconds)).isoformat(),
    }
    body, how = draw(_mutated(payload, _session_ids(victim)))
    return Hostile(f"generated revocation: {how}", key, body, None, draw(HEADERS))


@st.composite
def settings_records(draw: st.DrawFn) -> Hostile:
    """A `session_settings.changed` of B, under A's key or B's, with any policy."""
    policy = st.fixed_dictionaries(
        {
            "max_session_seconds": st.sampled_from([1, 4, 86_400, 2**70]),
            "idle_timeout_seconds": st.sampled_from([1, 4, 3_600, -1]),
        }
    )
    payload: dict[str, Any] = {
        "type": "session_settings.changed",
        "schema_version": draw(st.sampled_from([2, 1])),
        "event_id": str(draw(st.uuids())),
        "occurred_at": now().isoformat(),
        "tenant_id": B,
        "changed_by": "mallory",
        "settings": {"browser": draw(policy), "mobile": draw(policy)},
    }
    body, how = draw(_mutated(payload, [B]))
    key = draw(st.sampled_from([A.encode(), B.encode(), b"victim-co\x00", b"victim-co/", b""]))
    return Hostile(f"generated settings: {how}", key, body, None, draw(HEADERS))


STRATEGIES: dict[str, Callable[[], st.SearchStrategy[Hostile]]] = {
    EVENT_TOPIC: events,
    COMMAND_TOPIC: commands,
    REVOCATION_TOPIC: revocations,
    SETTINGS_TOPIC: settings_records,
}


def generated(topic: str) -> tuple[Hostile, ...]:
    """`EXAMPLES[topic]` records drawn from the topic's strategy: the same ones every run, their
    times relative to now (so both backends' runs send the same records)."""
    drawn: list[Hostile] = []

    @settings(
        max_examples=EXAMPLES[topic],
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(STRATEGIES[topic]())
    def draw(record: Hostile) -> None:
        drawn.append(record)

    draw()
    return tuple(drawn)


# --- issue 12's nine, by hand -------------------------------------------------------------


def _as_b(event: Any, session_id: str, version: int, fields: dict[str, Any]) -> dict[str, Any]:
    """A builder's event as a payload naming `session_id` (a handle or a raw id) as it is."""
    payload: dict[str, Any] = json.loads(encode(event))
    payload.update(schema_version=version, session_id=session_id, **fields)
    return payload


def _b_created(session_id: str, *, version: int = 2, **fields: Any) -> dict[str, Any]:
    """B's `session.created` with a one-minute policy, now."""
    policy = SessionPolicy(max_session_seconds=60, idle_timeout_seconds=60)
    event = created_event(
        tenant_id=B,
        credential="placeholder",
        user_id="mallory",
        user_name="Mallory",
        session_type=SessionType.browser,
        ip_address="203.0.113.9",
        policy=policy,
        occurred_at=now(),
    )
    return _as_b(event, session_id, version, fields)


def _b_terminated(session_id: str, *, version: int = 2, **fields: Any) -> dict[str, Any]:
    """B's logout, now."""
    logout = TerminationReason.logout
    event = terminated_event(
        tenant_id=B, credential="placeholder", reason=logout, occurred_at=now()
    )
    return _as_b(event, session_id, version, fields)


def _b_command(command_id: uuid.UUID, session_ids: list[str]) -> TerminateSessions:
    """B's admin terminating these handles, now."""
    return TerminateSessions(
        command_id=command_id,
        requested_at=now(),
        tenant_id=B,
        requested_by="mallory",
        session_ids=session_ids,
    )


def _b_revoked(session_id: str) -> SessionRevoked:
    """B's revocation of this handle by an admin, for an hour."""
    return SessionRevoked(
        tenant_id=B,
        session_id=session_id,
        session_type=SessionType.browser,
        revoked_at=now(),
        reason=TerminationReason.admin,
        valid_until=now() + timedelta(hours=1),
    )


def _bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8", "surrogatepass")


def issue_twelve(victim: Victim = VICTIM) -> dict[str, list[Hostile]]:
    """The nine attacks of issue 12 as records of B, per topic; `valid` as the contract says."""
    revoked, live = session_handle(A, victim.revoked), session_handle(A, victim.live)
    stolen = session_handle(A, victim.stolen)
    huge = b'{"type": "session.created", "schema_version": 3, "n": ' + HUGE + b"}"
    ev: list[Hostile] = [
        # 1: one record stopped the registry for every tenant
        Hostile("1: 5,000-digit integer", record_key(B, "x"), huge, False),
        Hostile("1: 5,000-digit integer under A's key", record_key(A, revoked), huge, False),
        # 3: zone ids: NUL stalled PostgreSQL, long ones were cut
        *(
            Hostile(
                f"3: zone id {zone[:6]!r}",
                record_key(B, revoked),
                _bytes(_b_created(revoked, ip_address=f"fe80::1%{zone}")),
                False,
            )
            for zone in ["\u0000", "eth0\u0000" + "z" * 60, "\u202e\n" + "q" * 80]
        ),
        # 4: B re-uses A's revoked handle with a one-minute policy, then ends it: its revocation
        # and tombstone are B's, never A's (v2, and v1 with A's raw credential)
        Hostile("4: B creates A's handle", record_key(B, stolen), _bytes(_b_created(stolen)), True),
        Hostile("4: B ends A's handle", record_key(B, stolen), _bytes(_b_terminated(stolen)), True),
        Hostile(
            "4/5: v1 create of A's raw credential",
            victim.stolen.encode(),
            _bytes(_b_created(victim.stolen, version=1)),
            True,
        ),
        Hostile(
            "4/5: v1 end of A's raw credential",
            victim.stolen.encode(),
            _bytes(_b_terminated(victim.stolen, version=1)),
            True,
        ),
        # 5: a v2 record naming a credential is refused (a producer that forgot to hash)
        Hostile(
            "5: v2 record with A's credential",
            record_key(B, victim.live),
            _bytes(_b_terminated(victim.live)),
            False,
        ),
        # 7: B takes A's event ids first: created, the command's termination, predicted expiry
        *(
            Hostile(
                f"7: B uses A's event id {event_id}",
                record_key(B, revoked),
                _bytes(_b_created(session_handle(B, f"b-{n}"), event_id=str(event_id))),
                True,
            )
            for n, event_id in enumerate(victim.predictable_ids()[:-2])
        ),
        # 8: hostile User-Agents (labelled from the first 320 characters)
        *(
            Hostile(
                "8: 1 KiB User-Agent",
                record_key(B, f"ua{n}"),
                _bytes(_b_created(session_handle(B, f"ua-{n}"), user_agent=HOSTILE_UA)),
                True,
            )
            for n in range(5)
        ),
        # 9: reasons quoting what the producer wrote
        *(
            Hostile(
                f"9: field name {name!r}",
                record_key(B, live),
                _bytes({**_b_terminated(live), name: 1}),
                False,
            )
            for name in ["x\nFORGED 2026-11-30 registry: ok", "\u2028", "\u202eevil", "\x1b[2J"]
        ),
        Hostile(
            "9: user_name with a newline",
            record_key(B, live),
            _bytes(_b_created(session_handle(B, "nl"), user_name="a\nb")),
            False,
        ),
        # A's values under B's key: a replay of A's own record changes nothing; a broken one
        # is refused
        Hostile(  # the same bytes as A's own: the idempotency key makes it a no-op
            "A's record replayed under B's key",
            record_key(B, live),
            victim_created(victim.live, victim.created_ids[0]),
            True,
        ),
        Hostile(
            "A's value with an unknown field under B's key",
            record_key(B, live),
            _bytes({**json.loads(victim_created(victim.live, uuid.uuid4())), "is_admin": True}),
            False,
        ),
    ]
    # 6: activity for sessions nobody created: rows that must expire within a bound
    ev += [
        Hostile(
            "6: activity of an unknown session",
            record_key(B, f"act{n}"),
            encode(activity_event(tenant_id=B, credential=f"random-{n}")),
            True,
        )
        for n in range(20)
    ]
    cmd = [
        Hostile("1: 5,000-digit integer", record_key(B, "c"), huge, False),
        # 7: B's command takes A's command ids (the applied one and the next one) and names
        # A's handles: B's own command, it ends none of A's sessions
        *(
            Hostile(
                f"7: B's command with A's id {command_id}",
                record_key(A, str(command_id)),
                encode(_b_command(command_id, victim.handles)),
                True,
            )
            for command_id in (victim.command_id, victim.next_command_id)
        ),
        Hostile(
            "5: v1 command filter on A's credential",
            record_key(B, "v1"),
            _bytes(
                {
                    "type": "sessions.terminate",
                    "schema_version": 1,
                    "command_id": str(uuid.uuid4()),
                    "requested_at": now().isoformat(),
                    "tenant_id": B,
                    "requested_by": "mallory",
                    "filter": {"session_id": victim.live[:12]},
                }
            ),
            False,
        ),
    ]
    b_revoked = _b_revoked(revoked)
    rev = [
        # 2: the record of item 1 on the revocations topic
        Hostile("2: 5,000-digit integer", record_key(A, revoked), huge, False),
        # 4: tombstones for A's revocation: v2 key (before valid_until), v1 key, B's key
        Hostile("4: tombstone under A's key", record_key(A, revoked), None, None),
        Hostile("4: v1 tombstone (A's credential)", victim.revoked.encode(), None, None),
        Hostile("4: tombstone under B's key", record_key(B, revoked), None, None),
        # B's value under A's key (they disagree), then B's own
        Hostile("B's revocation under A's key", record_key(A, revoked), encode(b_revoked), False),
        Hostile("B's revocation of A's handle", record_key(B, revoked), encode(b_revoked), True),
        Hostile("tombstone under A's key, again", record_key(A, revoked), None, None),
        Hostile("4: tombstone of A's other revoked session", record_key(A, stolen), None, None),
        Hostile("4: its v1 tombstone", victim.stolen.encode(), None, None),
    ]
    sets = [
        Hostile("1: 5,000-digit integer", A.encode(), huge, False),
        Hostile(
            "B's settings under A's key",
            A.encode(),
            encode(
                SessionSettingsChanged(
                    event_id=uuid.uuid4(),
                    occurred_at=now(),
                    tenant_id=B,
                    changed_by="mallory",
                    settings={
                        "browser": SessionPolicy(max_session_seconds=1, idle_timeout_seconds=1)
                    },
                )
            ),
            True,
        ),
    ]
    return {EVENT_TOPIC: ev, COMMAND_TOPIC: cmd, REVOCATION_TOPIC: rev, SETTINGS_TOPIC: sets}


# --- what only a client writing Kafka's bytes itself sends (found 2026-12-05) ---------------


def byte_level() -> dict[str, list[Hostile]]:
    """Per topic: one of B's own records under a header name that is not UTF-8 (applied as its
    value says), a compression bomb, and, on the topics that are not compacted (a compacted
    topic refuses a record without a key), a record with neither key nor value. Each of the
    three stopped or exhausted every consumer of its topic before 2026-12-05. And the same
    record of B's at an offset past its batch (stop 69)."""
    handle = session_handle(B, "raw-header-name")
    names = ((BAD_NAME, b"1"), (b"ok", None))
    command = _b_command(uuid.uuid4(), [handle])
    changed = SessionSettingsChanged(
        event_id=uuid.uuid4(),
        occurred_at=now(),
        tenant_id=B,
        changed_by="mallory",
        settings={"browser": POLICY},
    )
    named = {
        EVENT_TOPIC: (record_key(B, handle), _bytes(_b_created(handle))),
        COMMAND_TOPIC: (record_key(B, str(command.command_id)), encode(command)),
        REVOCATION_TOPIC: (record_key(B, handle), encode(_b_revoked(handle))),
        SETTINGS_TOPIC: (B.encode(), encode(changed)),
    }
    out: dict[str, list[Hostile]] = {}
    for topic, (key, value) in named.items():
        out[topic] = [
            Hostile("header name not UTF-8", key, value, True, raw_headers=names),
            Hostile("compression bomb", record_key(B, "bomb"), None, False, bomb=True),
            Hostile("placed past its batch", key, value, False, placed_past=True),
        ]
        if topic in (EVENT_TOPIC, COMMAND_TOPIC):
            out[topic].append(Hostile("neither key nor value", None, None, False))
    return out
