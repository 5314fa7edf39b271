"""Terminations by a text filter, resolved beside the consumer loop, on SQLite and PostgreSQL.

The first tests drive the resolver (`DeferredTerminations`) on the database alone, with chunks
of 4 so a handful of sessions spans several; the last one runs a registry on the real broker and
shows its loop applying another tenant's termination while a text filter's read is held open.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from registry_helpers import (
    NOW,
    StartRegistry,
    created,
    registry_cli,
    registry_settings,
    session_rows,
    sid,
)
from sqlalchemy import select, update
from test_registry_bulk_termination import TOPICS, by_filter, contents, seed, seed_events

from admin_api.adapters import settings_store
from admin_api.adapters.terminations import request_status
from polling import until
from read_model.database import open_store, upgrade_schema
from read_model.store import Store
from read_model.tables import applied_commands, deferred_terminations, session_settings
from read_model.unit_of_work import UnitOfWork
from session_contracts.codec import decode_command, decode_event
from session_contracts.models import (
    SessionFilter,
    SessionPolicy,
    SessionTerminated,
    TerminateSessions,
)
from session_registry import bootstrap
from session_registry.adapters.dead_letters import DeadLetter
from session_registry.bootstrap import Registry
from session_registry.metrics import reason_class
from session_registry.service_layer import deferred_terminations as resolver_module
from session_registry.service_layer.changes import Changes
from session_registry.service_layer.deferred_terminations import DeferredTerminations
from session_registry.service_layer.terminations import Applied, apply_commands, resolve_chunk

CHUNK = 4
EVERY_LISTED = {sid(f"s{n:02d}") for n in range(11)} | {sid("Zed"), sid("_under")}
"""The 13 sessions of `seed_events` a filter on the user name `User U` ends."""


def resolver(store: Store, **options: Any) -> DeferredTerminations:
    return DeferredTerminations(store, TOPICS, clock=lambda: NOW, chunk=CHUNK, **options)


OFFSETS = itertools.count(17)


async def defer(store: Store, command: TerminateSessions, partition: int | None = 0) -> Applied:
    """Take `command` from the topic as the registry does: deferred if its filter has text;
    each at the next offset."""
    key = (command.tenant_id, str(command.command_id))
    async with UnitOfWork(store) as uow:
        changes = Changes()
        applied = await apply_commands(
            uow,
            [command],
            NOW,
            TOPICS,
            changes,
            defer_searches=True,
            origins={} if partition is None else {key: (partition, next(OFFSETS))},
        )
        await changes.flush(uow, True)
    return applied


async def kept(store: Store) -> list[Any]:
    async with store.engine.connect() as conn:
        return list(await conn.execute(select(deferred_terminations)))


async def terminated_events(store: Store) -> list[SessionTerminated]:
    records = (await contents(store))["outbox"]
    events = [decode_event(v) for t, _, v in records if t == TOPICS.events and v]
    return [e for e in events if isinstance(e, SessionTerminated)]


async def test_a_text_filter_is_kept_then_ended_in_chunks_as_the_batch_would_have(
    store: Store, tmp_path: Path
) -> None:
    events = seed_events()
    await seed(store, events)
    before = await contents(store)
    command = by_filter(user_name="User U")

    assert await defer(store, command) == Applied(commands=0, terminated=0, deferred=1)
    assert await contents(store) == before  # nothing ended, nothing published yet
    (row,) = await kept(store)
    assert (row.tenant_id, row.command_id, row.partition) == ("acme", str(command.command_id), 0)

    outcome = await resolver(store).resolve_all()
    assert (outcome.commands, outcome.terminated) == (1, 13)
    got = await contents(store)

    # the same command resolved in the batch, in a second database
    other = open_store(f"sqlite+aiosqlite:///{tmp_path / 'in-batch.db'}")
    await upgrade_schema(other)
    try:
        await seed(other, events)
        async with UnitOfWork(other) as uow:
            changes = Changes()
            assert await apply_commands(uow, [command], NOW, TOPICS, changes) == (1, 13, 0, 0)
            await changes.flush(uow, True)
        expected = await contents(other)
    finally:
        await other.dispose()
    for key in ("sessions", "history", "revocations"):
        assert got[key] == expected[key], key
    assert sorted(got["outbox"]) == sorted(expected["outbox"])
    assert {e.session_id for e in await terminated_events(store)} == EVERY_LISTED

    assert await kept(store) == []
    async with store.engine.connect() as conn:
        (applied,) = (await conn.execute(select(applied_commands))).all()
    assert applied.terminated == 13
    again = await resolver(store).resolve_all()
    assert (again.commands, again.terminated) == (0, 0)


async def test_a_policy_outdated_filter_either_way_is_kept_and_resolved_beside_the_loop(
    store: Store,
) -> None:
    """`policy_outdated` compares every listed session of the tenant with its current settings
    (no index holds it): resolved in the batch, a command that ended nothing held every
    tenant's events and revocations for a walk of the tenant (a review, 2026-12-06)."""
    await seed(store)
    commands = [by_filter(policy_outdated=True), by_filter(policy_outdated=False)]
    for command in commands:
        assert await defer(store, command) == Applied(commands=0, terminated=0, deferred=1)
    assert len(await kept(store)) == 2
    outcome = await resolver(store).resolve_all()
    # every listed session is outdated or not: the two end them all, each once
    assert (outcome.commands, outcome.terminated) == (2, 13)
    assert {e.session_id for e in await terminated_events(store)} == EVERY_LISTED
    assert await kept(store) == []


