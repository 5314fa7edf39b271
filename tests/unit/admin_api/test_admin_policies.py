"""Session settings rules: defaults, bounds, idle within max, the change record's shape."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from admin_api.domain.policies import PolicyChange, effective
from session_contracts.models import DEFAULT_POLICIES, SessionPolicy, SessionSettingsChanged


def test_defaults_are_the_products() -> None:
    assert DEFAULT_POLICIES["browser"] == SessionPolicy(
        max_session_seconds=30 * 86400, idle_timeout_seconds=8 * 3600
    )
    assert DEFAULT_POLICIES["mobile"] == SessionPolicy(
        max_session_seconds=180 * 86400, idle_timeout_seconds=30 * 86400
    )


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"max_session_seconds": 3600, "idle_timeout_seconds": 7200}, "idle_timeout_seconds"),
        ({"max_session_seconds": 59, "idle_timeout_seconds": 59}, "max_session_seconds"),
        ({"max_session_seconds": 10**10, "idle_timeout_seconds": 60}, "max_session_seconds"),
        ({"max_session_seconds": 3600}, "idle_timeout_seconds"),
    ],
)
def test_bad_changes_name_the_field(values: dict[str, int], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        PolicyChange.model_validate(values)


def test_effective_fills_untouched_types_with_defaults() -> None:
    own = SessionPolicy(max_session_seconds=3600, idle_timeout_seconds=600)
    assert effective({"mobile": own}) == {"browser": DEFAULT_POLICIES["browser"], "mobile": own}


def test_change_record_is_the_full_settings_of_the_tenant() -> None:
    record = SessionSettingsChanged(
        event_id=uuid.uuid4(),
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        tenant_id="acme",
        changed_by="admin-1",
        settings=effective({}),
    )
    body = record.model_dump(mode="json")
    assert body["type"] == "session_settings.changed" and body["schema_version"] == 3
    assert set(body["settings"]) == {"browser", "mobile"}
