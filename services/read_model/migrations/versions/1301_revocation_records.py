"""A revocation row holds the record published: `session_type`, `revoked_at` and `reason`.

The revocation guard (`session_registry.service_layer.revocation_guard`) answers a record that
would un-revoke a session with the registry's revocation again. It built that record from the
session's row, so it could not answer for a session whose row retention had deleted (30 days
past `expires_at`, before a mobile session's `valid_until`) or an expiry folded since had
changed: a hostile record under such a key stood, and gateways started after compaction let
the session in (a review, 2026-12-06). With the record's fields in the revocation row, the
guard needs nothing else.

Rows already there keep NULL in them, and so do rows a registry of the release before writes
(the schema is migrated first, and the old release runs on it meanwhile): for such a row the
guard takes the fields from the session's row, as it did before, while it still holds an end.
No backfill here: on PostgreSQL it would rewrite every revocation row under the lock
`ADD COLUMN` takes, until the migration commits, while the running registry's revocations
wait behind it (found by a review); adding nullable columns without a default is instant.

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


def upgrade() -> None:
    """The three columns, NULL in the rows already there."""
    op.add_column("revocations", sa.Column("session_type", sa.String(16), nullable=True))
    op.add_column("revocations", sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("revocations", sa.Column("reason", sa.String(16), nullable=True))


def downgrade() -> None:
    """Without them (the code of revision 1201 builds the record from the session's row)."""
    with op.batch_alter_table("revocations") as batch:
        batch.drop_column("reason")
        batch.drop_column("revoked_at")
        batch.drop_column("session_type")