async def test_a_filter_without_text_and_one_by_ids_are_applied_in_the_batch(
    store: Store,
) -> None:
    await seed(store)
    by_type = by_filter(session_type=["browser"])
    by_ids = TerminateSessions(
        command_id=uuid.uuid4(),
        requested_at=NOW,
        tenant_id="acme",
        requested_by="admin-7",
        session_ids=[sid("s01")],
    )
    assert await defer(store, by_ids) == (1, 1, 0, 0)
    assert await defer(store, by_type) == (1, 12, 0, 0)
    assert await kept(store) == []


async def test_a_resolution_cut_short_goes_on_where_it_stopped_and_ends_each_once(
    store: Store,
) -> None:
    await seed(store)
    command = by_filter(q="user u")
    await defer(store, command)
    chunks = 0

    async def relay_then_crash() -> None:
        nonlocal chunks
        chunks += 1
        if chunks == 2:
            raise ConnectionError("the registry died after its second chunk committed")

    with pytest.raises(ConnectionError):
        await resolver(store, after_chunk=relay_then_crash).resolve_all()
    (row,) = await kept(store)
    ended_so_far = sorted(e.session_id for e in await terminated_events(store))
    assert (row.terminated, len(ended_so_far)) == (8, 8)
    assert row.ended_after == max(ended_so_far)  # the order the chunks went in

    outcome = await resolver(store).resolve_all()
    assert (outcome.commands, outcome.terminated) == (1, 5)
    events = await terminated_events(store)
    assert len(events) == len({e.event_id for e in events}) == 13
    assert {e.session_id for e in events} == EVERY_LISTED
    async with store.engine.connect() as conn:
        assert (await conn.execute(select(applied_commands.c.terminated))).scalar_one() == 13
    assert await kept(store) == []


async def test_two_registries_resolving_one_command_at_once_end_each_session_once(
    store: Store, db_url: str
) -> None:
    """During a rebalance both the old and the new owner of a partition may resolve its
    command: they take turns on its row, and a session one ended the other finds ended."""
    await seed(store)
    command = by_filter(user_name="user u")
    await defer(store, command)
    second = open_store(db_url)
    try:
        outcomes = await asyncio.gather(
            resolver(store).resolve_all(), resolver(second).resolve_all()
        )
    finally:
        await second.dispose()
    assert sum(o.terminated for o in outcomes) == 13
    assert sum(o.commands for o in outcomes) == 1
    events = await terminated_events(store)
    assert len(events) == len({e.session_id for e in events}) == 13
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(applied_commands.c.terminated))).scalars().all()
    assert rows == [13]


async def test_each_registry_resolves_the_commands_of_its_own_partitions(store: Store) -> None:
    await seed(store)
    of_one = by_filter(user_id="u1")  # s01, s04, s07, s10, Zed, _under (users u1)
    of_none = by_filter(user_name="USER U2")  # s02, s05, s08: kept with no partition
    await defer(store, of_one, partition=1)
    await defer(store, of_none, partition=None)
    # user_id is no text condition: applied in the batch; the user name is one
    assert [row.command_id for row in await kept(store)] == [str(of_none.command_id)]

    of_two = by_filter(device="chrome")  # every listed session of the seed, in partition 2
    await defer(store, of_two, partition=2)
    elsewhere = await resolver(store, owned=lambda: {0, 1}).resolve_all()
    assert (elsewhere.commands, elsewhere.terminated) == (1, 3)  # only the one of no partition
    assert [row.command_id for row in await kept(store)] == [str(of_two.command_id)]
    mine = await resolver(store, owned=lambda: {2}).resolve_all()
    # what the two commands before had not ended
    assert (mine.commands, mine.terminated) == (1, 13 - 6 - 3)
    assert await kept(store) == []


