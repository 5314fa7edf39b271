"""Which search terms the trigram indexes find cheaply: three letters or digits in a row."""

from __future__ import annotations

import pytest

from admin_api.adapters.session_search import trigram_selective


@pytest.mark.parametrize(
    "term",
    ["abc", "m0t", "XQ7", "Müll", "x-abc", "a_bcd", "Mary Smith", "ØÆå", "李小龙", "ab-cde"],
)
def test_a_run_of_three_letters_or_digits_is_selective(term: str) -> None:
    assert trigram_selective(term)


@pytest.mark.parametrize(
    # pg_trgm splits these at `-`, `_`, a space or an apostrophe into words of one or two
    # characters: their trigrams (a word starting or ending so) are in most session ids
    "term",
    ["", "a", "ab", "Z-R", "k9_", "Jg-", "ab-cd", "t r", "o'b", "-_-", "a_b_c_d", "%_%"],
)
def test_shorter_runs_are_not(term: str) -> None:
    assert not trigram_selective(term)
