"""Parsing the session cookie, and the cache of headers already parsed."""

from __future__ import annotations

import pytest

from auth_gateway.cookies import CookieParser, printable_id


@pytest.mark.parametrize(
    ("header", "candidates", "session_id"),
    [
        (b"sid=abc", (b"abc",), "abc"),
        (b"theme=dark; sid=abc; lang=en", (b"abc",), "abc"),
        (b'sid="abc"', (b"abc",), "abc"),
        (b'sid="\\162\\145v\\-1"', (b"rev-1",), "rev-1"),  # as http.cookies unquotes it
        (b"sid = abc ;x=1", (b"abc",), "abc"),
        (b"sid=a; sid=b", (b"a", b"b"), "a"),
        (b"xsid=a; sidx=b", (), None),
        (b"sid=", (), None),
        (b"sid=" + b"a" * 129, (), None),
        (b"sid=has space", (b"has space",), None),
        (b"sid=caf\xc3\xa9", (b"caf\xc3\xa9",), None),
        (b"nothing=here", (), None),
    ],
)
def test_parse(header: bytes, candidates: tuple[bytes, ...], session_id: str | None) -> None:
    parser = CookieParser("sid")
    first = parser.parse(header)
    assert first.candidates == candidates
    assert first.session_id == session_id
    assert parser.parse(header) == first  # the cached answer is the same


def test_cache_is_bounded_and_skips_long_headers() -> None:
    parser = CookieParser("sid")
    for n in range(10_000):
        parser.parse(b"sid=s%d" % n)
    assert len(parser._cache) <= 4096
    parser._cache.clear()
    parser.parse(b"sid=x; pad=" + b"p" * 2000)
    assert parser._cache == {}


def test_printable_id() -> None:
    assert printable_id(b"abc-_~!") == "abc-_~!"
    assert printable_id(b"") is None
    assert printable_id(b"a\x7f") is None
    assert printable_id(b"a\tb") is None
    assert printable_id(b"x" * 128) == "x" * 128
    assert printable_id(b"x" * 129) is None
