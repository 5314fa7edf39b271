"""Session settings per tenant and session type: the rules of a change (the defaults and the
change record are the contract's: `session_contracts.models`)."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from session_contracts.models import (
    DEFAULT_POLICIES,
    SETTABLE_TYPES,
    SessionPolicy,
    SettableType,
)

DAY = 86400
MIN_SECONDS = 60
MAX_SECONDS = 10 * 366 * DAY


class PolicyChange(BaseModel):
    """New limits for one session type; idle timeout no longer than the maximum length."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_session_seconds: int = Field(ge=MIN_SECONDS, le=MAX_SECONDS)
    idle_timeout_seconds: int = Field(ge=MIN_SECONDS, le=MAX_SECONDS)

    @field_validator("max_session_seconds", "idle_timeout_seconds", mode="before")
    @classmethod
    def _a_json_number(cls, value: object) -> object:
        """A JSON number, as the document's `integer` says: "3600" and true were read as
        numbers, and a client's bug (a form's text sent as it is) passed unseen (a review,
        stop 71). 3600.0 stays taken: JSON Schema counts it an integer."""
        if isinstance(value, str | bool):
            raise ValueError(f"must be a JSON integer, not {type(value).__name__}")
        return value

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


def effective(stored: dict[SettableType, SessionPolicy]) -> dict[SettableType, SessionPolicy]:
    """Every settable type's policy: the stored one, else the default."""
    return {kind: stored.get(kind, DEFAULT_POLICIES[kind]) for kind in SETTABLE_TYPES}
