"""Hostile records on `sessions.events` and `sessions.commands`, through a real broker and registry.

Every record is either applied (the read model equals the fold of exactly the valid ones) or
parked on `sessions.events.dlq` with its reason and source position; valid + dead-lettered =
sent, and a valid record sent after all the junk is still applied (the consumer never stops).

Contract v2: sessions are named by handles (`session_handle(tenant, credential)`), records keyed
`<tenant>/<handle>` or `<tenant>/<command_id>`; v1-shaped records are upcast (their credential
becomes the handle) or refused, and v2 records naming a credential are refused.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from hostile_support import (
    FAR_TIMES,
    HOSTILE_STRINGS,
    RECORDS,
    SEED,
    Hostile,
    Sent,
    consumed_all,
    mutations,
    running,
    send_all,
)
from registry_helpers import NOW, created, fold_appended, read_topic
from sqlalchemy import func, select

from read_model.tables import applied_commands, sessions
from session_contracts.codec import DecodeError, decode_command, decode_event, encode
from session_contracts.handles import record_key, session_handle
from session_contracts.models import (
    SessionCreated,
    SessionEvent,
    SessionFilter,
    SessionPolicy,
    SessionType,
    TerminateSessions,
    TerminationReason,
)
from session_contracts.publisher import activity_event, created_event, terminated_event
from session_contracts.topics import Topics
from session_registry.adapters.dead_letters import REASON, SOURCE_OFFSET, SOURCE_PARTITION
from session_registry.adapters.session_store import select_states

pytestmark = pytest.mark.kafka


def session_key(credential: str, tenant: str = "acme") -> bytes:
    """The v2 key of the session `credential` names in `tenant`: `<tenant>/<handle>`."""
    return record_key(tenant, session_handle(tenant, credential))


def _event_bases(rng: random.Random, count: int) -> list[tuple[bytes, dict[str, Any], str]]:
    """Valid events of a few sessions, with hostile-but-legal text in their free-text fields:
    (key, payload, the session's credential)."""
    bases: list[tuple[bytes, dict[str, Any], str]] = []
    for n in range(count):
        credential = f"fz-{n}-" + rng.choice(["%", "_", "\\", "x"])
        event = created(credential, user=f"u{n}")
        payload = json.loads(encode(event))
        payload["user_name"] = rng.choice(HOSTILE_STRINGS).replace("\u0000", "")
        payload["user_agent"] = rng.choice(HOSTILE_STRINGS).replace("\u0000", "")
        ends: list[SessionEvent] = [
            activity_event(
                event_id=uuid.uuid4(),
                occurred_at=NOW - timedelta(seconds=n),
                tenant_id="acme",
                credential=credential,
                ip_address="2001:db8::1",
            ),
            terminated_event(
                event_id=uuid.uuid4(),
                occurred_at=NOW - timedelta(seconds=n),
                tenant_id="acme",
                credential=credential,
                reason=TerminationReason.logout,
            ),
        ]
        later = rng.choice(ends)
        bases += [
            (session_key(credential), payload, credential),
            (session_key(credential), json.loads(encode(later)), credential),
        ]
    return bases


def _far_times(rng: random.Random) -> list[Hostile]:
    records = []
    for name, (when, valid) in FAR_TIMES.items():
        sid = f"time-{name.replace(' ', '-').replace(',', '')}"
        payload = json.loads(encode(created(sid)))
        payload["occurred_at"] = when
        records.append(Hostile(name, session_key(sid), json.dumps(payload).encode(), valid))
        activity = json.loads(encode(created(sid)))
        activity.update(type="session.activity", occurred_at=when)
        for field in ("user_id", "user_name", "session_type", "user_agent", "policy"):
            activity.pop(field)
        activity["event_id"] = str(uuid.UUID(int=rng.getrandbits(128)))
        records.append(
            Hostile(f"activity {name}", session_key(sid), json.dumps(activity).encode(), valid)
        )
    nul = json.loads(encode(created("nul-in-name")))
    nul["user_name"] = "a\u0000b"
    records.append(
        Hostile("NUL in user_name", session_key("nul-in-name"), json.dumps(nul).encode(), False)
    )
    # v2: one credential names different sessions in different tenants, so "the same session id"
    # is now the same handle: acme's, written by another tenant (applied as evil's own session)
    other = json.loads(encode(created("fz-0-x", tenant="evil", user="intruder")))
    other["session_id"] = session_handle("acme", "fz-0-x")
    records.append(
        Hostile(
            "another tenant, same session id (acme's handle)",
            record_key("evil", other["session_id"]),
            encode_json(other),
            True,
        )
    )
    same_credential = json.loads(encode(created("fz-0-x", tenant="evil", user="intruder")))
    records.append(
        Hostile(
            "another tenant, same credential",
            session_key("fz-0-x", "evil"),
            encode_json(same_credential),
            True,
        )
    )
    return records


def encode_json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def _decoded(record: Hostile, decode: Any) -> tuple[Any, str | None]:
    try:
        return decode(record.value), None
    except DecodeError as error:
        return None, error.reason


async def _check_dead_letters(
    kafka_bootstrap: str,
    topics: Topics,
    sent: list[Sent],
    decode: Any,
    appended_times: list[datetime] | None = None,
) -> list[Any]:
    """Sort the sent records by the decoder's verdict and check the DLQ holds the refused ones;
    return the valid ones as the registry is to take them: a creation dated after the broker
    appended its record, as created then. `appended_times`: filled with each valid one's
    append time, in the same order."""
    valid: list[Any] = []
    refused: dict[tuple[int, int], tuple[Hostile, str]] = {}
    for record, partition, offset, appended in sent:
        message, reason = _decoded(record, decode)
        if isinstance(message, SessionCreated) and message.occurred_at > appended:
            message = message.model_copy(update={"occurred_at": appended})
        if record.valid is not None:
            assert (message is not None) == record.valid, (SEED, record.name, reason)
        if message is None:
            assert reason
            refused[(partition, offset)] = (record, reason)
        else:
            valid.append(message)
            if appended_times is not None:
                appended_times.append(appended)
    letters = await read_topic(kafka_bootstrap, topics.dead_letters)
    assert len(valid) + len(letters) == len(sent), SEED
    seen = set()
    for letter in letters:
        headers = dict(letter.headers)
        where = (int(headers[SOURCE_PARTITION]), int(headers[SOURCE_OFFSET]))
        assert where in refused, (SEED, where)
        record, reason = refused[where]
        assert headers[REASON].decode() == reason, (SEED, record.name)
        assert letter.value == record.value and letter.key == record.key, (SEED, record.name)
        seen.add(where)
    assert seen == set(refused), SEED
    print(f"{decode.__name__}: sent {len(sent)}, applied {len(valid)}, dead-lettered {len(seen)}")
    return valid


async def test_hostile_events_are_applied_or_dead_lettered_and_the_consumer_goes_on(
    topics: Topics, kafka_bootstrap: str, db_url: str
) -> None:
    rng = random.Random(SEED)
    records: list[Hostile] = []
    for base_key, base, credential in _event_bases(rng, max(2, RECORDS // 48)):
        records += mutations(rng, base, base_key, credential)
    records += _far_times(rng)
    rng.shuffle(records)
    records.append(
        Hostile("final valid event", session_key("canary"), encode(created("canary")), True)
    )
    async with running(kafka_bootstrap, topics, db_url) as (registry, producer):
        sent = await send_all(producer, topics.events, records)
        await consumed_all(registry)
        async with registry.engine.connect() as conn:
            rows = {s.key: s.as_row() for s in await select_states(conn, select(sessions))}

    appended_times: list[datetime] = []
    valid: list[SessionEvent] = await _check_dead_letters(
        kafka_bootstrap, topics, sent, decode_event, appended_times
    )
    # folded as the registry folds them: each creation with its append time (the first wins)
    states = fold_appended(zip(valid, appended_times, strict=True))
    expected = {key: state.as_row() for key, state in states.items()}
    assert rows.keys() == expected.keys(), SEED
    for key, row in expected.items():
        assert rows[key] == row, (SEED, key)
    assert ("acme", session_handle("acme", "canary")) in rows
    # acme's sessions are only those acme's records named (by handle): no other tenant's record
    # made or changed one of them
    acme = {e.session_id for e in valid if e.tenant_id == "acme"}
    assert {s for t, s in rows if t == "acme"} == acme, SEED
    assert ("evil", session_handle("acme", "fz-0-x")) in rows, SEED


def _command_key(command: dict[str, Any]) -> bytes:
    return record_key(command["tenant_id"], command["command_id"])


def _command(ids: list[str], *, tenant: str = "acme", by: str = "admin-1") -> dict[str, Any]:
    command = TerminateSessions(
        command_id=uuid.uuid4(),
        requested_at=NOW,
        tenant_id=tenant,
        requested_by=by,
        session_ids=ids,
    )
    payload: dict[str, Any] = json.loads(encode(command))
    return payload


async def test_hostile_commands_are_applied_or_dead_lettered_and_the_consumer_goes_on(
    topics: Topics, kafka_bootstrap: str, db_url: str
) -> None:
    rng = random.Random(SEED + 1)
    credentials = [f"cmd-{n}" for n in range(30)]
    handles = {c: session_handle("acme", c) for c in credentials}
    ids = list(handles.values())
    records: list[Hostile] = []
    for _ in range(max(2, RECORDS // 30)):
        chosen = rng.sample(credentials, 2)
        base = _command(
            [handles[c] for c in chosen], by=rng.choice(HOSTILE_STRINGS).replace("\u0000", "")
        )
        records += mutations(rng, base, _command_key(base), chosen)
    intruder = _command(ids, tenant="evil")  # acme's handles, in another tenant's command
    records.append(
        Hostile("another tenant's ids", _command_key(intruder), encode_json(intruder), True)
    )
    v1_filter = {k: v for k, v in _command(ids[:1]).items() if k != "session_ids"}
    v1_filter.update(schema_version=1, filter={"session_id": "cmd-1"})
    records.append(
        Hostile(
            "v1 command with filter.session_id",
            _command_key(v1_filter),
            encode_json(v1_filter),
            False,
        )
    )
    for when, accepted in FAR_TIMES.values():
        far = {**_command([handles[rng.choice(credentials)]]), "requested_at": when}
        records.append(
            Hostile(f"requested_at {when}", _command_key(far), encode_json(far), accepted)
        )
    rng.shuffle(records)
    final = _command([handles["cmd-29"]])
    records.append(Hostile("final valid command", _command_key(final), encode_json(final), True))

    async with running(kafka_bootstrap, topics, db_url) as (registry, producer):
        sessions_first = [
            Hostile("s", session_key(c), encode(created(c)), True) for c in credentials
        ]
        await send_all(producer, topics.events, sessions_first)
        await consumed_all(registry)
        sent = await send_all(producer, topics.commands, records)
        await consumed_all(registry)
        async with registry.engine.connect() as conn:
            states = await select_states(conn, select(sessions))
            applied = await conn.scalar(select(func.count()).select_from(applied_commands))

    valid: list[TerminateSessions] = await _check_dead_letters(
        kafka_bootstrap, topics, sent, decode_command
    )
    # every session created here is acme's and open: a command ends those it names, whatever
    # its requested_at and their expires_at (an open session past its deadline may be alive:
    # its activity unread)
    made_ids = {s.session_id for s in states if s.created}

    terminated: set[str] = set()
    first: dict[tuple[str, uuid.UUID], TerminateSessions] = {}
    # the command id is the idempotency key within its tenant (v2: applied_commands is keyed
    # (tenant_id, command_id), so another tenant's record with the same id is its own command)
    for command in valid:
        first.setdefault((command.tenant_id, command.command_id), command)
    for command in first.values():
        assert command.session_ids is not None, (SEED, "a mutation made a filter command")
        if command.tenant_id == "acme":
            terminated |= {s for s in command.session_ids if s in made_ids}
    made = [s for s in states if s.created]
    assert {s.session_id for s in made if s.state == "terminated"} == terminated, SEED
    assert applied == len(first), SEED
    assert handles["cmd-29"] in terminated
    assert {s.tenant_id for s in made} == {"acme"}, "a command created sessions"
    # a session a command names and no event created: its end kept for a creation to come (in
    # the command's tenant, never listed, deleted within the hour), and nothing else
    named = {(c.tenant_id, s) for c in first.values() for s in c.session_ids or ()}
    awaiting = {(s.tenant_id, s.session_id) for s in states if not s.created}
    assert awaiting == named - {(s.tenant_id, s.session_id) for s in made}, SEED
    assert {s.state for s in states if not s.created} <= {"terminated"}, SEED


TEXT_FILTERS = [
    *(text.replace("\u0000", "") for text in HOSTILE_STRINGS),
    "a\u0000b",  # refused: not one line
    "\ud800",  # a lone surrogate, as JSON's \ud800 escape
    "x\udfffy",
    "%" * 256,  # the longest text, every character a LIKE wildcard once escaped
    "%" * 257,  # refused: too long
    "ø~",  # in no name: a walk of the tenant's listed set
    "User",
]
"""Texts of terminations by filter, each through every substring condition: the registry keeps
the command and resolves it beside its loop (`deferred_terminations`)."""


async def test_hostile_text_filters_are_applied_or_dead_lettered_and_the_resolver_goes_on(
    topics: Topics, kafka_bootstrap: str, db_url: str
) -> None:
    # the user names hold the texts (those a name can hold: one line, no surrogate, not long)
    storable = [t for t in TEXT_FILTERS if t.isprintable() and len(t) < 200 and _utf8(t)]
    names = {f"t-{n}": f"{text} {n}" for n, text in enumerate(storable)}
    names["t-final"] = "final"
    bystanders = {f"b-{n}": f"Bystander {n}" for n in range(3)}  # hold none of the texts
    names.update(bystanders)
    base = json.loads(
        encode(
            TerminateSessions(
                command_id=uuid.uuid4(),
                requested_at=NOW,
                tenant_id="acme",
                requested_by="admin-1",
                filter=SessionFilter(),
                confirmed_at=NOW,
            )
        )
    )
    records: list[Hostile] = []
    for field in ("user_name", "q", "device", "session_id"):
        for text in TEXT_FILTERS:
            tenant = "acme" if field == "user_name" else "globex"  # exact outcome: user names
            payload = {
                **base,
                "command_id": str(uuid.uuid4()),
                "tenant_id": tenant,
                "filter": {field: text},
            }
            records.append(
                Hostile(f"{field} {text!r}", _command_key(payload), encode_json(payload), None)
            )
    final = {**base, "command_id": str(uuid.uuid4()), "filter": {"user_name": "final"}}
    records.append(Hostile("final text filter", _command_key(final), encode_json(final), True))

    async with running(kafka_bootstrap, topics, db_url) as (registry, producer):
        sessions_first = [
            Hostile("s", session_key(uid, tenant), encode(_named(uid, tenant, name)), True)
            for tenant in ("acme", "globex")
            for uid, name in names.items()
        ]
        await send_all(producer, topics.events, sessions_first)
        await consumed_all(registry)
        sent = await send_all(producer, topics.commands, records)
        await consumed_all(registry)  # the deferred table empty too
        async with registry.engine.connect() as conn:
            states = await select_states(conn, select(sessions))
            applied = await conn.scalar(select(func.count()).select_from(applied_commands))

    valid = await _check_dead_letters(kafka_bootstrap, topics, sent, decode_command)
    assert applied == len(valid), SEED  # none dead-lettered by the resolver: each applied
    # acme's: exactly the sessions whose user name holds a valid command's text
    texts = [c.filter.user_name for c in valid if c.tenant_id == "acme" and c.filter]
    expected = {
        session_handle("acme", uid)
        for uid, name in names.items()
        if any(text is not None and text.lower() in name.lower() for text in texts)
    }
    ended = {s.session_id for s in states if s.tenant_id == "acme" and s.state == "terminated"}
    assert ended == expected, SEED
    assert session_handle("acme", "t-final") in ended
    # each text was read as text: `%`, `_` and `\\` matched no bystander as wildcards would
    assert not ended & {session_handle("acme", uid) for uid in bystanders}, SEED


def _named(credential: str, tenant: str, user_name: str) -> SessionCreated:
    """A browser session of `tenant` whose user is named `user_name`."""
    return created_event(
        event_id=uuid.uuid4(),
        occurred_at=NOW - timedelta(minutes=5),
        tenant_id=tenant,
        credential=credential,
        user_id=credential,
        user_name=user_name,
        session_type=SessionType.browser,
        ip_address="10.0.0.1",
        user_agent="Mozilla/5.0 Chrome/124.0",
        policy=SessionPolicy(max_session_seconds=86400, idle_timeout_seconds=3600),
    )


def _utf8(text: str) -> bool:
    """Whether `text` is valid Unicode (no lone surrogate)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
