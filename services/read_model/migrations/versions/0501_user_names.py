"""A directory of the user names of listed sessions, and their sessions by last activity, for
search (issue 18; PostgreSQL only).

`listed_user_names` holds one row per tenant and user name that a listed session has had
(`listing_indexes.LISTED`), with its own trigram index. A search resolves its term against
it first (a few thousand names where the tenant has millions of sessions) and reads the
matching names' sessions through the B-tree `ix_sessions_open_user_name`, instead of
intersecting the long trigram posting lists of every session's name
(`admin_api.adapters.session_search`).

Kept by triggers, so every path that writes sessions (ingest, replay, terminations) keeps it:

- `AFTER INSERT`, per statement: the distinct listed names of the inserted rows
  (`INSERT ... ON CONFLICT DO NOTHING`, in key order).
- `AFTER UPDATE`, per row, only `WHEN` the row became listed or changed its name (a session
  created after its first activity, out of order): the condition is tested in C on each
  updated row, so an activity update, an expiry or a termination costs no function call.

A name is never taken out (a session ending leaves it): the directory is a superset of the
names of listed sessions, which is all the search needs, since it reads the sessions of the
names it finds and tests them as every search does. It grows with the tenant's distinct user
names, not its sessions. Taking out names that no listed session has any more would need to
lock out concurrent inserts of that name; it is not done.

With it, the listing index `ix_sessions_open_user_name_activity` (`read_model.listing_indexes`):
each name's sessions by last activity, from which a search merges the first ones of the
names its term is in, in the default order, without reading the rest.

Revision ID: 0501_user_names
Revises: 0401_searched_columns
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from read_model.listing_indexes import (
    BY_NAME_ACTIVITY,
    LISTED,
    USER_NAMES_TABLE,
    USER_NAMES_TRIGRAM,
)

revision: str = "0501_user_names"
down_revision: str | Sequence[str] | None = "0401_searched_columns"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NEW_LISTED = (
    "NEW.user_name IS NOT NULL AND NEW.state = 'open' AND NEW.created_at IS NOT NULL "
    "AND NEW.session_type IN ('browser', 'mobile')"
)
_OLD_LISTED = (  # IS NOT TRUE: a NULL session type is not listed either
    "(OLD.state = 'open' AND OLD.created_at IS NOT NULL "
    "AND OLD.session_type IN ('browser', 'mobile')) IS NOT TRUE"
)
INSERTED = f"""
    INSERT INTO listed_user_names (tenant_id, user_name)
    SELECT DISTINCT tenant_id, user_name FROM new_rows
    WHERE user_name IS NOT NULL AND {LISTED}
    ORDER BY tenant_id, user_name
    ON CONFLICT DO NOTHING;
"""
UPDATED = """
    INSERT INTO listed_user_names (tenant_id, user_name)
    VALUES (NEW.tenant_id, NEW.user_name)
    ON CONFLICT DO NOTHING;
"""


def upgrade() -> None:
    """The table, its trigram index, the two triggers, and the names already listed."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(USER_NAMES_TABLE)
    op.execute(USER_NAMES_TRIGRAM)
    # a database built after this revision has the index from 0101 (`create_statements`)
    op.execute("DROP INDEX IF EXISTS ix_sessions_open_user_name_activity")
    op.execute(BY_NAME_ACTIVITY)
    for kind, body in (("ins", INSERTED), ("upd", UPDATED)):
        op.execute(
            f"CREATE FUNCTION listed_user_names_{kind}() RETURNS trigger LANGUAGE plpgsql "
            f"AS $$\nBEGIN\n{body}\n    RETURN NULL;\nEND\n$$"
        )
    op.execute(
        "CREATE TRIGGER listed_user_names_ins AFTER INSERT ON sessions "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION listed_user_names_ins()"
    )
    op.execute(
        "CREATE TRIGGER listed_user_names_upd AFTER UPDATE ON sessions FOR EACH ROW "
        f"WHEN (({_NEW_LISTED}) AND ({_OLD_LISTED} "
        "OR OLD.user_name IS DISTINCT FROM NEW.user_name)) "
        "EXECUTE FUNCTION listed_user_names_upd()"
    )
    op.execute(
        "INSERT INTO listed_user_names (tenant_id, user_name) "
        f"SELECT DISTINCT tenant_id, user_name FROM sessions "
        f"WHERE user_name IS NOT NULL AND {LISTED} ON CONFLICT DO NOTHING"
    )


def downgrade() -> None:
    """Drop the triggers, their functions and the table."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for kind in ("ins", "upd"):
        op.execute(f"DROP TRIGGER IF EXISTS listed_user_names_{kind} ON sessions")
        op.execute(f"DROP FUNCTION IF EXISTS listed_user_names_{kind}()")
    op.execute("DROP TABLE IF EXISTS listed_user_names")
    op.execute("DROP INDEX IF EXISTS ix_sessions_open_user_name_activity")
