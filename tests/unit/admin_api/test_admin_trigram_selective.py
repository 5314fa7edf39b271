"""Which search terms the trigram indexes find cheaply (see `trigram_selective`)."""

from __future__ import annotations

import pytest

from admin_api.adapters.session_search import trigram_selective


@pytest.mark.parametrize(
    "term",
    [
        *["abc", "m0t", "XQ7", "Müll", "x-abc", "Mary Smith", "ØÆå", "李小龙"],
        # two next to a separator: "a word starting with 35", "a word ending in k9"
        *["-35", "k9_", "Jg-", "x_9Q", "a-Bc", "ab-cd", "-ab-"],
        # one between two separators: " y ", a word that is just y
        *["x-y-z", "a_b_c_d", "-a-", "A_b_C", " a "],
    ],
)
def test_a_rare_trigram_is_selective(term: str) -> None:
    assert trigram_selective(term)


@pytest.mark.parametrize(
    # one or two characters, or words of one character between separators: their trigrams
    # ("a word starting with r") are in most session ids
    "term",
    ["", "a", "ab", "Z-R", "0_g", "t r", "o'b", "-_-", "%_%", "a-", "-a", "q-_-q"],
)
def test_other_terms_are_not(term: str) -> None:
    assert not trigram_selective(term)
