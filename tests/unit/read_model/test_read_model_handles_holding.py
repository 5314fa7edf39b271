"""`handles_holding`: how many session ids hold a piece, against real handles."""

from __future__ import annotations

import random

from read_model.session_query import handles_holding
from session_contracts.handles import session_handle

TERMS = ["co8", "m0t", "ab9", "x_Y", "-g1", "QQ", "zq9k", "7-_"]


def test_the_expected_count_is_what_real_handles_hold() -> None:
    rng = random.Random(18)
    handles = [session_handle("tenant-0", f"credential-{rng.random()}") for _ in range(100_000)]
    lowered = [h.lower() for h in handles]
    for term in TERMS:
        found = sum(term.lower() in h for h in lowered)
        expected = handles_holding(term, len(handles))
        # a count of rare independent events: within five standard deviations (Poisson), and
        # never off by more than a third where there are enough to tell
        assert abs(found - expected) <= 5 * expected**0.5 + 2, (term, found, expected)
        if expected > 300:
            assert abs(found - expected) <= expected / 3, (term, found, expected)


def test_letters_count_twice_and_an_empty_piece_is_in_every_handle() -> None:
    assert handles_holding("", 40) == 40
    assert handles_holding("ab", 1000) == 4 * handles_holding("12", 1000)
    assert handles_holding("a" * 44, 10**9) == 0  # longer than a handle
