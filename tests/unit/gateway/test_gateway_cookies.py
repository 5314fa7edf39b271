"""Parsing the session cookie as the app's framework does, and the cache of headers seen."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import cookie_parser

from auth_gateway import cookies as cookies_module
from auth_gateway.cookies import (
    MAX_SESSION_COOKIE_VALUES,
    STR_WHITESPACE,
    TOO_MANY,
    CookieParser,
    printable_id,
)


@pytest.mark.parametrize(
    ("header", "candidates", "session_id"),
    [
        (b"sid=abc", (b"abc",), "abc"),
        (b"theme=dark; sid=abc; lang=en", (b"abc",), "abc"),
        (b'sid="abc"', (b"abc",), "abc"),
        (b'sid="\\162\\145v\\-1"', (b"rev-1",), "rev-1"),  # as http.cookies unquotes it
        (b"sid = abc ;x=1", (b"abc",), "abc"),
        (b"sid=a; sid=b", (b"a", b"b"), "b"),  # request.cookies keeps the last
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


# Ways of writing the revoked id V that Starlette reads back as V (issue 13, item 2 and
# the forms tests/reliability/test_hostile_gateway.py already sends).
V = "revoked-1"
SPELLINGS_OF_V = [
    b"sid=\xa0V",
    b"sid=V\xa0",
    b"\xa0sid=V",
    b"sid=\x85V",
    b"sid=\x1cV\x1f",
    b"\tsid\t=\tV\t",
    b'sid="V"',
    b'sid=\xa0"V"\x85',
    b'sid="\\162\\145voked-1"',
    b'sid="\\r\\e\\voked-1"',
    b"theme=dark;sid=V",
    b"sid=live; sid=V",
    b"sid=V; sid=live",
    b"sid=V;",
    b";;sid=V;;",
]


@pytest.mark.parametrize("header", SPELLINGS_OF_V)
def test_every_spelling_starlette_reads_as_the_id_is_a_candidate(header: bytes) -> None:
    header = header.replace(b"V", V.encode())
    assert V in cookie_parser(header.decode("latin-1")).values() or b"live" in header
    assert V.encode() in CookieParser("sid").parse(header).candidates


def test_the_session_id_is_the_value_request_cookies_holds() -> None:
    parser = CookieParser("sid")
    for header in [b"sid=a; sid=b", b"sid=\xa0a", b'sid="a"; other=1', b"sid=a; sid=\xff"]:
        read = cookie_parser(header.decode("latin-1")).get("sid")
        assert parser.parse(header).session_id == (read if read and read.isascii() else None)


def test_str_whitespace_strips_bytes_exactly_as_str_strip_strips_latin1() -> None:
    for byte in range(256):
        for raw in (bytes([byte]) + b"id", b"id" + bytes([byte]), bytes([byte, byte]) + b"i"):
            assert raw.strip(STR_WHITESPACE) == raw.decode("latin-1").strip().encode("latin-1")


# fmt: off
PIECES = [
    "sid", "SID", "Sid", "sid2", "xsid", "revoked-1", "rev", "oked-1", "live", "%72",
    "=", ";", ",", '"', "\\", "\\162", "\\-", " ", "\t", "\xa0", "\x85", "\x1c", "\x00",
]
# fmt: on


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=14))
def test_any_value_starlette_reads_for_the_cookie_is_a_candidate(pieces: list[str]) -> None:
    header = "".join(pieces)
    read = cookie_parser(header).get("sid")
    parsed = CookieParser("sid").parse(header.encode("latin-1"))
    if read is not None and 0 < len(read) <= 128:
        assert read.encode("latin-1") in parsed.candidates, (header, read)
    assert parsed.session_id == (printable_id(read.encode("latin-1")) if read else None)


def _every_piece(header: str, name: str) -> list[str]:
    """What the parser read before 2026-12-06: every `;`-piece through `cookie_parser`."""
    return [v for piece in header.split(";") if (v := cookie_parser(piece).get(name)) is not None]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=14))
def test_reading_only_the_pieces_naming_the_cookie_finds_every_value_as_before(
    pieces: list[str],
) -> None:
    header = "".join(pieces)
    before = [v.encode("latin-1") for v in _every_piece(header, "sid")]
    parsed = CookieParser("sid").parse(header.encode("latin-1"))
    if len(before) > MAX_SESSION_COOKIE_VALUES:
        assert parsed is TOO_MANY
        return
    assert parsed.candidates == tuple(v for v in before if 0 < len(v) <= 128)
    assert parsed.present == bool(before)
    assert parsed.session_id == (printable_id(before[-1]) if before else None)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The pieces the parser hands to Starlette's `cookie_parser`, in order."""
    handed: list[str] = []

    def counted(piece: str) -> dict[str, str]:
        handed.append(piece)
        return cookie_parser(piece)

    monkeypatch.setattr(cookies_module, "cookie_parser", counted)
    return handed


def test_a_header_of_many_pieces_parses_only_those_naming_the_cookie(calls: list[str]) -> None:
    # every piece went through cookie_parser: 32 KiB of ";" cost 15 ms of the event loop, a
    # hundred times a request's check (a review, 2026-12-06)
    parser = CookieParser("sid")
    many = b";" * 32_000 + b"sid=a; " + b"xsid=b;" * 1000 + b"other=sid;" * 1000
    assert parser.parse(many).candidates == (b"a",)
    assert calls == ["sid=a"]


def test_a_header_with_more_values_of_the_cookie_than_a_browser_sends_is_not_vouched_for(
    calls: list[str],
) -> None:
    parser = CookieParser("sid")
    enough = b";".join(b"sid=v%d" % n for n in range(MAX_SESSION_COOKIE_VALUES))
    assert len(parser.parse(enough).candidates) == MAX_SESSION_COOKIE_VALUES
    calls.clear()
    assert parser.parse(b"sid=a;" * 5000) is TOO_MANY
    assert len(calls) == MAX_SESSION_COOKIE_VALUES  # the next one is not parsed
