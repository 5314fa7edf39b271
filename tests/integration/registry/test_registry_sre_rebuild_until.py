"""`rebuild --until`: the read model as of a past moment, checked against an independent fold of
the same records; `diff` compares it (or any rebuild) with the live read model."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from registry_helpers import (
    StartRegistry,
    activity,
    created,
    fold_records,
    logout,
    read_topic,
    sibling_database,
    sid,
)
from sqlalchemy import delete, insert, update
from sqlalchemy.engine import make_url
from sre_cli import cli, cli_env
from test_registry_rebuild import read_model

from read_model.database import make_engine
from read_model.tables import session_history, sessions
from session_contracts.codec import decode_event, encode
from session_contracts.handles import record_key
from session_contracts.topics import Topics
from session_registry.domain.history import RECORDED_TYPES
from session_registry.domain.state import SessionState
from session_registry.workload import Workload, records

pytestmark = pytest.mark.kafka
Send = Callable[..., Awaitable[None]]
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
"""Before every record of the log: when the late producer dates its activity."""


def _at(timestamp_ms: int) -> datetime:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC)


def _millis(at: datetime) -> int:
    return int(at.timestamp() * 1000)


async def _send_activity(producer: AIOKafkaProducer, topics: Topics, name: str) -> Any:
    event = activity(name, BASE + timedelta(seconds=30))
    return await producer.send(topics.events, encode(event), key=record_key("acme", sid(name)))


async def _log_in_two_parts(producer: AIOKafkaProducer, topics: Topics) -> datetime:
    """A session seen only through activity, and the first half of a workload (a little out of
    order, as several producers write it); then the rest, and an activity dated long before
    (a producer whose clock lags), all appended after the first part. Return the cut: the last
    append time of the first part (the broker dates each record of `sessions.events`)."""
    stream = list(records(Workload(sessions=60, activity=4, seed=11)))
    half = len(stream) // 2
    first = [await _send_activity(producer, topics, "ghost")]
    first += [await producer.send(topics.events, v, key=k) for k, v in stream[:half]]
    cut = max([(await sent).timestamp for sent in first])
    await asyncio.sleep(0.01)  # the broker's millisecond clock moves past the cut
    rest = [await producer.send(topics.events, v, key=k) for k, v in stream[half:]]
    rest.append(await _send_activity(producer, topics, "latecomer"))
    assert all(sent.timestamp > cut for sent in await asyncio.gather(*rest))
    return _at(cut)


def _as_of(log: list[Any], until: datetime) -> dict[tuple[str, str], SessionState]:
    """The independent fold: per partition, in offset order, every record before the first one
    stamped after `until`; each session's events folded in memory, dated `until`."""
    by_partition: dict[int, list[Any]] = defaultdict(list)
    for record in log:
        by_partition[record.partition].append(record)
    kept: list[Any] = []
    for part in by_partition.values():
        part.sort(key=lambda r: r.offset)
        for record in part:
            if record.timestamp > _millis(until):
                break
            kept.append(record)
    return fold_records(kept, until)


@pytest.mark.slow
async def test_rebuild_until_equals_an_independent_fold_of_the_records_up_to_then(
    producer: AIOKafkaProducer, topics: Topics, kafka_bootstrap: str, db_url: str, tmp_path: Path
) -> None:
    until = await _log_in_two_parts(producer, topics)
    log = await read_topic(kafka_bootstrap, topics.events)
    expected = _as_of(log, until)
    assert 0 < len(expected) < 61  # the cut falls inside the log
    assert ("acme", sid("ghost")) in expected
    assert ("acme", sid("latecomer")) not in expected  # after the cut in its partition

    into, drop = await sibling_database(db_url, tmp_path)
    try:
        env = cli_env(kafka_bootstrap, topics, db_url, "unused")
        done = await cli(
            env,
            "rebuild",
            "--into",
            into,
            "--until",
            until.isoformat(),
            "--json",
            "--consumer",
            "u",
        )
        report = json.loads(done.out)
        assert report["until"] == until.isoformat()
        assert report["sessions"] == len(expected) and report["dead_letters"] == 0
        assert report["events"] < len(log)
        states, history = await read_model(into)
        assert states == expected
        expected_history = {
            str(decode_event(r.value).event_id)
            for r in log
            if decode_event(r.value).type in RECORDED_TYPES
            and (decode_event(r.value).tenant_id, decode_event(r.value).session_id) in expected
            and r.timestamp <= _millis(until)
        }
        assert {h[0] for h in history} == expected_history
        # piped: no progress bar (only the warning of a rebuild without the signing keys)
        assert [
            line
            for line in done.err.splitlines()
            if not line.startswith("warning: SESSIONS_RECORD_SIGNING_KEYS is not set")
        ] == []
    finally:
        await drop()

    refused = await cli(
        env, "rebuild", "--into", into, "--until", until.isoformat(), "--swap", code=2
    )
    assert "cannot be swapped in" in refused.err


