"""The "unavailable" log lines escape the request path and the error (issue 12 item 9).

The path a handler logs is percent-decoded: `%E2%80%A8` (U+2028), `%E2%80%AE` (U+202E), `%1B`
arrive as the characters themselves, and written raw they would forge a log line of their own,
drive a terminal or reverse what follows on screen. (`%0A`, `%0D` and `%09` are sent too;
Starlette builds `request.url` with `urlsplit`, which drops them, so they never reach the line
raw either.) The error's own text can hold anything. The handlers `install_error_handlers` puts
on the app write both escaped (`escape_reason`), whichever dependency is down.
"""

from __future__ import annotations

import logging
import re

import httpx
import pytest
from admin_api_support import RecordingBus, make_settings
from sqlalchemy.exc import OperationalError

from admin_api.adapters.bus import BusUnavailable
from admin_api.app import create_app

HOSTILE = "a%0Aforged line%0D%09%E2%80%A8b%E2%80%A9c%E2%80%AEd%1B[31me%C2%85f%E2%81%A6g%00h"
"""Percent-encoded: LF, CR, tab, U+2028, U+2029, U+202E, ESC, NEL (U+0085), U+2066, NUL."""
IN_THE_PATH = ("\\u2028", "\\u2029", "\\u202e", "\\u001b", "\\u0085", "\\u2066", "\\u0000")
"""How the path's characters read once escaped."""
RAW = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
"""What must never reach a log line: control, separator, bidi and surrogate characters."""
ERRORS: dict[str, tuple[Exception, tuple[str, ...]]] = {
    "database": (
        OperationalError("SELECT 1", {}, Exception("gone\nINFO forged\u202e")),
        ("gone\\nINFO forged\\u202e",),
    ),
    "os": (ConnectionRefusedError(111, "refused\u2028INFO forged"), ("refused\\u2028INFO forged",)),
    "kafka": (
        BusUnavailable("broker down\r\nINFO forged\u2066\t"),
        ("broker down\\r\\nINFO forged\\u2066\\t",),
    ),
}
"""What each dependency raises, and how its text must read in the line."""


@pytest.mark.parametrize("failure", list(ERRORS))
async def test_the_unavailable_log_line_holds_no_raw_control_or_bidi_character(
    failure: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(make_settings("sqlite+aiosqlite:///unused.db"), bus=RecordingBus())

    async def fail(rest: str) -> None:
        raise ERRORS[failure][0]

    # a route of the real app, with the real error handlers, that the dependency fails under
    app.add_api_route("/probe/{rest}", fail, methods=["GET"])
    caplog.set_level(logging.WARNING, logger="admin_api.entrypoints.errors")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as client:
        response = await client.get(f"/probe/{HOSTILE}")

    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    (record,) = [r for r in caplog.records if r.name == "admin_api.entrypoints.errors"]
    line = record.getMessage()
    assert RAW.search(line) is None, ascii(line)
    assert "\n" not in caplog.text.rstrip("\n"), ascii(caplog.text)
    # escaped, not dropped: the line still says what the path and the error held
    path = line.split("unavailable for ", 1)[1].split(": ", 1)[0]
    assert path.startswith("/probe/aforged line"), ascii(line)
    for escaped in IN_THE_PATH:
        assert escaped in path, (escaped, ascii(line))
    for escaped in ERRORS[failure][1]:
        assert escaped in line, (escaped, ascii(line))
