"""JSON logs (SESSIONS_LOG_FORMAT=json): one object a line, tenant, command id and session handle
as fields; plain text stays the default; an unknown format or field is refused by name."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from session_contracts.logs import LogSettings, configure_logging, log_context


@pytest.fixture(autouse=True)
def restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_the_context_and_extra_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json")
    log = logging.getLogger("session_registry.test")
    with log_context(tenant_id="acme", command_id="c-1"):
        log.info("command applied: %d ended", 3, extra={"session_handle": "h-1"})
    log.warning("outside")
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["message"] == "command applied: 3 ended"
    assert first["level"] == "INFO" and first["logger"] == "session_registry.test"
    assert (first["tenant_id"], first["command_id"], first["session_handle"]) == (
        "acme",
        "c-1",
        "h-1",
    )
    assert "time" in first
    assert "tenant_id" not in second  # the context ended with its block


def test_text_is_the_default_and_stays_one_readable_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SESSIONS_LOG_FORMAT", raising=False)
    LogSettings().apply()
    logging.getLogger("x").info("hello %s", "there")
    line = capsys.readouterr().err.strip()
    assert line.endswith("INFO x: hello there")
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_the_format_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONS_LOG_FORMAT", "json")
    assert LogSettings().log_format == "json"
    monkeypatch.setenv("SESSIONS_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        LogSettings()


def test_an_unknown_context_field_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="tenant"), log_context(tenant="acme"):
        pass
