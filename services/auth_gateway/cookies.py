"""Reading session ids exactly as the application behind the gateway will read them.

The gateway must decide on the value the application sees, so it reads requests with the
framework's own rules, not a look-alike: a `Cookie` header is decoded as latin-1 (as
Starlette's `Headers` do) and parsed by Starlette's `cookie_parser` (the parser behind
`request.cookies`: `str.strip`, which also removes `\\xa0`, `\\x85` and `\\x1c`-`\\x1f`, then
`http.cookies` unquoting of `"..."` with `\\ooo` and `\\c` escapes). A session header is the
latin-1 value `request.headers` returns, stripped the way `str.strip` does.

The parser is run on each `;`-separated piece on its own, which gives every value of the
session cookie in the header, not only the last one `request.cookies` keeps: each is checked.

A browser sends the same Cookie header on every request of a session, so each distinct
header is parsed once: what it holds (the candidate ids) is cached, never whether they are
revoked, which the middleware looks up on every request.

Only the pieces that name the cookie are parsed (found by searching the header for the name,
not by splitting it into every piece), and a header holding more than
`MAX_SESSION_COOKIE_VALUES` values of it is not vouched for (`TOO_MANY`: refused). Before
2026-12-06 every piece went through `cookie_parser`: a header of 32 KiB of `;` cost 15 ms of
the event loop, and one of `sid=a;` repeated 7 ms, a hundred times a request's check (found by
a review); now microseconds, and at most 17 values parsed.
"""

from __future__ import annotations

from typing import NamedTuple

from starlette.requests import cookie_parser

from session_contracts.handles import CREDENTIAL_MAX, credential_refusal

MAX_SESSION_ID = CREDENTIAL_MAX
"""The longest value checked as a credential; a longer one is refused (`SessionCookie.unchecked`),
never passed on as no session: the app could take it for one (a review, stop 70)."""
MAX_SESSION_COOKIE_VALUES = 16
"""Values of the session cookie one Cookie header may hold: a browser sends one per path or
domain it was set for, a few at most."""
_CACHED_HEADERS = 4096
_CACHED_HEADER_BYTES = 1024  # longer headers are parsed every time: the cache holds at most
# 4,096 headers of 1 KiB and their candidates (up to ~145 each): ~30 MB at worst, measured

STR_WHITESPACE = bytes(b for b in range(256) if chr(b).strip() == "")
"""The latin-1 bytes `str.strip()` removes: `value.strip(STR_WHITESPACE)` on raw bytes is
`value.decode("latin-1").strip().encode("latin-1")`, without the two copies."""


def printable_id(raw: bytes) -> str | None:
    """`raw` as a contract session id (1-128 printable ASCII, no spaces: the publisher's rule,
    `handles.credential_refusal`), or None."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    return text if credential_refusal(text) is None else None


class SessionCookie(NamedTuple):
    """The session cookie in one header: every value that could be an id, and the id the
    application reads from it (`request.cookies[name]` keeps the last value)."""

    candidates: tuple[bytes, ...]
    session_id: str | None
    present: bool
    unchecked: bool = False
    """A value longer than `MAX_SESSION_ID`: not checked, so not vouched for (refused)."""


NO_COOKIE = SessionCookie((), None, False)
TOO_MANY = SessionCookie((), None, True)
"""A header with more than `MAX_SESSION_COOKIE_VALUES` values of the cookie: not checked, so
not vouched for (the middleware refuses it, compared by identity)."""


class CookieParser:
    """Parses the session cookie (`name`) out of Cookie headers as Starlette does, with a cache."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._raw_name = name.encode("latin-1")
        self._cache: dict[bytes, SessionCookie] = {}

    def parse(self, header: bytes) -> SessionCookie:
        """Every value of the cookie in `header`, as the application would read each."""
        found = self._cache.get(header)
        if found is not None:
            return found
        if self._raw_name not in header:  # latin-1 maps bytes to characters one to one
            return NO_COOKIE
        name = self.name
        text = header.decode("latin-1")
        values: list[bytes] = []
        start = 0
        # cookie_parser splits on ";" and files a piece under what precedes its first "=",
        # stripped: only a piece holding the name can be filed under it
        while (at := text.find(name, start)) >= 0:
            begin = text.rfind(";", 0, at) + 1
            end = text.find(";", at)
            end = len(text) if end < 0 else end
            start = end + 1
            piece = text[begin:end]
            if "=" not in piece or piece.split("=", 1)[0].strip() != name:
                continue  # the name within another cookie's name or value
            if len(values) == MAX_SESSION_COOKIE_VALUES:
                return TOO_MANY
            value = cookie_parser(piece)[name]
            values.append(value.encode("latin-1"))  # unquoting yields only \x00-\xff
        candidates = tuple(v for v in values if 0 < len(v) <= MAX_SESSION_ID)
        # any of them: Starlette's `request.cookies` keeps the last value, Werkzeug's (Flask,
        # Quart) the first, and the gateway wraps any ASGI app. Refusing only the last let a
        # long revoked credential placed first through to a first-value app (a review, stop
        # 70). The price: a long cookie of this name planted for a parent domain or another
        # path locks users out until it expires; a `__Host-` cookie name cannot be planted so
        unchecked = any(len(value) > MAX_SESSION_ID for value in values)
        parsed = (
            SessionCookie(candidates, printable_id(values[-1]), True, unchecked)
            if values
            else NO_COOKIE
        )
        if len(header) <= _CACHED_HEADER_BYTES:
            if len(self._cache) >= _CACHED_HEADERS:
                self._cache.clear()  # crude, but O(1) amortised and bounded
            self._cache[header] = parsed
        return parsed
