"""The registry's log line for a failed batch escapes what the database error quotes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError

from session_contracts.escaping import MAX_REASON_CHARS
from session_registry.entrypoints.consumer import ConsumerLoop
from session_registry.service_layer.ingest import IngestOutcome

HOSTILE = "value (x\nERROR forged line\u2028\u202eevil\x1b[2J)"


async def test_a_failed_batchs_log_line_holds_only_escaped_text(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = ConsumerLoop(
        None,  # never reached: the re-seek is replaced below
        [],
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        "registry",
        max_records=1,
        poll_timeout_ms=1,
    )

    async def reseeked() -> None:
        return None

    monkeypatch.setattr(loop, "_reseek_when_readable", reseeked)

    async def failing() -> IngestOutcome:
        orig: Any = Exception(f"duplicate key {HOSTILE * 100}")
        raise DBAPIError("INSERT ...", None, orig)

    task = asyncio.ensure_future(failing())
    assert await loop._settle(task) is False
    (line,) = [r.getMessage() for r in caplog.records if "batch failed" in r.getMessage()]
    assert "x\\nERROR forged line\\u2028\\u202eevil\\u001b[2J" in line
    assert not any(c in line for c in "\n\x1b\u2028\u202e"), line
    assert len(line) <= len("batch failed, retrying from the stored positions: ") + MAX_REASON_CHARS
