"""A revocation row holds the record published: `session_type`, `revoked_at` and `reason`.

The revocation guard (`session_registry.service_layer.revocation_guard`) answers a record that
would un-revoke a session with the registry's revocation again. It built that record from the
session's row, so it could not answer for a session whose row retention had deleted (30 days
past `expires_at`, before a mobile session's `valid_until`) or an expiry folded since had
changed: a hostile record under such a key stood, and gateways started after compaction let
the session in (a review, 2026-12-06). With the record's fields in the revocation row, the
guard needs nothing else.

Rows already there are filled from their session's row where it still holds an end (its type,
`ended_at` and `end_reason`: the fields of the record published, or of the expiry folded since,
a revocation all the same); the others stay NULL and are logged by the guard when it would
answer them, as before.

Revision ID: 1301_revocation_records
Revises: 1201_term_keys
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1301_revocation_records"
down_revision: str | Sequence[str] | None = "1201_term_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FILLED = """
    UPDATE revocations
    SET session_type = s.session_type, revoked_at = s.ended_at, reason = s.end_reason
    FROM sessions AS s
    WHERE s.tenant_id = revocations.tenant_id AND s.session_id = revocations.session_id
      AND s.session_type IS NOT NULL AND s.ended_at IS NOT NULL AND s.end_reason IS NOT NULL
"""


def upgrade() -> None:
    """The three columns, filled from the sessions' rows where they can be."""
    op.add_column("revocations", sa.Column("session_type", sa.String(16), nullable=True))
    op.add_column("revocations", sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("revocations", sa.Column("reason", sa.String(16), nullable=True))
    op.execute(FILLED)


def downgrade() -> None:
    """Without them (the code of revision 1201 builds the record from the session's row)."""
    with op.batch_alter_table("revocations") as batch:
        batch.drop_column("reason")
        batch.drop_column("revoked_at")
        batch.drop_column("session_type")
