"""A SessionState is a `sessions` row: its fields are the table's columns, in their order.

The registry builds states positionally from the rows a store hands out (`SessionState(*row)`)
and rows from states (`attrgetter(*COLUMNS)`), so a column added to one must be added to the
other at the same place.
"""

from __future__ import annotations

from read_model.store import SESSION_COLUMNS
from session_registry.domain.state import COLUMNS


def test_session_state_fields_are_the_sessions_columns_in_order() -> None:
    assert COLUMNS == SESSION_COLUMNS
