"""The compact revocation table behaves like a dict of key to expiry whose expiries only grow."""

from __future__ import annotations

import random
import tracemalloc
from unittest.mock import patch

from hypothesis import given, settings, target
from hypothesis import strategies as st

from auth_gateway import revocations
from auth_gateway.revocations import RevocationTable

ids = st.binary(min_size=1, max_size=12)
ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "discard", "discard_ended", "evict"]), ids, st.integers(1, 100)
    ),
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_table_matches_a_dict_under_any_sequence_of_operations(
    operations: list[tuple[str, bytes, int]],
) -> None:
    table = RevocationTable()
    model: dict[bytes, int] = {}
    for op, key, number in operations:
        if op == "add":
            table.add(key, number)
            model[key] = max(model.get(key, 0), number)  # an expiry never moves earlier
        elif op == "discard":
            assert table.discard(key) == (key in model)
            model.pop(key, None)
        elif op == "discard_ended":
            outcome = table.discard_ended(key, number)
            if key not in model:
                assert outcome is False
            elif model[key] > number:
                assert outcome is None  # still valid: kept
            else:
                assert outcome is True
                del model[key]
        else:
            table.evict(now=number, slots=table.capacity)
            model = {k: v for k, v in model.items() if v >= number}
        assert len(table) == len(model)
    for key, until in model.items():
        assert key in table
        assert table.until(key) == until


def test_deletions_inside_long_probe_runs_keep_every_other_entry_findable() -> None:
    rng = random.Random(7)
    table = RevocationTable()
    keys = [rng.randbytes(16) for _ in range(5000)]
    for key in keys:
        table.add(key, 10)
    gone = set(rng.sample(keys, 2500))
    for key in gone:
        assert table.discard(key)
    assert all((key in table) == (key not in gone) for key in keys)
    assert len(table) == 2500
    assert not any(table.discard(key) for key in gone)


def test_unknown_ids_are_not_revoked() -> None:
    table = RevocationTable()
    table.add(b"revoked", 10)
    assert b"revoked" in table
    assert b"other" not in table
    assert b"" not in table


def test_an_expiry_only_moves_later() -> None:
    table = RevocationTable()
    table.add(b"s", 10)
    table.add(b"s", 1000)
    table.add(b"s", 20)  # a later, shorter record does not shorten it
    assert len(table) == 1
    assert table.until(b"s") == 1000
    table.evict(now=500, slots=table.capacity)
    assert b"s" in table


def test_a_tombstone_ends_an_entry_only_once_its_expiry_has_passed() -> None:
    table = RevocationTable()
    table.add(b"acme/h", 1000)
    assert table.discard_ended(b"acme/h", now=999) is None
    assert b"acme/h" in table
    assert table.discard_ended(b"globex/h", now=5000) is False
    assert b"acme/h" in table
    assert table.discard_ended(b"acme/h", now=1000) is True
    assert b"acme/h" not in table
    assert table.until(b"acme/h") is None


def test_fractional_expiries_round_up_so_nothing_leaves_early() -> None:
    table = RevocationTable()
    table.add(b"s", 100.2)
    table.evict(now=100.9, slots=table.capacity)
    assert b"s" in table
    table.evict(now=101.5, slots=table.capacity)
    assert b"s" not in table


