"""Finding the session cookie in a Cookie header, remembering headers already seen.

A browser sends the same Cookie header on every request of a session, so each distinct
header is parsed once: what it holds (the candidate ids) is cached, never whether they are
revoked, which the middleware looks up on every request.
"""

from __future__ import annotations

import re
from typing import NamedTuple

MAX_SESSION_ID = 128
_CACHED_HEADERS = 4096
_CACHED_HEADER_BYTES = 1024  # longer headers are parsed every time: bounds the cache to ~4 MB


_ESCAPE = re.compile(rb"\\(?:([0-3][0-7][0-7])|(.))", re.DOTALL)


def _unescape(match: re.Match[bytes]) -> bytes:
    octal, char = match.groups()
    return bytes([int(octal, 8)]) if octal is not None else char


def unquote(value: bytes) -> bytes:
    """A quoted cookie value as `http.cookies` reads it (Starlette, Django, Flask do so too).

    The quotes go and `\\ooo` (octal) and `\\c` escapes are undone: `sid="\\162ev..."` is the
    session "rev...". The gateway must see the id the application behind it will see.
    """
    if len(value) < 2 or value[0] != 0x22 or value[-1] != 0x22:
        return value
    inner = value[1:-1]
    return _ESCAPE.sub(_unescape, inner) if b"\\" in inner else inner


def printable_id(raw: bytes) -> str | None:
    """`raw` as a contract session id (1-128 printable ASCII, no spaces), or None."""
    if not 0 < len(raw) <= MAX_SESSION_ID:
        return None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() and " " not in text else None


class SessionCookie(NamedTuple):
    """The session cookie's values in one header: all that could be ids, and the first valid."""

    candidates: tuple[bytes, ...]
    session_id: str | None


NO_COOKIE = SessionCookie((), None)


class CookieParser:
    """Parses the session cookie (`name`) out of Cookie headers, RFC 6265 style, with a cache."""

    def __init__(self, name: str) -> None:
        self.name = name.encode("latin-1")
        self._cache: dict[bytes, SessionCookie] = {}

    def parse(self, header: bytes) -> SessionCookie:
        """Every value of the cookie in `header` (unquoted) that has an id's length."""
        found = self._cache.get(header)
        if found is not None:
            return found
        if self.name not in header:
            return NO_COOKIE
        candidates = []
        for part in header.split(b";"):
            key, eq, value = part.partition(b"=")
            if eq and key.strip() == self.name:
                value = unquote(value.strip())
                if 0 < len(value) <= MAX_SESSION_ID:
                    candidates.append(value)
        parsed = SessionCookie(
            tuple(candidates), printable_id(candidates[0]) if candidates else None
        )
        if len(header) <= _CACHED_HEADER_BYTES:
            if len(self._cache) >= _CACHED_HEADERS:
                self._cache.clear()  # crude, but O(1) amortised and bounded
            self._cache[header] = parsed
        return parsed
