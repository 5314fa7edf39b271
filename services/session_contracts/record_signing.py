"""Records only the registry writes, told from the same records written by anyone else.

`session.expired` is written by the registry only (docs/contract.md), yet any producer allowed
on `sessions.events` (every platform service, under the reference ACLs) can write one: an
expiry of a session the platform still serves keeps it out of every termination (the
registry ends only open rows), and out of the admin's list, while the platform keeps serving
it (a review, 2026-12-06). The fold cannot refuse it by its content: whether a deadline has
passed depends on which activity was read first, and the fold gives the same rows in any order.

So the registry signs what only it writes: an HMAC-SHA256 of the record's key and value under
a key only the registry holds (`SESSIONS_RECORD_SIGNING_KEYS`), in the header
`sessions-registry-signature` as `<key id>.<signature>` (the key id: the first 8 hex digits
of the key's SHA-256, so a rotated key is found without trying each). A `session.expired`
without a valid signature is dead-lettered, with its reason, whatever its content.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from session_contracts.kafka_records import LOG_APPEND_TIME

SIGNATURE_HEADER = "sessions-registry-signature"
"""The Kafka header carrying a registry-only record's signature."""
_DOMAIN = b"sessions-registry-record-v1\x00"
"""Signed first: a signature made for anything else never passes for a record's."""


Verdict = Literal["valid", "invalid", "none"]
"""What a record's signature says (`RecordSigner.verdict`)."""


_FORM = re.compile(rb"[0-9a-f]{8}\.[A-Za-z0-9_-]{43}")
"""A signature as `RecordSigner.sign` writes it: the key id, a dot, the HMAC-SHA256 in
base64url without padding."""


def carries_signature(headers: Sequence[tuple[str, bytes | None]]) -> bool:
    """Whether the record has a signature header (valid or not)."""
    return any(name == SIGNATURE_HEADER for name, _ in headers)


def signature_of(headers: Sequence[tuple[str, bytes | None]]) -> tuple[str, bytes] | None:
    """The record's one signature header if it is of the form the registry writes (whether
    it verifies is for the keys to say); None without one, with two, or of another form."""
    found = [(name, value) for name, value in headers if name == SIGNATURE_HEADER]
    if len(found) != 1:
        return None
    name, value = found[0]
    return None if value is None or _FORM.fullmatch(value) is None else (name, value)


def key_id(secret: bytes) -> bytes:
    """A short, public name of a key: the first 8 hex digits of its SHA-256."""
    return hashlib.sha256(secret).hexdigest()[:8].encode()


class RecordSigner:
    """Signs with the first of `secrets` and verifies with any of them (rotation: add the new
    key after the old ones everywhere, then move it first; keep the old ones as long as the
    log holds records they signed)."""

    def __init__(self, secrets: Sequence[str]) -> None:
        if not secrets:
            raise ValueError("a record signer needs at least one key")
        keys = [secret.encode() for secret in secrets]
        self._signing = keys[0]
        self._signing_id = key_id(keys[0])
        # two keys may share an id (8 hex digits): each is tried
        self._by_id: dict[bytes, list[bytes]] = {}
        for key in keys:
            self._by_id.setdefault(key_id(key), []).append(key)

    def _mac(self, secret: bytes, key: bytes, value: bytes) -> bytes:
        """The signature's text (unpadded base64url) of this record under `secret`."""
        message = _DOMAIN + len(key).to_bytes(4, "big") + key + value
        digest = hmac.new(secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=")

    def sign(self, key: bytes, value: bytes) -> bytes:
        """The header value signing this record."""
        return self._signing_id + b"." + self._mac(self._signing, key, value)

    def headers(self, key: bytes, value: bytes) -> tuple[tuple[str, bytes], ...]:
        """The record's headers carrying its signature."""
        return ((SIGNATURE_HEADER, self.sign(key, value)),)

    def verdict(
        self, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes | None]]
    ) -> Verdict:
        """`none` without a signature header; `valid` for one signature of one of the keys
        over this key and value; else `invalid` (two signature headers too, whatever they
        hold)."""
        found = [v for name, v in headers if name == SIGNATURE_HEADER]
        if not found:
            return "none"
        if len(found) != 1 or key is None or value is None or found[0] is None:
            return "invalid"
        kid, _, mac = bytes(found[0]).partition(b".")
        for secret in self._by_id.get(kid, ()):
            if hmac.compare_digest(self._mac(secret, key, value), mac):
                return "valid"
        return "invalid"

    def verify(
        self, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes | None]]
    ) -> bool:
        """Whether the record carries a valid signature of one of the keys (`verdict`)."""
        return self.verdict(key, value, headers) == "valid"


class _Record(Protocol):
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes | None]]: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def timestamp_type(self) -> int: ...


UNSIGNED = (
    "session.expired is written by the registry only, and this one carries no registry "
    "signature (a producer allowed on the events topic wrote it: docs/security.md)"
)
FORGED = (
    "session.expired is written by the registry only, and this one's registry signature does "
    "not verify (another key, or the record altered: docs/security.md)"
)


@dataclass(frozen=True)
class SignedExpiries:
    """How the registry reads a `session.expired`: signed by one of its keys, or, without a
    signature, appended by the broker before `since_ms` (milliseconds since the epoch: written
    before the keys were set). A topic whose records its producers date (CreateTime) gives no
    such date to trust: there, every unsigned one is refused."""

    signer: RecordSigner
    since_ms: int | None = None

    def refusal(self, record: _Record) -> str | None:
        """Why this `session.expired` record is refused (its dead letter's reason); None to
        apply it."""
        verdict = self.signer.verdict(record.key, record.value, record.headers)
        if verdict != "none":
            return None if verdict == "valid" else FORGED
        since = self.since_ms
        dated_by_broker = record.timestamp_type == LOG_APPEND_TIME
        if since is not None and dated_by_broker and record.timestamp < since:
            return None
        return UNSIGNED
