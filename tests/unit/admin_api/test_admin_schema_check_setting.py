"""`SESSIONS_SCHEMA_CHECK_SECONDS`: how often an admin API process reads the schema's standing
besides `/readyz`. A value that would spin the read (negative, NaN) or never run it while
looking set (infinity, past an hour) is refused, naming the setting."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from admin_api.settings import AdminApiSettings

NAME = "SESSIONS_SCHEMA_CHECK_SECONDS"


@pytest.mark.parametrize("value", ["-1", "-0.5", "3601", "nan", "inf", "-inf", "", "minute"])
def test_an_out_of_range_interval_is_refused(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NAME, value)
    with pytest.raises(ValidationError, match="schema_check_seconds"):
        AdminApiSettings(_env_file=None, environment="development")


def test_the_interval_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert AdminApiSettings(_env_file=None, environment="development").schema_check_seconds == 60
    for value, expected in (("0", 0.0), ("0.05", 0.05), ("3600", 3600.0)):
        monkeypatch.setenv(NAME, value)
        settings = AdminApiSettings(_env_file=None, environment="development")
        assert settings.schema_check_seconds == expected
