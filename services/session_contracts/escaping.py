"""Reasons and other record-borne text made safe to write to a log line or a dead-letter header.

A reason can carry what a producer chose: a field name, a character pydantic quotes, an
exception's text. Written raw, a newline (or U+2028, U+0085) forges a log line of its own, an
escape sequence drives the reader's terminal, U+202E reverses what follows on screen, and a
lone surrogate cannot even be encoded as UTF-8 for a Kafka header. `escape_reason` is the one
place such text is made inert, by escaping rather than dropping, so the reason still says what
the record held:

- control characters: C0 (U+0000-U+001F), DEL (U+007F), C1 (U+0080-U+009F); `\\n`, `\\r` and
  `\\t` as such, every other one as `\\u001b`;
- line and paragraph separators (U+2028, U+2029);
- bidirectional controls, Unicode's Bidi_Control set: U+061C, U+200E, U+200F, U+202A-U+202E,
  U+2066-U+2069 (`\\u202e`);
- lone surrogates (U+D800-U+DFFF, `\\ud800`).

Backslashes are kept as they are: text such as Python's `'\\x00'` stays readable, and an escape
spelled by the sender can only ever look like one, never become the character. The result is at
most `limit` characters (`MAX_REASON_CHARS`); a longer one keeps its beginning and end and says
how many characters of the middle were cut. Applying the function again changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_REASON_CHARS = 1024
"""The longest reason written to a log line or a `dlq.reason` header, in characters."""

_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
_RANGES = [
    (0x00, 0x1F),
    (0x7F, 0x9F),
    (0x061C, 0x061C),
    (0x200E, 0x200F),
    (0x2028, 0x202E),
    (0x2066, 0x2069),
    (0xD800, 0xDFFF),
]
_ESCAPES = {
    code: _NAMED.get(code, f"\\u{code:04x}")
    for low, high in _RANGES
    for code in range(low, high + 1)
}
_UNSAFE = re.compile("[" + "".join(f"\\u{low:04x}-\\u{high:04x}" for low, high in _RANGES) + "]")
_SHORTEST_LIMIT = 64


def escape_reason(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """`text` with control, separator, bidirectional and surrogate characters escaped
    (`\\n`, `\\u202e`), at most `limit` characters: a longer one keeps its beginning and its
    end (where a reason says what is wrong) and says how much of the middle was cut."""
    if limit < _SHORTEST_LIMIT:
        raise ValueError(f"limit must be at least {_SHORTEST_LIMIT} characters")
    escaped = text.translate(_ESCAPES) if _UNSAFE.search(text) is not None else text
    if len(escaped) <= limit:
        return escaped
    widest = f" ...[{len(text)} characters cut]... "
    budget = limit - len(widest)
    head = _escaped_within(text, budget * 2 // 3)
    tail = _escaped_within(reversed(text), budget - sum(map(len, head)))[::-1]
    cut = len(text) - len(head) - len(tail)
    return f"{''.join(head)} ...[{cut} characters cut]... {''.join(tail)}"


def _escaped_within(chars: Iterable[str], budget: int) -> list[str]:
    """The escaped forms of the leading `chars` whose total length stays within `budget`
    (whole escapes only: a cut `\\u20` would read as something it is not)."""
    kept: list[str] = []
    for char in chars:
        escaped = _ESCAPES.get(ord(char), char)
        budget -= len(escaped)
        if budget < 0:
            break
        kept.append(escaped)
    return kept
