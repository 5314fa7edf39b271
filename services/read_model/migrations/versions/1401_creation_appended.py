"""A session row keeps when the broker appended the `session.created` its fields come from.

Of two different creations of one session the fold kept the one dated earliest, so any order of
the records gives the same row. A producer allowed on the events topic could therefore write a
second creation of a live session, dated a second before the real sign-in with a policy of one
second: it won, and the registry's sweeper expired the session itself, and signed the expiry (a
review, 2026-12-06). The broker's append time (LogAppendTime) is a moment no producer chooses:
with it kept in the row, the creation appended first wins, whatever the records' order of
reading, and a creation forged after the sign-in loses.

Rows already there keep NULL, which the fold takes as appended before any time it is given:
their creation was read before this revision, so before any creation still to come. No
backfill: adding a nullable column without a default is instant, and rewriting every row
would hold `ADD COLUMN`'s lock on PostgreSQL while the running registry waits. The lock itself
is taken politely (`read_model.polite_ddl`): `sessions` is the table every admin list and every
registry batch reads, and a queued `ALTER` behind a one-minute export would stall them all.
It runs in a transaction of its own (`polite_ddl.POLITE_REVISIONS`).

While the release before still runs on this schema (the schema first, then the release), its
registry keeps the creation dated earliest and leaves this column as it is: a row it changes
then may hold one creation's fields with another's append time, until a rebuild.

Revision ID: 1401_creation_appended
Revises: 1301_revocation_records
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

from read_model.polite_ddl import politely

revision: str = "1401_creation_appended"
down_revision: str | Sequence[str] | None = "1301_revocation_records"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _politely(statement: Callable[[], None]) -> None:
    if op.get_context().as_sql:  # offline (SQL written out): no lock to wait for here
        statement()
    else:
        politely(op.get_bind(), "sessions", statement)


def upgrade() -> None:
    """The column, NULL in the rows already there."""
    column = sa.Column("creation_appended_at", sa.DateTime(timezone=True), nullable=True)
    _politely(lambda: op.add_column("sessions", column))


def downgrade() -> None:
    """Without it (the code of revision 1301 keeps the creation dated earliest)."""

    def drop() -> None:
        with op.batch_alter_table("sessions") as batch:
            batch.drop_column("creation_appended_at")

    _politely(drop)
