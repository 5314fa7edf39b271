r"""Session credentials carried outside the session cookie: under an authentication scheme
(`Authorization: Bearer <id>`), in a query parameter (`?access_token=<id>`, the way a link
carries one) and in a WebSocket's subprotocols (the way a browser's socket can without the URL).

No list of an application's readings can be complete: three reviews of the first versions
(stop 67) found `replace("Bearer ", "")`, `[7:]`, `lstrip("Bearer ")`, `strip("Bearer ")`,
`split("Bearer")`, an unanchored `Bearer\s+([\w-]+)`, `.strip('"')`, `rstrip("=")` and
`unquote` each reading a revoked id out of a value the gateway had looked up otherwise. So a
session under a scheme or in the parameter is held to one spelling in which every such reading
gives the id itself, and anything else is refused (`MALFORMED`, answered 400):

- **The id** is 1-128 characters of base64url, `A-Z a-z 0-9 - _` (what `secrets.token_urlsafe`
  issues): every `[\w-]+` reading takes it whole, and there is nothing to strip, unquote or
  percent-decode in it. It must not contain the scheme (`split("Bearer")`, `replace`), and it
  is looked up also without the characters at either end that are letters of the scheme
  (`lstrip`, `rstrip` and `strip("Bearer ")` strip a set of characters, not a prefix:
  `Bearer Bea<id>ra` reads as `<id>`); more than `MAX_SCHEME_RUN` of them is refused.
- **A scheme header** (`SESSIONS_GATEWAY_HEADER_SCHEME`): a value that contains the scheme
  anywhere (compared case-insensitively) must be exactly `<scheme>`, one or more spaces, and
  the id, surrounding whitespace aside; FastAPI's `HTTPBearer` and `OAuth2PasswordBearer` read
  the same id. The scheme alone is no session. A value without the scheme (`Basic ...`, or a
  bare id) is no session either; as a second defence its whole value, its first, second and
  last words (and those of its UTF-8 text) and the value with the scheme's letters stripped
  from its ends are looked up, for values of up to 8 KiB, but it is not refused while stale or
  without a tenant: the supported reader compares the scheme. `ß` counts as `ss` in finding
  the scheme (`.upper()` and `.casefold()` make it so).
- **A query parameter** (`SESSIONS_GATEWAY_QUERY_PARAM`): every value of it, as Starlette's
  `request.query_params` finds them (`parse_qsl` of the query string's latin-1 text: pairs
  split on `&`, names percent-decoded, so `?%61ccess_token=` is the parameter), each matched
  by one regular expression over the raw query string (a scan in C, stopped at the 17th),
  must be the id as is, or empty (no session): `%22`, `+`, `%2D`, `Bearer+<id>` are refused.

- **A WebSocket's subprotocols** (`SESSIONS_GATEWAY_SUBPROTOCOL_MARKER`): the one after the
  marker (`new WebSocket(url, ["access_token", id])`), in the server's list and in the headers
  it came from, held to the parameter's spelling; every other offered one that could be an id
  is looked up too.

A request is refused (`TOO_MANY`) when it presents more than `MAX_CANDIDATES` values of the
parameter or subprotocols, and by the middleware when it carries more than `MAX_CANDIDATES`
session headers.
"""

from __future__ import annotations

import re
from collections.abc import Container
from typing import NamedTuple, TypeVar

from starlette.types import Scope

from auth_gateway.cookies import MAX_SESSION_ID, STR_WHITESPACE

