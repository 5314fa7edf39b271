"""Session settings per tenant and session type: defaults, rules, and the change event."""

from __future__ import annotations

from typing import Literal, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from session_contracts.models import SessionPolicy, TenantId, Timestamp, UserId

SettableType = Literal["browser", "mobile"]
SETTABLE_TYPES: tuple[SettableType, ...] = ("browser", "mobile")

HOUR, DAY = 3600, 86400
DEFAULT_POLICIES: dict[SettableType, SessionPolicy] = {
    "browser": SessionPolicy(max_session_seconds=30 * DAY, idle_timeout_seconds=8 * HOUR),
    "mobile": SessionPolicy(max_session_seconds=180 * DAY, idle_timeout_seconds=30 * DAY),
}
"""In force for every tenant that never changed its settings."""

MIN_SECONDS = 60
MAX_SECONDS = 10 * 366 * DAY


class PolicyChange(BaseModel):
    """New limits for one session type; idle timeout no longer than the maximum length."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_session_seconds: int = Field(ge=MIN_SECONDS, le=MAX_SECONDS)
    idle_timeout_seconds: int = Field(ge=MIN_SECONDS, le=MAX_SECONDS)

    @model_validator(mode="after")
    def _idle_within_max(self) -> Self:
        if self.idle_timeout_seconds > self.max_session_seconds:
            raise ValueError(
                "idle_timeout_seconds must not exceed max_session_seconds "
                f"({self.idle_timeout_seconds} > {self.max_session_seconds})"
            )
        return self

    def policy(self) -> SessionPolicy:
        """The limits as the contract's policy object."""
        return SessionPolicy(**self.model_dump())


class SessionSettingsChanged(BaseModel):
    """Record on the compacted `sessions.settings` topic, keyed by tenant: its full settings.

    Login services keep the latest record per tenant and snapshot `settings[type]` into each
    new session's `policy`; a tenant without a record uses `DEFAULT_POLICIES`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["session_settings.changed"] = "session_settings.changed"
    schema_version: Literal[1] = 1
    event_id: UUID
    occurred_at: Timestamp
    tenant_id: TenantId
    changed_by: UserId
    settings: dict[SettableType, SessionPolicy]


def effective(stored: dict[SettableType, SessionPolicy]) -> dict[SettableType, SessionPolicy]:
    """Every settable type's policy: the stored one, else the default."""
    return {kind: stored.get(kind, DEFAULT_POLICIES[kind]) for kind in SETTABLE_TYPES}