async def test_a_redelivered_command_is_kept_once_and_not_again_once_applied(
    store: Store,
) -> None:
    await seed(store)
    command = by_filter(session_id=sid("s03")[:12])
    assert await defer(store, command) == (0, 0, 1, 0)
    assert await defer(store, command) == (0, 0, 1, 0)  # a second delivery: still one row
    assert len(await kept(store)) == 1
    outcome = await resolver(store).resolve_all()
    assert (outcome.commands, outcome.terminated) == (1, 1)
    assert await defer(store, command) == (0, 0, 0, 0)  # applied: neither applied nor kept again
    assert await kept(store) == []


@pytest.mark.kafka
async def test_the_loop_applies_other_terminations_while_a_text_filter_is_read(
    start_registry: StartRegistry,
    send: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A text filter's read is held open (as one no index answers would run for seconds at
    millions of sessions): another tenant's termination by id is applied and revoked meanwhile,
    and once the read returns, the filter's sessions are ended too. Resolved in the batch, the
    filter held the loop and every tenant behind it."""
    real = resolve_chunk
    reading, release = asyncio.Event(), asyncio.Event()

    async def held(*args: Any, **named: Any) -> list[str]:
        reading.set()
        await release.wait()
        return await real(*args, **named)

    monkeypatch.setattr(resolver_module, "resolve_chunk", held)
    registry = await start_registry()
    await send(
        created("a-1", user="ann"),
        created("a-2", user="ann"),
        created("b-1"),
        created("g-1", tenant="globex"),
    )
    await registry.wait_until_idle(30)
    mass = TerminateSessions(
        command_id=uuid.uuid4(),
        requested_at=NOW,
        tenant_id="acme",
        requested_by="admin-7",
        filter=SessionFilter(user_name="user ann"),
        confirmed_at=NOW,
    )
    await send(mass)
    async with asyncio.timeout(30):
        await reading.wait()
    await send(
        TerminateSessions(
            command_id=uuid.uuid4(),
            requested_at=NOW,
            tenant_id="globex",
            requested_by="admin-9",
            session_ids=[sid("g-1", tenant="globex")],
        )
    )

    async def globex_ended() -> bool:
        rows = await session_rows(registry, "globex")
        return bool(rows[sid("g-1", "globex")]["state"] == "terminated")

    await until(globex_ended, 30, "globex's session ended while the read is held")
    acme = await session_rows(registry)
    assert {acme[sid(c)]["state"] for c in ("a-1", "a-2", "b-1")} == {"open"}
    with pytest.raises(TimeoutError):  # not idle: a termination is taken and not applied
        await registry.wait_until_idle(0.5)
    await registry.refresh_metrics()  # what a scrape reads
    assert registry.metrics is not None
    assert registry.metrics.deferred.backlog == 1
    assert registry.metrics.deferred.oldest_age_seconds > 0
    status = await _status(registry)  # what an operator reads
    assert "terminations by a text filter not applied yet: 1" in status
    assert f"  acme {mass.command_id} partition " in status

    release.set()
    await registry.wait_until_idle(30)
    assert "terminations by a text filter not applied yet: 0" in await _status(registry)
    await registry.refresh_metrics()
    assert (registry.metrics.deferred.backlog, registry.metrics.deferred.oldest_age_seconds) == (
        0,
        0.0,
    )
    acme = await session_rows(registry)
    assert {c: acme[sid(c)]["state"] for c in ("a-1", "a-2", "b-1")} == {
        "a-1": "terminated",
        "a-2": "terminated",
        "b-1": "open",
    }


class KeptLetters:
    """A dead-letter sink that keeps what it is sent."""

    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    async def send(self, letters: Sequence[DeadLetter]) -> None:
        self.letters.extend(letters)


async def test_a_command_whose_resolution_fails_by_itself_is_dead_lettered_not_retried_forever(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retried on every pass, it would hold up every command behind it."""
    await seed(store)
    poisoned = by_filter(user_name="User u0")
    behind = by_filter(user_name="User u2")
    await defer(store, poisoned, partition=3)
    offset = next(OFFSETS) - 1  # the one it was taken at
    await defer(store, behind)

    async def provoking(
        conn: Any, store: Any, command: TerminateSessions, *rest: Any, **named: Any
    ) -> list[str]:
        if command.command_id == poisoned.command_id:
            raise ValueError("a value this command provokes")
        return await resolve_chunk(conn, store, command, *rest, **named)

    monkeypatch.setattr(resolver_module, "resolve_chunk", provoking)
    sink = KeptLetters()
    outcome = await resolver(store, dead_letters=sink).resolve_all()
    assert (outcome.commands, outcome.terminated) == (1, 3)  # the one behind: s02, s05, s08
    (reason,) = outcome.dead_letter_reasons
    assert "ValueError: a value this command provokes" in reason
    (letter,) = sink.letters
    assert (letter.topic, letter.partition, letter.offset) == (TOPICS.commands, 3, offset)
    assert letter.key == f"acme/{poisoned.command_id}".encode()
    assert letter.value is not None and decode_command(letter.value) == poisoned
    assert letter.reason == reason
    assert await kept(store) == []  # given up, not retried
    assert {e.session_id for e in await terminated_events(store)} == {
        sid("s02"),
        sid("s05"),
        sid("s08"),
    }