MAX_CANDIDATES = 16
"""Session headers in one request, or values of the session parameter in one query string,
that are looked up; past this the request is refused (a client sends one)."""
MAX_SCHEME_RUN = 8
"""Characters at the ends of an id that are letters of the scheme, each looked up without (at
most 25 readings): a random base64url id has more in about 1 in 15 million for `Bearer` (four
distinct letters), 1 in 2 million for a scheme of five or six (`Token`, `Session`), 1 in
110,000 for `Negotiate`."""
MAX_WORDS_BYTES = 8192
"""A value without the scheme longer than this is not split into words (its second defence):
it is refused instead."""
_CACHED_VALUES = 4096
_CACHED_VALUE_BYTES = 512
_CACHED_READINGS = 8  # at most 4,096 values of 512 bytes and 8 readings of each: under 8 MB
MAX_READINGS = 128
"""Readings looked up for one request's session headers, parameter and subprotocols in all
(a well-formed session makes 1 to 25; a value without the scheme made up to 83 before its
cuts were also read without their whitespace, stop 68, and a hostile one now up to a few
hundred, refused alone): past this the request is refused, which bounds its hashing (16
headers of 83 cost 11 ms, a review)."""
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
"""An RFC 9110 token: what a subprotocol is."""
_ID = re.compile(rb"[A-Za-z0-9_-]{1,128}")
"""A session id under a scheme or in the parameter: base64url, as `token_urlsafe` issues."""


class Presented(NamedTuple):
    """What one header or query string presents: every value that could be read as an id (the
    id the application reads first, when there is one), that id, and whether it carries a
    session at all."""

    candidates: tuple[bytes, ...]
    session_id: str | None
    present: bool


NOTHING = Presented((), None, False)
TOO_MANY = Presented((), None, True)
"""More than `MAX_CANDIDATES` values: not looked up, so not vouched for (the middleware
refuses it, compared by identity)."""
MALFORMED = Presented((), None, True)
"""A session not in its one spelling: refused (by identity)."""


class _Scheme:
    """What holding an id to its spelling needs of the scheme (None: no scheme)."""

    def __init__(self, scheme: str | None) -> None:
        self.lowered = scheme.lower().encode("ascii") if scheme else None
        both = (scheme or "").lower() + (scheme or "").upper()
        self.letters = frozenset(both.encode("ascii"))
        self.letters_text = both + " "
        """The scheme's letters in both cases and the space: what `strip("Bearer ")` and its
        spellings strip."""

    def readings(self, token: bytes) -> tuple[bytes, ...] | None:
        """`token` (a well-formed id, first) and what stripping letters of the scheme from
        either end leaves of it (`lstrip`, `rstrip` and `strip("Bearer ")` strip a set of
        characters, not a prefix); None when it contains the scheme or has more than
        `MAX_SCHEME_RUN` of its letters at its ends."""
        if self.lowered is None:
            return (token,)
        if self.lowered in token.lower():
            return None
        letters = self.letters
        if token[0] not in letters and token[-1] not in letters:
            return (token,)  # the usual case: nothing for a strip to strip
        front, back = _ends(token, letters, MAX_SCHEME_RUN + 1)  # past the bound is enough
        if front + back > MAX_SCHEME_RUN:
            return None
        return tuple(dict.fromkeys(_cuts(token, front, back)))  # the token first


Text = TypeVar("Text", str, bytes)


def _ends(text: Text, letters: Container[object], cap: int) -> tuple[int, int]:
    """How many characters at the start of `text`, and then at its end, are in `letters`,
    at most `cap` each: what `lstrip` and `rstrip` of those letters take."""
    size = len(text)
    front = 0
    while front < min(size, cap) and text[front] in letters:
        front += 1
    back = 0
    while back < min(size - front, cap) and text[size - 1 - back] in letters:
        back += 1
    return front, back


def _cuts(text: Text, front: int, back: int) -> list[Text]:
    """`text` without each number up to `front` of its first characters and up to `back` of
    its last, never empty; `text` itself first."""
    size = len(text)
    return [text[a : size - b] for a in range(front + 1) for b in range(back + 1) if a < size - b]


