"""Sessions of tenant `acme` for the gateway's connection tests: their table keys, and the
revocation records the watcher applies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from auth_gateway import GatewaySettings, SessionGateway
from session_contracts.codec import encode
from session_contracts.handles import record_key, session_handle
from session_contracts.models import SessionRevoked, SessionType, TerminationReason

STOLEN, OTHER = "stolen-credential-of-a-session", "another-credential-of-a-session"
FAR = 4_000_000_000.0  # an expiry far ahead, as the table stores it


def key(credential: str) -> bytes:
    """The table key of the session whose credential this is."""
    return record_key("acme", session_handle("acme", credential))


def revocation(credential: str) -> bytes:
    """The registry's revocation record of that session, valid for an hour."""
    now = datetime.now(UTC)
    return encode(
        SessionRevoked(
            tenant_id="acme",
            session_id=session_handle("acme", credential),
            session_type=SessionType.browser,
            revoked_at=now,
            reason=TerminationReason.admin,
            valid_until=now + timedelta(hours=1),
        )
    )


def current_gateway(**overrides: Any) -> SessionGateway:
    """A gateway of tenant `acme` (no broker), its revocations current as read just now;
    `overrides` are further settings."""
    settings = GatewaySettings(
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", gateway_tenant_id="acme", **overrides
    )
    gateway = SessionGateway.from_settings(settings)
    gateway.watcher.mark_current()
    return gateway