async def test_a_command_given_up_after_some_chunks_says_failed_with_what_they_ended(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its status stayed `pending` with `terminated: 0` for ever before revision 1601; a
    redrive then resolves it again (`pending`) and applies the rest (`applied`, all counted)."""
    await seed(store)
    command = by_filter(q="user u")
    await defer(store, command)
    reads = 0

    async def second_read_fails(*args: Any, **named: Any) -> list[str]:
        nonlocal reads
        reads += 1
        if reads == 2:
            raise ValueError("a value this command provokes")
        return await resolve_chunk(*args, **named)

    async def status() -> tuple[str, int, bool]:
        async with store.engine.connect() as conn:
            found = await request_status(conn, command.tenant_id, str(command.command_id))
        assert found is not None
        return found.status, found.terminated, found.failed_at is not None

    monkeypatch.setattr(resolver_module, "resolve_chunk", second_read_fails)
    outcome = await resolver(store, dead_letters=KeptLetters()).resolve_all()
    assert (outcome.commands, outcome.terminated, len(outcome.dead_letter_reasons)) == (0, 4, 1)
    assert await status() == ("failed", 4, True)

    monkeypatch.setattr(resolver_module, "resolve_chunk", resolve_chunk)
    await defer(store, command)  # redriven: taken from the topic again
    assert await status() == ("pending", 4, True)
    outcome = await resolver(store).resolve_all()
    assert (outcome.commands, outcome.terminated) == (1, 9)
    assert await status() == ("applied", 13, True)
    assert {e.session_id for e in await terminated_events(store)} == EVERY_LISTED


async def _poisoned_then_away(store: Store, monkeypatch: pytest.MonkeyPatch) -> TerminateSessions:
    """Two deferred commands: the first fails by itself (a value it provokes), then the
    database goes away for the second; the second, which stays deferred."""
    await seed(store)
    poisoned = by_filter(user_name="User u0")
    behind = by_filter(user_name="User u2")
    await defer(store, poisoned)
    await defer(store, behind)

    async def first_poisoned_then_away(
        conn: Any, store: Any, command: TerminateSessions, *rest: Any, **named: Any
    ) -> list[str]:
        if command.command_id == poisoned.command_id:
            raise ValueError("a value this command provokes")
        raise ConnectionRefusedError("the database went away")

    monkeypatch.setattr(resolver_module, "resolve_chunk", first_poisoned_then_away)
    return behind


async def test_a_command_given_up_is_counted_even_when_the_pass_then_fails(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The metrics were counted from the pass's outcome, which a later failure of the same pass
    (the database away) discards: the command was failed and dead-lettered, and neither
    `RegistryCommandsFailed` nor the dead letters' count saw it (found by a review,
    2026-12-06; the dead letters' count in stop 64)."""
    behind = await _poisoned_then_away(store, monkeypatch)
    counted: list[int] = []
    letters: list[str] = []
    given_up = resolver(
        store,
        dead_letters=KeptLetters(),
        given_up=lambda: counted.append(1),
        dead_lettered=letters.append,
    )
    with pytest.raises(ConnectionRefusedError):
        await given_up.resolve_all()
    assert counted == [1]
    assert len(letters) == 1 and "a value this command provokes" in letters[0], letters
    assert [row.command_id for row in await kept(store)] == [str(behind.command_id)]


async def test_the_registrys_metrics_count_what_a_failed_pass_gave_up(
    store: Store, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry's own counters, wired to the resolver: a pass that dead-letters and fails
    one command, then meets the database away, still counts both (the dead letters' count was
    taken from the pass's outcome, lost with the pass, until stop 64)."""
    await _poisoned_then_away(store, monkeypatch)
    settings = registry_settings("127.0.0.1:9", TOPICS, db_url, registry_metrics=True)
    registry = Registry.from_settings(settings, clock=lambda: NOW)  # not started: no broker
    sink = KeptLetters()
    registry.deferred._dead_letters = sink
    registry.deferred._owned = lambda: None  # every partition: it has no consumer to ask
    try:
        with pytest.raises(ConnectionRefusedError):
            await registry.resolve_deferred()
    finally:
        await registry.stop()
    # its stop closed the Kafka clients it never started: they warned when collected, in
    # whichever test ran then (stop 73)
    assert registry.guard is not None
    assert [registry.loop.consumer._closed, registry.guard.consumer._closed] == [True, True]
    assert registry.producer._closed
    assert registry.metrics is not None
    (letter,) = sink.letters
    counted = registry.metrics.registry.get_sample_value(
        "session_registry_dead_letters_total", {"reason": reason_class(letter.reason)}
    )
    assert counted == 1
    failed = registry.metrics.registry.get_sample_value("session_registry_commands_failed_total")
    assert failed == 1


async def test_a_database_away_ends_the_pass_and_keeps_every_command(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(store)
    first, second = by_filter(user_name="User u0"), by_filter(user_name="User u2")
    await defer(store, first)
    await defer(store, second)

    async def away(*args: Any, **named: Any) -> list[str]:
        raise ConnectionRefusedError("the database went away")

    monkeypatch.setattr(resolver_module, "resolve_chunk", away)
    sink = KeptLetters()
    with pytest.raises(ConnectionRefusedError):
        await resolver(store, dead_letters=sink).resolve_all()
    assert sink.letters == []
    assert len(await kept(store)) == 2
    monkeypatch.setattr(resolver_module, "resolve_chunk", resolve_chunk)
    outcome = await resolver(store, dead_letters=sink).resolve_all()
    assert (outcome.commands, outcome.terminated, sink.letters) == (2, 7, [])


async def test_tenants_take_turns_a_chunk_each(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tenant's many commands (each a walk of millions of sessions, in production) do not
    keep another tenant's waiting until all of them are applied."""
    globex = [created(f"g{n}", tenant="globex", user="u9") for n in range(3)]
    await seed(store, [*seed_events(), *globex])
    mass = by_filter(user_name="User U")  # acme's 13: four chunks of 4 (the last of 1)
    again = by_filter(device="chrome")  # acme's again: finds them ended
    theirs = by_filter(user_name="User U9").model_copy(update={"tenant_id": "globex"})
    for command in (mass, again, theirs):  # deferred in this order, the oldest first
        await defer(store, command)
    reads: list[str] = []

    async def recorded(
        conn: Any, store: Any, command: TerminateSessions, *rest: Any, **named: Any
    ) -> list[str]:
        reads.append(
            {mass.command_id: "mass", again.command_id: "again"}.get(command.command_id, "globex")
        )
        return await resolve_chunk(conn, store, command, *rest, **named)

    monkeypatch.setattr(resolver_module, "resolve_chunk", recorded)
    outcome = await resolver(store).resolve_all()
    assert (outcome.commands, outcome.terminated) == (3, 13 + 3)
    # globex's one chunk comes right after acme's first, not after acme's five reads
    assert reads == ["mass", "globex", "mass", "mass", "mass", "again"]
    assert await kept(store) == []


async def _status(registry: Registry) -> str:
    """`session-registry status` on the registry's topics, group and database."""
    settings = registry.settings
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "SESSIONS_TOPIC_PREFIX": settings.topic_prefix,
        "SESSIONS_DATABASE_URL": settings.database_url,
        "SESSIONS_CONSUMER_GROUP": settings.consumer_group,
    }
    return (await registry_cli(env, "status")).stdout


@pytest.mark.kafka
async def test_a_registry_resolves_what_its_new_partitions_hold_once_assigned(
    store: Store, start_registry: StartRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command kept by a registry that stopped (or lost its partition) is resolved by the one
    the group assigns that partition to, once assigned: not at the next tick (an hour here)."""
    monkeypatch.setattr(bootstrap, "DEFERRED_TICK_SECONDS", 3600.0)
    await seed(store)
    await defer(store, by_filter(user_name="User U"), partition=0)
    registry = await start_registry()
    await registry.wait_until_idle(30)  # the table empty too
    ended = await session_rows(registry)
    assert {s for s, row in ended.items() if row["state"] == "terminated"} == EVERY_LISTED


async def test_policy_outdated_ends_what_was_outdated_at_the_confirmed_count(
    store: Store,
) -> None:
    """The admin confirmed "the 3 sessions created under older settings": the registry read
    its targets after the settings were put back, compared each session with those, and left
    the 3 open, never revoked, ending the 2 nobody counted (found by a review, 2026-12-06).
    The settings in force at the confirmed count decide, in the admin API's count as in the
    registry's resolution."""
    before, after = (86400, 3600), (7200, 1800)
    events = [created(f"first-{n}", max_s=before[0], idle_s=before[1]) for n in range(3)]
    events += [created(f"second-{n}", max_s=after[0], idle_s=after[1]) for n in range(2)]
    await seed(store, events)

    async def change(at: datetime, policy: tuple[int, int]) -> None:
        chosen = SessionPolicy(max_session_seconds=policy[0], idle_timeout_seconds=policy[1])
        async with UnitOfWork(store) as uow:
            await settings_store.save(uow, "acme", "browser", chosen, at, "admin-7")

    await change(NOW - timedelta(minutes=10), after)
    command = by_filter(policy_outdated=True)  # confirmed two minutes before NOW
    assert command.filter is not None and command.confirmed_at is not None
    await change(NOW - timedelta(minutes=1), before)  # put back before the registry reads

    async with store.engine.connect() as conn:
        counted = await store.count_active(
            conn, command.filter, "acme", NOW, policies_at=command.confirmed_at
        )
        today = await store.count_active(conn, command.filter, "acme", NOW)
    assert (counted, today) == (3, 2)
    assert await defer(store, command) == Applied(commands=0, terminated=0, deferred=1)
    outcome = await resolver(store).resolve_all()
    assert (outcome.commands, outcome.terminated) == (1, 3)
    ended = {e.session_id for e in await terminated_events(store)}
    assert ended == {sid(f"first-{n}") for n in range(3)}


async def test_policy_outdated_reads_a_change_the_release_before_made_without_history(
    store: Store,
) -> None:
    """During an upgrade the admin API of the release before revision 1501 runs on the
    migrated schema: it changes `session_settings` and writes no history row. A count
    confirmed after that change compares with it, not with the history's older row (found by
    a review, 2026-12-06)."""
    older, newer = (86400, 3600), (7200, 1800)
    events = [created(f"older-{n}", max_s=older[0], idle_s=older[1]) for n in range(3)]
    events += [created(f"newer-{n}", max_s=newer[0], idle_s=newer[1]) for n in range(2)]
    await seed(store, events)
    chosen = SessionPolicy(max_session_seconds=older[0], idle_timeout_seconds=older[1])
    async with UnitOfWork(store) as uow:
        await settings_store.save(uow, "acme", "browser", chosen, NOW - timedelta(hours=1), "a")
    async with store.engine.begin() as conn:  # the release before: the row alone
        await conn.execute(
            update(session_settings)
            .where(session_settings.c.tenant_id == "acme")
            .values(
                max_session_seconds=newer[0],
                idle_timeout_seconds=newer[1],
                updated_at=NOW - timedelta(minutes=10),
            )
        )
    command = by_filter(policy_outdated=True)  # confirmed two minutes before NOW
    assert command.filter is not None and command.confirmed_at is not None
    async with store.engine.connect() as conn:
        counted = await store.count_active(
            conn, command.filter, "acme", NOW, policies_at=command.confirmed_at
        )
    assert counted == 3
    await defer(store, command)
    outcome = await resolver(store).resolve_all()
    assert outcome.terminated == 3
    ended = {e.session_id for e in await terminated_events(store)}
    assert ended == {sid(f"older-{n}") for n in range(3)}
