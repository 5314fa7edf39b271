"""The compact revocation table behaves like a dict of key to expiry whose expiries only grow."""

from __future__ import annotations

import random
import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_table_grows_then_shrinks_back_once_entries_expire() -> None:
    table = RevocationTable()
    for n in range(20_000):
        table.add(n.to_bytes(4, "big"), 10)
    grown = table.capacity
    assert grown >= 20_000 / 0.6
    table.add(b"keeper", 10_000)
    table.evict(now=100, slots=grown)
    assert len(table) == 1
    assert table.capacity < grown
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