def _utf8(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def _words(text: str) -> set[str]:
    """The whole value, and its first, second and last words."""
    words = text.split()
    return {text, *words[:2], *words[-1:]}


class SchemeHeader:
    """Reads a header holding `<scheme> <id>` (`Authorization: Bearer <id>`), with a cache: a
    client sends the same header on every request (what it holds is cached, never whether it
    is revoked, which the middleware looks up every time)."""

    def __init__(self, scheme: str) -> None:
        self.scheme = scheme.lower()
        self._strict = _Scheme(scheme)
        self._lowered = self.scheme.encode("ascii")
        self._well_formed = re.compile(
            re.escape(scheme.encode("ascii")) + rb" +([A-Za-z0-9_-]{1,128})", re.IGNORECASE
        )
        self._cache: dict[bytes, Presented] = {}

    def read(self, value: bytes) -> Presented:
        """The session `value` (the raw header) presents, `MALFORMED`, or what an application
        that ignores the scheme could read from it."""
        found = self._cache.get(value)
        if found is None:
            found = self._read(value)
            if len(value) <= _CACHED_VALUE_BYTES and len(found.candidates) <= _CACHED_READINGS:
                if len(self._cache) >= _CACHED_VALUES:
                    self._cache.clear()  # crude, but O(1) amortised and bounded
                self._cache[value] = found
        return found

    def _read(self, value: bytes) -> Presented:
        if not self._mentions_scheme(value):
            return self._without_scheme(value)
        text = value.strip(STR_WHITESPACE)  # as str.strip strips the latin-1 text
        if text.lower() == self._lowered:
            return NOTHING  # the scheme alone: no credential to read
        found = self._well_formed.fullmatch(text)
        if found is None:
            return MALFORMED
        token = found.group(1)
        readings = self._strict.readings(token)
        if readings is None:
            return MALFORMED
        return Presented(readings, token.decode("ascii"), True)

    def _mentions_scheme(self, value: bytes) -> bool:
        """Whether `value` spells the scheme anywhere, to any case comparison an app makes.
        ASCII: `bytes.lower()`. Otherwise its latin-1 and its UTF-8 text, case-folded and
        upper-cased: "ß" folds to "ss", the long s (U+017F) and the dotless i (U+0131)
        upper-case to "S" and "I", the Kelvin sign (U+212A) lowers to "k" (`Seßion` is
        `Session` to such an app)."""
        if self._lowered in value.lower():
            return True
        if value.isascii():
            return False
        scheme = self.scheme
        for text in (value.decode("latin-1"), _utf8(value)):
            if scheme in text.casefold() or scheme in text.upper().lower():
                return True
        return False

    def _without_scheme(self, value: bytes) -> Presented:
        """A value without the scheme: no session; what an app ignoring the scheme reads. One
        longer than `MAX_WORDS_BYTES` is not read, so not vouched for: refused (MALFORMED).
        Passed on as no session, `Basic <8 KiB of padding> <revoked id>` reached an app that
        takes the last word (a review, stop 70)."""
        if len(value) > MAX_WORDS_BYTES:
            return MALFORMED
        texts = [value.decode("latin-1").strip()]
        if not value.isascii():  # an app decoding the raw header as UTF-8
            texts.append(_utf8(value).strip())
        readings: set[str] = set()
        for text in texts:
            readings |= _words(text)
            # strip("Bearer "), lstrip, rstrip of a bare value: an app strips one spelling of
            # the scheme's letters, so every cut within the runs of them at either end (at
            # most 8 each) is looked up, as for an id under the scheme; and each cut stripped
            # of whitespace, as `.strip("Bearer ").strip()` reads `B\t<id>B` (the tab stops
            # the first strip: found by the property, stop 68)
            cuts = _cuts(text, *_ends(text, self._strict.letters_text, MAX_SCHEME_RUN))
            readings.update(cuts)
            readings.update(cut.strip() for cut in cuts)
        ids = (r.encode() for r in readings if 0 < len(r) <= MAX_SESSION_ID)
        return Presented(tuple(ids), None, False)


class QueryParameter:
    """Reads the session parameter `name` out of a query string, as Starlette does."""

    def __init__(self, name: str, scheme: str | None = None) -> None:
        self.name = name
        self._raw_name = name.encode("ascii")
        self._strict = _Scheme(scheme)
        # the name with each character as itself or percent-encoded (either case of hex),
        # as a whole pair's name: after an "&" (one is put before the query string, so the
        # pattern starts with a literal the engine searches for fast), up to "=", "&" or the
        # end; parse_qsl yields the same pairs (a differential fuzz of 600,000, a review)
        spelled = "".join(f"(?:{re.escape(c)}|%{_hex(ord(c))})" for c in name)
        self._pairs = re.compile(rf"&{spelled}(?:=([^&]*))?(?=&|\Z)".encode())

    def read(self, query_string: bytes) -> Presented:
        """The ids of the parameter in `query_string` (the last one's first), `MALFORMED` or
        `TOO_MANY`."""
        if not query_string or (
            self._raw_name not in query_string and b"%" not in query_string
        ):  # the name appears as itself unless percent-encoded (names are unreserved)
            return NOTHING
        values: list[bytes] = []
        for pair in self._pairs.finditer(b"&" + query_string):  # stopped at the 17th
            if len(values) == MAX_CANDIDATES:
                return TOO_MANY
            values.append(pair[1] or b"")
        candidates: list[bytes] = []
        for raw in reversed(values):  # the last, which query_params[name] reads, first
            if not raw:
                continue  # blank: no session
            readings = self._strict.readings(raw) if _ID.fullmatch(raw) else None
            if readings is None:
                return MALFORMED
            candidates.extend(readings)
        if not candidates:
            return NOTHING
        last = values[-1]
        return Presented(tuple(candidates), last.decode("ascii") if last else None, True)


class Subprotocols:
    """Reads a WebSocket handshake's session from its subprotocols: the one after `marker`
    (`new WebSocket(url, ["access_token", id])`, which a browser can send where it can set no
    header), from the server's list (`scope["subprotocols"]`, which uvicorn splits from each
    `Sec-WebSocket-Protocol` header on "," and strips) and the headers themselves, as an app
    may read either."""

    def __init__(self, marker: str, scheme: str | None = None) -> None:
        self.marker = marker
        self._strict = _Scheme(scheme)

    def read(self, scope: Scope) -> Presented:
        """The id after the marker (held to its spelling, as the parameter's: `MALFORMED`
        otherwise), every other offered subprotocol that could be an id (an app reading
        `subprotocols[1]` or the last), or `TOO_MANY`."""
        listed_raw = scope.get("subprotocols") or ()
        headers = [v for n, v in scope["headers"] if n.lower() == b"sec-websocket-protocol"]
        if not listed_raw and not headers:
            return NOTHING
        # counted before anything is split or copied: 127 headers of 8,000 commas each cost
        # 0.13 s a handshake otherwise (the review)
        if (
            len(listed_raw) > MAX_CANDIDATES
            or sum(v.count(b",") + 1 for v in headers) > MAX_CANDIDATES
        ):
            return TOO_MANY
        listed = [str(p) for p in listed_raw]
        in_headers = [p.strip() for v in headers for p in v.decode("latin-1").split(",")]
        for protocol in (*listed, *in_headers):
            # a subprotocol is a token (RFC 6455), which is all a browser can offer; one with
            # a space, ";" or a quote is read as two or three by some app (.split())
            if protocol and _TOKEN.fullmatch(protocol) is None:
                return MALFORMED
        marker = self.marker
        session_id: str | None = None
        found: dict[bytes, int] = {}  # ordered: the id the app reads first
        for offered in (listed, in_headers):  # uvicorn's list, then the headers it came from
            for at, protocol in enumerate(offered):
                raw = protocol.encode("latin-1", "replace")
                if at == 0 or offered[at - 1] != marker:
                    if protocol != marker and 0 < len(raw) <= MAX_SESSION_ID:
                        found[raw] = 0
                    continue
                readings = self._strict.readings(raw) if _ID.fullmatch(raw) else None
                if readings is None:
                    return MALFORMED
                if session_id is None:  # subprotocols.index(marker) + 1, in uvicorn's list
                    session_id = protocol
                    found = {**dict.fromkeys(readings, 0), **found}
                else:
                    found.update(dict.fromkeys(readings, 0))
        return Presented(tuple(found), session_id, session_id is not None)


def _hex(byte: int) -> str:
    """A byte's two hex digits as a pattern matching either case: 5F as 5[Ff]."""
    return "".join(f"[{d.upper()}{d.lower()}]" if d.isalpha() else d for d in f"{byte:02X}")
