"""The one builder of `termination_requests` rows, for both writers of the table.

The admin API records a request once Kafka acknowledged its command; the registry records it
when it applies a command and finds no request yet (it often gets there first: it receives the
command within milliseconds; or the admin API died between the ack and its record). Both write
the same row from the same command, keyed (tenant_id, command_id); the registry's insert yields
to a row already there, the admin API's sets its own `requested` (the count the admin confirmed).
"""

from __future__ import annotations

from typing import Any

from read_model.tables import termination_requests
from session_contracts.models import TerminateSessions

REQUEST_KEY = (termination_requests.c.tenant_id, termination_requests.c.command_id)
"""The table's key: a command id names a request only within its tenant."""


def termination_request_row(command: TerminateSessions, requested: int) -> dict[str, Any]:
    """The `termination_requests` row of `command`, which asked for `requested` sessions."""
    return {
        "command_id": str(command.command_id),
        "tenant_id": command.tenant_id,
        "requested_by": command.requested_by,
        "requested_at": command.requested_at,
        "reason": command.reason.value,
        "target": command.target(),
        "requested": requested,
    }
