"""Revocation records as the registry writes them, for tests that put them on a topic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from session_contracts.handles import session_handle
from session_contracts.models import SessionRevoked, SessionType, TerminationReason


def revocation(
    credential: str,
    *,
    tenant_id: str = "acme",
    session_type: SessionType = SessionType.browser,
    valid_for: timedelta = timedelta(hours=8),
) -> SessionRevoked:
    """A revocation record as the registry writes it, of the session whose credential this is
    (the record names its handle), revoked now by an admin."""
    now = datetime.now(UTC)
    return SessionRevoked(
        tenant_id=tenant_id,
        session_id=session_handle(tenant_id, credential),
        session_type=session_type,
        revoked_at=now,
        reason=TerminationReason.admin,
        valid_until=now + valid_for,
    )
