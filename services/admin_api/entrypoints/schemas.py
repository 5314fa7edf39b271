"""The HTTP API's response and request bodies: one family per resource."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from session_contracts.models import (
    ONE_TARGET_SCHEMA,
    SessionId,
    SessionPolicy,
    SessionType,
    SettableType,
    TerminationReason,
    Timestamp,
)
from session_contracts.models import (
    SessionFilter as ContractFilter,
)


class SessionPublic(BaseModel):
    """One row of the Active User Sessions list."""

    session_id: str
    user_id: str
    user_name: str
    session_type: SessionType
    ip_address: str = Field(description="The client address when the session was created.")
    created_at: datetime
    last_activity_at: datetime
    expires_at: datetime
    device: str | None
    user_agent: str | None
    policy: SessionPolicy = Field(description="The settings in force when it was created.")
    policy_outdated: bool = Field(
        description="The policy differs from the tenant's current settings for this type."
    )


class SessionsPage(BaseModel):
    """A page of the list, the cursor of the next one, and how many sessions match in all."""

    items: list[SessionPublic]
    next_cursor: str | None
    total: int = Field(
        description="How many sessions match: exactly, or at least this many when "
        "`total_exact` is false."
    )
    total_exact: bool = Field(
        True,
        description="False when `total` is a lower bound: a search's page filled before "
        "every match was read (`count=exact` counts them all).",
    )
    as_of: datetime = Field(
        description="The moment `total` was read (on a page after the first, the first "
        "page's, whose total it carries); a termination by the same filter with it as "
        "`confirmed_at` ends none of the sessions created after it."
    )


class HistoryEntry(BaseModel):
    """A lifecycle event of the session (created, terminated, expired)."""

    event_id: str
    type: str
    occurred_at: datetime
    detail: dict[str, Any]


class SessionDetail(SessionPublic):
    """One session in any state, with its lifecycle history, oldest first."""

    state: Literal["open", "terminated", "expired"]
    active: bool
    current_ip: str | None
    ended_at: datetime | None
    end_reason: str | None
    ended_by: str | None
    history: list[HistoryEntry]


# The contract's filter, named as it is so that the document's component keeps its name (a
# rename is a break for a generated client: a review, stop 72), with `session_type` given at
# least one type. Read as no condition, `[]` ended every session of the tenant for a script
# sending "the selected types" with none selected (a review, stop 72). A command on Kafka
# still reads `[]` as no condition, as it has since v1: the admin API no longer sends it.
class SessionFilter(ContractFilter):
    """Which sessions: every condition given must hold; an empty filter matches every listed
    (browser and mobile) session. `session_type`, when given, names at least one type."""

    session_type: list[SessionType] | None = Field(default=None, min_length=1, max_length=8)


class TerminationRequest(BaseModel):
    """End these sessions: explicit `session_ids` (1-1000) or every active one matching `filter`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=ONE_TARGET_SCHEMA)

    session_ids: list[SessionId] | None = Field(default=None, min_length=1, max_length=1000)
    filter: SessionFilter | None = None
    reason: TerminationReason = TerminationReason.admin
    confirmed_at: Timestamp | None = Field(
        default=None,
        description="With a filter only: the moment of the count the admin confirmed (the "
        "list's `as_of`). Sessions created after it are not ended, so the confirmed count is "
        "binding. Absent: the moment the request is accepted. A moment later than that is "
        "taken as that.",
    )

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if (self.session_ids is None) == (self.filter is None):
            raise ValueError("give exactly one of session_ids or filter")
        if self.session_ids is not None and self.confirmed_at is not None:
            raise ValueError("confirmed_at goes only with a filter")
        return self


class TerminationAccepted(BaseModel):
    """The command is on its way to the registry."""

    command_id: UUID
    status: Literal["accepted"] = "accepted"
    requested: int = Field(description="Ids given, or sessions matching the filter when accepted.")


TERMINATED = (
    "`applied`: how many sessions it ended. `pending`: how many it has ended so far; a "
    "termination by a filter with a text condition is applied in chunks, beside the "
    "registry's consumer loop, and counts up while it is (0 for any other). `failed`: how "
    "many it ended before the registry gave it up."
)
STATUS = (
    "`pending` until the registry applied the command, then `applied`. `failed`: the registry "
    "could not apply it (applying it failed by itself) and put it on the dead-letter topic; "
    "sessions it ended before stay ended, and an operator's redrive applies the rest "
    "(`pending`, then `applied`)."
)
FAILED_AT = "When the registry gave the command up (kept after a redrive applies it)."


class TerminationStatus(BaseModel):
    """`applied` once the registry has ended the sessions, with how many it ended."""

    command_id: UUID
    status: Literal["pending", "applied", "failed"] = Field(description=STATUS)
    terminated: int = Field(description=TERMINATED)
    applied_at: datetime | None
    failed_at: datetime | None = Field(default=None, description=FAILED_AT)


class AuditEntry(BaseModel):
    """One termination request: who asked, when, for what, and what came of it."""

    command_id: UUID
    requested_by: str
    requested_at: datetime
    reason: TerminationReason
    target: dict[str, Any] = Field(description='{"session_ids": [...]} or {"filter": {...}}')
    requested: int
    status: Literal["pending", "applied", "failed"] = Field(description=STATUS)
    terminated: int = Field(description=TERMINATED)
    applied_at: datetime | None
    failed_at: datetime | None = Field(default=None, description=FAILED_AT)


class AuditPage(BaseModel):
    """Termination requests newest first, and the cursor of the next page."""

    items: list[AuditEntry]
    next_cursor: str | None


class SessionSettingPublic(BaseModel):
    """The tenant's current limits for one session type."""

    session_type: SettableType
    max_session_seconds: int
    idle_timeout_seconds: int
    is_default: bool = Field(description="Never changed by the tenant: the product default.")
    updated_at: datetime | None
    updated_by: str | None


class SessionSettingsPublic(BaseModel):
    """The tenant's current session settings, one entry per settable session type."""

    items: list[SessionSettingPublic]
