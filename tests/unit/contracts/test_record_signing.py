"""Records only the registry writes (`session.expired`) carry its signature, and a record
without a valid one is told apart, whatever it holds (`session_contracts.record_signing`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from session_contracts import record_signing
from session_contracts.record_signing import (
    FORGED,
    SIGNATURE_HEADER,
    UNSIGNED,
    RecordSigner,
    SignedExpiries,
)

KEY, OLD = "the-registrys-key-of-at-least-32-chars", "the-registrys-old-key-of-32-chars-too"
RECORD_KEY, VALUE = b"acme/handle-1", b'{"type": "session.expired"}'
LOG_APPEND_TIME, CREATE_TIME = 1, 0


@dataclass
class Record:
    key: bytes | None = RECORD_KEY
    value: bytes | None = VALUE
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    timestamp: int = 1_000
    timestamp_type: int = LOG_APPEND_TIME


def signed(signer: RecordSigner, key: bytes = RECORD_KEY, value: bytes = VALUE) -> Record:
    return Record(key=key, value=value, headers=list(signer.headers(key, value)))


def test_a_signature_verifies_for_its_record_only() -> None:
    signer = RecordSigner([KEY])
    record = signed(signer)
    assert signer.verify(record.key, record.value, record.headers)
    assert not signer.verify(RECORD_KEY + b"x", VALUE, record.headers)  # another session
    assert not signer.verify(RECORD_KEY, VALUE + b" ", record.headers)  # the value altered
    # the key and value are told apart: moving bytes between them breaks it
    assert not signer.verify(RECORD_KEY + b"{", VALUE[1:], record.headers)
    assert not RecordSigner([OLD]).verify(record.key, record.value, record.headers)


def test_rotation_signs_with_the_first_key_and_verifies_with_each() -> None:
    before = signed(RecordSigner([OLD]))
    rotated = RecordSigner([KEY, OLD])
    assert rotated.verify(before.key, before.value, before.headers)
    after = signed(rotated)
    assert RecordSigner([KEY]).verify(after.key, after.value, after.headers)
    assert not RecordSigner([OLD]).verify(after.key, after.value, after.headers)


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(SIGNATURE_HEADER, None)],
        [(SIGNATURE_HEADER, b"")],
        [(SIGNATURE_HEADER, b"no-dot")],
        [(SIGNATURE_HEADER, b"00000000.AAAA")],  # a key id no key has
    ],
    ids=["none", "no-value", "empty", "no-key-id", "unknown-key-id"],
)
def test_a_missing_or_malformed_signature_never_verifies(
    headers: list[tuple[str, bytes | None]],
) -> None:
    assert not RecordSigner([KEY]).verify(RECORD_KEY, VALUE, headers)


def test_two_signature_headers_are_refused_even_if_one_is_good() -> None:
    signer = RecordSigner([KEY])
    good = signed(signer).headers
    assert not signer.verify(RECORD_KEY, VALUE, [*good, (SIGNATURE_HEADER, b"x.y")])
    assert not signer.verify(RECORD_KEY, VALUE, good + good)


def test_which_expiries_are_refused() -> None:
    signer = RecordSigner([KEY])
    strict = SignedExpiries(signer)
    assert strict.refusal(signed(signer)) is None
    assert strict.refusal(Record()) == UNSIGNED
    assert strict.refusal(signed(RecordSigner([OLD]))) == FORGED
    since = SignedExpiries(signer, since_ms=2_000)
    assert since.refusal(Record(timestamp=1_999)) is None  # appended before the keys were set
    assert since.refusal(Record(timestamp=2_000)) == UNSIGNED
    # a producer dates a CreateTime record as it likes: no date of it is trusted
    assert since.refusal(Record(timestamp=1, timestamp_type=CREATE_TIME)) == UNSIGNED
    # a signature present is checked whatever the date
    early_forgery = signed(RecordSigner([OLD]))
    early_forgery.timestamp = 1
    assert since.refusal(early_forgery) == FORGED


def test_a_signer_needs_a_key() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        RecordSigner([])


def test_keys_sharing_an_id_are_each_tried(monkeypatch: pytest.MonkeyPatch) -> None:
    """An id is 8 hex digits: two keys may share one (a review found a pair in 182,529 tries),
    and the later then hid the earlier, whose own signatures stopped verifying."""
    monkeypatch.setattr(record_signing, "key_id", lambda secret: b"samename")
    rotated = RecordSigner([KEY, OLD])
    for signer in (RecordSigner([KEY]), RecordSigner([OLD]), rotated):
        record = signed(signer)
        assert rotated.verify(record.key, record.value, record.headers)
