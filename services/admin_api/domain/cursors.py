"""Signed page cursors: the one codec every keyset-paged list of the API uses.

A cursor is `<payload>.<mac>`, both URL-safe base64 without padding. The payload is a small
JSON object (where the previous page ended, and for the session list the total counted with
the first page); the MAC is HMAC-SHA256 under the server's cursor key over the page's *scope*
(which list, the caller's tenant, the filter and the sort, none of them carried in the cursor)
and the payload. So a cursor is honoured only as it was issued: a changed byte, a made-up
total, another tenant's cursor or one issued for another filter or sort fails the MAC and the
request is 422 naming `cursor`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

MAC_BYTES = 32
"""HMAC-SHA256, untruncated."""


class BadCursor(ValueError):
    """The cursor was not issued by this API for this list, tenant, filter and sort."""


NOT_OURS = (
    "cursor: not a cursor this API issued for this list, tenant, filter and sort; "
    "start again from the first page"
)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_B64 = re.compile(r"[A-Za-z0-9_-]+")


def _unb64(text: str) -> bytes:
    # Strict: one spelling per cursor (the decoder would skip characters outside the alphabet).
    if not _B64.fullmatch(text):
        raise ValueError("not URL-safe base64")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def canonical(value: Mapping[str, Any]) -> bytes:
    """One byte string per JSON value: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class CursorCodec:
    """Seals positions into cursors under the server's key and opens them again under it or
    any of the `previous` keys (a rotation: cursors issued before it still open until the old
    key is dropped from the configuration)."""

    def __init__(self, key: bytes, previous: Sequence[bytes] = ()) -> None:
        if any(len(one) < 32 for one in (key, *previous)):
            raise ValueError("cursor key: at least 32 bytes")
        self._keys = (key, *previous)
        """The first signs; every one opens."""

    @staticmethod
    def _mac(key: bytes, scope: Mapping[str, Any], payload: bytes) -> bytes:
        # The scope's JSON holds no raw newline, so scope and payload cannot be confused.
        return hmac.new(key, canonical(scope) + b"\n" + payload, hashlib.sha256).digest()

    def seal(self, scope: Mapping[str, Any], position: Mapping[str, Any]) -> str:
        """The cursor of `position`, valid only for `scope`."""
        payload = canonical(position)
        return f"{_b64(payload)}.{_b64(self._mac(self._keys[0], scope, payload))}"

    def open(self, scope: Mapping[str, Any], cursor: str) -> dict[str, Any]:
        """The position sealed in `cursor`; BadCursor unless it was sealed for `scope`."""
        try:
            encoded, _, tag = cursor.partition(".")
            payload, mac = _unb64(encoded), _unb64(tag)
        except (binascii.Error, ValueError):
            raise BadCursor(NOT_OURS) from None
        if len(mac) != MAC_BYTES or not any(
            hmac.compare_digest(mac, self._mac(key, scope, payload)) for key in self._keys
        ):
            raise BadCursor(NOT_OURS)
        try:
            position = json.loads(payload)
        except (ValueError, RecursionError):  # we sealed it, so this is a bug, not an attack
            raise BadCursor(NOT_OURS) from None
        if not isinstance(position, dict):
            raise BadCursor(NOT_OURS)
        return position
