"""A term is looked up by its first and last pieces only (issue 18; PostgreSQL).

A search term of three characters or more is looked up in the session id keys index by its
own keys (`read_model.session_query.session_id_holds`). Until this revision those were all of
its pieces, one per character but two: eight characters, six keys. A GIN reads each key's
posting list whole (about 0.15 ms each at ten million sessions), and the pieces between the
first and the last narrow nothing that the `ILIKE` after the lookup does not: an id holding
both is a candidate in about two million. This revision creates the function giving a term's
first and last keys (`read_model.listing_indexes.TERM_KEYS_FUNCTION`), computed from the keys
of `session_id_keys` itself, so a term and an id are hashed alike. No index changes.

Revision ID: 1201_term_keys
Revises: 1101_activity_keys
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from read_model.listing_indexes import SESSION_ID_TERM_KEYS, TERM_KEYS_FUNCTION

revision: str = "1201_term_keys"
down_revision: str | Sequence[str] | None = "1101_activity_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """The function of a term's keys."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(TERM_KEYS_FUNCTION)


def downgrade() -> None:
    """Without it (the code of revision 1101 looks a term up by all its keys)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP FUNCTION IF EXISTS {SESSION_ID_TERM_KEYS}(text, text)")