def test_eviction_sweeps_in_slices_and_resumes_where_it_stopped() -> None:
    table = RevocationTable()
    for n in range(500):
        table.add(f"old-{n}".encode(), 50)
        table.add(f"new-{n}".encode(), 5000)
    dropped = 0
    for _ in range(table.capacity // 64 + 1):
        dropped += table.evict(now=100, slots=64)
    assert dropped == 500
    assert len(table) == 500
    assert all(f"new-{n}".encode() in table for n in range(500))


def resized(table: RevocationTable) -> RevocationTable:
    """The table once a resize under way is over (eviction ticks copy, evicting nothing)."""
    while table.resizing:
        assert table.evict(now=2**31, slots=1024) == 0
    return table


def test_table_grows_then_shrinks_back_once_entries_expire() -> None:
    table = RevocationTable()
    for n in range(20_000):
        table.add(n.to_bytes(4, "big"), 10)
    grown = resized(table).capacity
    assert grown >= 20_000 / 0.6
    table.add(b"keeper", 10_000)
    table.evict(now=100, slots=grown)
    assert len(table) == 1
    assert resized(table).capacity < grown
    assert b"keeper" in table


def test_memory_per_entry_is_a_few_dozen_bytes() -> None:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        table = RevocationTable()
        for n in range(100_000):
            table.add(n.to_bytes(8, "big") * 4, 2_000_000_000)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(table) == 100_000
    assert held / 100_000 < 64


def test_a_growth_is_copied_a_few_slots_per_add_never_all_at_once() -> None:
    table = RevocationTable()
    keys: list[bytes] = []
    while not table.resizing:
        keys.append(len(keys).to_bytes(8, "big"))
        table.add(keys[-1], 10)
    old = table.capacity
    assert table.resizing == old  # the add that started it copied nothing
    for step in range(1, 4):
        keys.append(len(keys).to_bytes(8, "big"))
        table.add(keys[-1], 10)
        assert table.resizing == old - step * revocations._MOVED_PER_ADD
        assert table.capacity == old  # lookups still read the old arrays, whole
        assert all(key in table for key in keys)
    while table.resizing:
        keys.append(len(keys).to_bytes(8, "big"))
        table.add(keys[-1], 10)
    assert table.capacity == 2 * old
    assert len(table) == len(keys)
    assert all(table.until(key) == 10 for key in keys)


few_ids = st.integers(0, 80).map(lambda n: n.to_bytes(2, "big"))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["add", "add", "add", "discard", "discard_ended", "evict"]),
            few_ids,
            st.sampled_from([20, 40, 60, 80, 100]),  # few expiries: the same one added again
            st.integers(0, 4),
        ),
        min_size=30,
        max_size=400,
    )
)
def test_resizes_a_few_slots_at_a_time_lose_nothing_under_any_sequence_of_operations(
    operations: list[tuple[str, bytes, int, int]],
) -> None:
    """Tiny arrays copied four slots per add: many operations land mid-resize, deletions
    shifting entries across the copied boundary included (at one slot per add, the old
    arrays would fill first and every resize end at once)."""
    with (
        patch.object(revocations, "_MIN_CAPACITY", 16),
        patch.object(revocations, "_MOVED_PER_ADD", 4),
    ):
        table = RevocationTable(16)
        model: dict[bytes, int] = {}
        reference = RevocationTable(4096)  # never resized here: what the bytes must read
        resized_midway = 0
        for op, key, number, why in operations:
            resized_midway += bool(table.resizing)
            if op == "add":
                table.add(key, number, why)
                reference.add(key, number, why)
                model[key] = max(model.get(key, 0), number)
            elif op == "discard":
                assert table.discard(key) == (key in model)
                reference.discard(key)
                model.pop(key, None)
            elif op == "discard_ended":
                outcome = table.discard_ended(key, number)
                reference.discard_ended(key, number)
                expected = False if key not in model else (None if model[key] > number else True)
                assert outcome is expected
                if outcome:
                    del model[key]
            else:  # a slice of an eviction sweep, or of a resize's copying
                table.evict(now=number, slots=number % 7 + 1)
                assert all(k in table for k, v in model.items() if v >= number)
                for evicted in [k for k in model if k not in table]:
                    reference.discard(evicted)
                model = {k: v for k, v in model.items() if k in table}
            assert len(table) == len(model)
            assert (key in table) == (key in model)
            assert table.why(key) == reference.why(key)  # the reason byte too
        while table.resizing:
            table.evict(now=0, slots=1)
        assert len(table) == len(model)
        for key, until in model.items():
            assert table.until(key) == until
            assert table.why(key) == reference.why(key)
        target(resized_midway)  # steer the search to sequences that resize mid-way


def test_an_entry_a_deletion_shifts_behind_the_copying_is_copied_again() -> None:
    """Three keys of one home slot h sit at h, h+1, h+2 of the old arrays; a shrink has copied
    the slots before h+2. Deleting the first shifts the third into h+1, behind the copying:
    without copying it again, it was missing from the new arrays once they took over."""
    home = 5
    run = [
        key
        for key in (n.to_bytes(4, "big") for n in range(200_000))
        if (hash(key) or 1) & 63 == home
    ][:3]
    with patch.object(revocations, "_MIN_CAPACITY", 16):
        table = RevocationTable(64)
        for key in run:
            table.add(key, 10)
        table.evict(now=0, slots=64)  # a full pass over a sparse table starts a shrink
        assert table.resizing == 64
        table.evict(now=0, slots=home + 2)  # copies slots 0 .. h+1
        assert table.resizing == 64 - home - 2
        assert table.discard(run[0])
        resized(table)
        assert table.capacity == 16
        assert [key in table for key in run] == [False, True, True]


def test_a_shrink_takes_the_table_to_a_quarter_at_most_a_pass() -> None:
    """Each add of a shrink copies at most four times `_MOVED_PER_ADD` slots: a shrink from
    millions of slots to the minimum in one pass cost milliseconds an add."""
    table = RevocationTable()
    for n in range(40_000):
        table.add(n.to_bytes(4, "big"), 10)
    grown = resized(table).capacity
    assert grown >= 65_536
    table.add(b"keeper", 10_000)
    table.evict(now=100, slots=grown)  # every entry but one expired: a shrink starts
    assert len(table) == 1
    assert table.resizing == grown
    table.add(b"another", 10_000)
    assert table.resizing == grown - 4 * revocations._MOVED_PER_ADD
    assert resized(table).capacity == grown // 4
    table.evict(now=100, slots=grown)  # the next pass shrinks again
    assert resized(table).capacity == grown // 16
    assert b"keeper" in table
    assert b"another" in table
