"""The lifecycle history of a session: one entry per created, terminated or expired event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from session_contracts.models import SessionEvent

RECORDED_TYPES = frozenset({"session.created", "session.terminated", "session.expired"})
_ENVELOPE = {"type", "schema_version", "event_id", "occurred_at", "tenant_id", "session_id"}


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One row of `session_history`; the event id makes re-recording it a no-op."""

    event_id: str
    tenant_id: str
    session_id: str
    type: str
    occurred_at: datetime
    detail: dict[str, Any]

    def as_row(self) -> dict[str, Any]:
        """The entry as a `session_history` row."""
        return {
            "event_id": self.event_id,
            "tenant_id": self.tenant_id,
            "session_id": self.session_id,
            "type": self.type,
            "occurred_at": self.occurred_at,
            "detail": self.detail,
        }


def history_entry(event: SessionEvent, detail: dict[str, Any] | None = None) -> HistoryEntry | None:
    """The history entry an event makes, or None for activity (too frequent to keep);
    `detail`, when given, is the entry's detail already computed (many events of one command
    share it)."""
    if event.type not in RECORDED_TYPES:
        return None
    if detail is None:
        detail = event.model_dump(mode="json", exclude=_ENVELOPE, exclude_none=True)
    return HistoryEntry(
        event_id=str(event.event_id),
        tenant_id=event.tenant_id,
        session_id=event.session_id,
        type=event.type,
        occurred_at=event.occurred_at,
        detail=detail,
    )
