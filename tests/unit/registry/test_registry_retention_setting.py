"""The registry's retentions as an operator (or a bad deploy file) sets them:
`SESSIONS_ENDED_RETENTION_DAYS` and `SESSIONS_AUDIT_RETENTION_DAYS`. 0 keeps everything; a
negative, fractional, huge or non-numeric value is refused naming the setting, never read as
"delete now"; the audit trail is never kept for less than the commands topic keeps a command.
And the activity grace (`SESSIONS_ACTIVITY_GRACE_SECONDS`), which holds expiry back and reaches
terminations past a deadline: 0 to one day, whole seconds, anything else refused by name."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from session_contracts.record_signing import RecordSigner
from session_contracts.topics import COMMANDS_RETENTION_DAYS
from session_registry.settings import MIN_AUDIT_RETENTION_DAYS, RegistrySettings

SETTINGS = {  # environment variable: (field, default days, the shortest accepted)
    "SESSIONS_ENDED_RETENTION_DAYS": ("ended_retention", 30, 1),
    "SESSIONS_AUDIT_RETENTION_DAYS": ("audit_retention", 400, MIN_AUDIT_RETENTION_DAYS),
}


@pytest.mark.parametrize("variable", SETTINGS)
def test_the_default_holds_and_zero_keeps_everything(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    field, default, shortest = SETTINGS[variable]
    monkeypatch.delenv(variable, raising=False)
    assert getattr(RegistrySettings(), field) == timedelta(days=default)
    monkeypatch.setenv(variable, "0")
    assert getattr(RegistrySettings(), field) is None
    monkeypatch.setenv(variable, str(shortest))
    assert getattr(RegistrySettings(), field) == timedelta(days=shortest)


@pytest.mark.parametrize("variable", SETTINGS)
@pytest.mark.parametrize("value", ["-1", "36601", "1.5", "", "null", "30d", "1e9"])
def test_a_value_that_is_no_number_of_days_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=variable.removeprefix("SESSIONS_").lower()):
        RegistrySettings()


@pytest.mark.parametrize("days", range(1, COMMANDS_RETENTION_DAYS + 1))
def test_an_audit_retention_the_commands_topic_outlives_is_refused(
    monkeypatch: pytest.MonkeyPatch, days: int
) -> None:
    # a command the commands topic still holds, read again, must still find its audit row
    monkeypatch.setenv("SESSIONS_AUDIT_RETENTION_DAYS", str(days))
    refused = r"audit_retention_days must be 0 \(keep\) or at least"
    with pytest.raises(ValidationError, match=refused):
        RegistrySettings()


def test_the_activity_grace_defaults_to_two_minutes_and_may_be_off_or_a_day(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SESSIONS_ACTIVITY_GRACE_SECONDS", raising=False)
    assert RegistrySettings().activity_grace == timedelta(minutes=2)
    for seconds in (0, 86_400):
        monkeypatch.setenv("SESSIONS_ACTIVITY_GRACE_SECONDS", str(seconds))
        assert RegistrySettings().activity_grace == timedelta(seconds=seconds)


@pytest.mark.parametrize("value", ["-1", "86401", "1.5", "", "null", "2m", "1e9", "inf"])
def test_an_activity_grace_that_is_no_number_of_seconds_up_to_a_day_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    # a negative grace would expire sessions before their deadline; a huge one would keep
    # expired sessions open and let a termination reach sessions long expired
    monkeypatch.setenv("SESSIONS_ACTIVITY_GRACE_SECONDS", value)
    with pytest.raises(ValidationError, match="activity_grace_seconds"):
        RegistrySettings()


def test_record_signing_keys_are_read_checked_and_never_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`SESSIONS_RECORD_SIGNING_KEYS`: comma-separated, each at least 32 characters; unset,
    unsigned expiries are applied (as before the setting)."""
    monkeypatch.delenv("SESSIONS_RECORD_SIGNING_KEYS", raising=False)
    assert RegistrySettings().signed_expiries is None
    first, second = "k" * 32, "an-older-key-still-verifying-records"
    monkeypatch.setenv("SESSIONS_RECORD_SIGNING_KEYS", f"{first}, {second}")
    monkeypatch.setenv("SESSIONS_RECORD_SIGNING_SINCE", "2026-12-06T00:00:00Z")
    settings = RegistrySettings()
    expiries = settings.signed_expiries
    assert expiries is not None and expiries.since_ms == 1_796_515_200_000
    headers = expiries.signer.headers(b"k", b"v")
    assert RecordSigner([first]).verify(b"k", b"v", headers)  # the first signs
    shown = repr(settings) + str(settings.model_dump()) + settings.model_dump_json()
    assert first not in shown and second not in shown
    for value, said in [
        ("k" * 31, "key 1 is shorter than 32 characters"),
        (f"{first},", "key 2 is empty"),
        (f"{first},{first}", "a key is listed twice"),
    ]:
        monkeypatch.setenv("SESSIONS_RECORD_SIGNING_KEYS", value)
        with pytest.raises(ValidationError, match=said) as refused:
            RegistrySettings()
        # the error names the setting, never the keys (a field validator's echoed its input)
        assert first not in str(refused.value) and "k" * 31 not in str(refused.value)
    monkeypatch.setenv("SESSIONS_RECORD_SIGNING_KEYS", first)
    # a moment to come would apply every unsigned expiry until then: refused
    monkeypatch.setenv("SESSIONS_RECORD_SIGNING_SINCE", "2999-01-01T00:00:00Z")
    with pytest.raises(ValidationError, match="record_signing_since is later than now"):
        RegistrySettings()
    monkeypatch.delenv("SESSIONS_RECORD_SIGNING_KEYS")
    monkeypatch.setenv("SESSIONS_RECORD_SIGNING_SINCE", "2026-12-06T00:00:00Z")
    with pytest.raises(ValidationError, match="set without record_signing_keys"):
        RegistrySettings()


def test_a_database_password_is_never_in_a_settings_objects_repr() -> None:
    """No line prints a settings object today; one that did would have printed the read
    model's password (a review, stop 71)."""
    from admin_api.settings import AdminApiSettings

    url = "postgresql+asyncpg://sessions:hunter2-secret@db.internal/sessions"
    admin = AdminApiSettings(_env_file=None, environment="development", database_url=url)
    registry = RegistrySettings(_env_file=None, database_url=url)
    for settings in (admin, registry):
        assert settings.database_url == url
        assert "hunter2-secret" not in repr(settings) + str(settings)
