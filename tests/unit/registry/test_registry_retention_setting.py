"""`SESSIONS_ENDED_RETENTION_DAYS` as an operator (or a bad deploy file) sets it: 0 keeps every
ended session, a negative, fractional, huge or non-numeric value is refused naming the setting,
never read as "delete now"."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from session_contracts.topics import COMMANDS_RETENTION_DAYS
from session_registry.settings import MIN_AUDIT_RETENTION_DAYS, RegistrySettings


def test_the_default_is_thirty_days_and_zero_keeps_every_ended_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SESSIONS_ENDED_RETENTION_DAYS", raising=False)
    assert RegistrySettings().ended_retention == timedelta(days=30)
    monkeypatch.setenv("SESSIONS_ENDED_RETENTION_DAYS", "0")
    assert RegistrySettings().ended_retention is None
    monkeypatch.setenv("SESSIONS_ENDED_RETENTION_DAYS", "1")
    assert RegistrySettings().ended_retention == timedelta(days=1)


@pytest.mark.parametrize("value", ["-1", "36601", "1.5", "", "null", "30d", "1e9"])
def test_a_value_that_is_no_number_of_days_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SESSIONS_ENDED_RETENTION_DAYS", value)
    with pytest.raises(ValidationError, match="ended_retention_days"):
        RegistrySettings()


def test_the_audit_trail_is_kept_400_days_by_default_and_never_less_than_the_commands_topic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SESSIONS_AUDIT_RETENTION_DAYS", raising=False)
    assert RegistrySettings().audit_retention == timedelta(days=400)
    monkeypatch.setenv("SESSIONS_AUDIT_RETENTION_DAYS", "0")
    assert RegistrySettings().audit_retention is None
    monkeypatch.setenv("SESSIONS_AUDIT_RETENTION_DAYS", str(MIN_AUDIT_RETENTION_DAYS))
    assert RegistrySettings().audit_retention == timedelta(days=MIN_AUDIT_RETENTION_DAYS)
    # a command the commands topic still holds, read again, must still find its audit row
    monkeypatch.setenv("SESSIONS_AUDIT_RETENTION_DAYS", str(COMMANDS_RETENTION_DAYS))
    refused = r"audit_retention_days must be 0 \(keep\) or at least"
    with pytest.raises(ValidationError, match=refused):
        RegistrySettings()
