"""A search reads the session id only for texts that can be part of a handle."""

from __future__ import annotations

import random
import string

import pytest

from read_model.session_query import conditions_clause, may_be_in_handle
from session_contracts.handles import session_handle
from session_contracts.models import SessionFilter

BASE64URL = string.ascii_letters + string.digits + "-_"


@pytest.mark.parametrize("text", ["a", "QE", "h3b1asnw", "x_Q-", "Smith", "\u212a", "\u017f", "İ"])
def test_base64url_texts_and_what_folds_onto_them_are_looked_up_in_session_ids(text: str) -> None:
    # the Kelvin sign lowers to k, the long s uppers to S, the dotted capital I lowers to i
    assert may_be_in_handle(text)
    assert "session_id" in str(conditions_clause(SessionFilter(q=text)))


@pytest.mark.parametrize(
    "text",
    ["mary wilson", "O'Brien", "100%", "a.b", "x y", "Jürgen Müller", "ü", "ø", "Ö", "Χρήστος"],
)
def test_a_text_with_other_characters_is_in_no_handle_and_not_looked_up(text: str) -> None:
    assert not may_be_in_handle(text)
    clause = str(conditions_clause(SessionFilter(q=text)))
    assert "session_id" not in clause and "user_name" in clause


def test_no_handle_holds_an_ascii_character_outside_base64url() -> None:
    rng = random.Random(5)
    handles = [session_handle("acme", str(rng.random())) for _ in range(2_000)]
    held = {c for h in handles for c in h.lower()} | {c for h in handles for c in h.upper()}
    outside = {chr(i) for i in range(128)} - set(BASE64URL)
    assert held <= set(BASE64URL) and not held & outside
    assert all(not may_be_in_handle(c) for c in outside)