@pytest.mark.slow
async def test_diff_prints_the_sessions_that_differ_and_exits_non_zero(
    start_registry: StartRegistry,
    send: Send,
    topics: Topics,
    kafka_bootstrap: str,
    db_url: str,
    tmp_path: Path,
) -> None:
    group = f"registry-{uuid.uuid4().hex[:8]}"
    registry = await start_registry(consumer_group=group)
    await send(*records(Workload(sessions=40, activity=3, seed=5)), topic=topics.events)
    await send(created("s1"), created("s2"), created("s3"))
    await send(logout("s3", BASE + timedelta(hours=2)))
    await registry.wait_until_idle(60)
    env = cli_env(kafka_bootstrap, topics, db_url, group)
    rebuilt, drop = await sibling_database(db_url, tmp_path)
    try:
        await cli(env, "rebuild", "--into", rebuilt, "--json")
        same = await cli(env, "diff", "--other", rebuilt)
        assert same.out == "" and "0 sessions differ" in same.err

        extra_event = str(uuid.uuid4())
        engine = make_engine(rebuilt)
        try:
            async with engine.begin() as conn:
                s = sessions.c
                await conn.execute(
                    delete(sessions).where(s.tenant_id == "acme", s.session_id == sid("s1"))
                )
                await conn.execute(
                    update(sessions)
                    .where(s.tenant_id == "acme", s.session_id == sid("s2"))
                    .values(user_name="Someone Else")
                )
                await conn.execute(
                    insert(session_history).values(
                        event_id=extra_event,
                        tenant_id="acme",
                        session_id=sid("s3"),
                        type="session.expired",
                        occurred_at=BASE,
                        detail={"reason": "idle"},
                    )
                )
        finally:
            await engine.dispose()

        differs = await cli(env, "diff", "--other", rebuilt, "--json", code=1)
        found = {(d["session_id"], d["differs"]): d for d in differs.lines()}
        # s1's row is gone from the rebuild, its history not: only the row differs
        assert set(found) == {
            (sid("s1"), "only_in_left"),
            (sid("s2"), "row"),
            (sid("s3"), "history"),
        }
        extra = found[(sid("s3"), "history")]["values"]
        assert list(extra) == [extra_event] and extra[extra_event][0] is None
        assert extra[extra_event][1][0] == "session.expired"
        assert found[(sid("s2"), "row")]["values"] == {"user_name": ["User u1", "Someone Else"]}
        ignoring = await cli(env, "diff", "--other", rebuilt, "--ignore", "user_name", code=1)
        assert {json.loads(x)["session_id"] for x in ignoring.out.splitlines()} == {
            sid("s1"),
            sid("s3"),
        }
        bogus = await cli(env, "diff", "--other", rebuilt, "--ignore", "colour", code=2)
        assert "no column ['colour']" in bogus.err
    finally:
        await drop()


async def test_diff_leaves_out_the_ended_sessions_past_the_retention_on_both_sides(
    start_registry: StartRegistry,
    send: Send,
    topics: Topics,
    kafka_bootstrap: str,
    db_url: str,
    tmp_path: Path,
) -> None:
    """The live registry deletes ended sessions past the retention; a rebuild folds them back
    from the log. `diff` leaves them out of both (with their history), `diff --all` shows them."""
    group = f"registry-{uuid.uuid4().hex[:8]}"
    registry = await start_registry(consumer_group=group, ended_retention_days=1)
    long_ago = datetime.now(UTC) - timedelta(days=3)
    await send(
        created("gone", at=long_ago),
        logout("gone", long_ago + timedelta(minutes=10)),
        created("ended", at=BASE),
        logout("ended", BASE + timedelta(minutes=10)),
        created("open"),
    )
    await registry.wait_until_idle(60)
    assert (await registry.sweep_once()).purged == 1
    env = {**cli_env(kafka_bootstrap, topics, db_url, group), "SESSIONS_ENDED_RETENTION_DAYS": "1"}
    rebuilt, drop = await sibling_database(db_url, tmp_path)
    try:
        await cli(env, "rebuild", "--into", rebuilt, "--json")
        same = await cli(env, "diff", "--other", rebuilt)
        assert same.out == "" and "0 sessions differ" in same.err
        every = await cli(env, "diff", "--other", rebuilt, "--all", "--json", code=1)
        assert {(d["session_id"], d["differs"]) for d in every.lines()} == {
            (sid("gone"), "only_in_right"),
            (sid("gone"), "history"),
        }
        # with no retention (0: every ended session kept) nothing is left out either
        kept_all = {**env, "SESSIONS_ENDED_RETENTION_DAYS": "0"}
        plain = await cli(kept_all, "diff", "--other", rebuilt, "--json", code=1)
        assert plain.lines() == every.lines()
    finally:
        await drop()


async def test_rebuild_refuses_to_fill_the_live_database(
    topics: Topics, kafka_bootstrap: str, db_url: str
) -> None:
    # the replay takes PostgreSQL's listing indexes off the database it fills: never the live one
    env = cli_env(kafka_bootstrap, topics, db_url, "unused")
    done = await cli(env, "rebuild", "--into", db_url, code=2)
    assert "is the live database" in done.err and "Traceback" not in done.err
    assert "sessions:sessions@" not in done.err  # the password stays out of the message
    # spelled otherwise, the same database (until 2026-12-06 only the spelling was compared)
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        path = Path(str(url.database))
        aliases = [
            url.set(database=str(path.parent / ".." / path.parent.name / path.name)),
            url.set(database=f"file:{path}", query={"uri": "true"}),  # a URI: no path before
        ]
    else:
        aliases = [url.set(host="localhost")]
    for alias in aliases:
        aliased = alias.render_as_string(hide_password=False)
        assert aliased != db_url
        done = await cli(env, "rebuild", "--into", aliased, code=2)
        assert "is the live database" in done.err and "Traceback" not in done.err, aliased
