"""`listed_session_counts` kept per statement, not per row (PostgreSQL only).

The row triggers of `0101_admin_api` updated the same counter row once per changed session:
every update leaves a row version the rest of the transaction must step over, so a statement
changing n sessions of one tenant and type cost O(n^2) (a 100,000-session termination by filter
spent over 20 s in the trigger, against under 1 s for the rows themselves). Statement triggers
with transition tables add each statement's net change per (tenant, type) in one ordered
upsert: the same counts, one counter update per group, counter rows locked in key order.

Revision ID: 0102_counts_per_statement
Revises: 0101_admin_api
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0102_counts_per_statement"
down_revision: str | Sequence[str] | None = "0101_admin_api"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the membership test of 0101 (`LISTED`), over a transition table's rows
LISTED = "state = 'open' AND created_at IS NOT NULL AND session_type IN ('browser', 'mobile')"


def _delta(*arms: tuple[str, int]) -> str:
    rows = " UNION ALL ".join(
        f"SELECT tenant_id, session_type, {sign} AS d FROM {table} WHERE {LISTED}"
        for table, sign in arms
    )
    return f"""
    INSERT INTO listed_session_counts AS c (tenant_id, session_type, sessions)
    SELECT tenant_id, session_type, sum(d) FROM ({rows}) AS changed
    GROUP BY tenant_id, session_type HAVING sum(d) <> 0
    ORDER BY tenant_id, session_type
    ON CONFLICT (tenant_id, session_type) DO UPDATE SET sessions = c.sessions + EXCLUDED.sessions;
    """


FUNCTIONS = {
    "ins": _delta(("new_rows", 1)),
    "upd": _delta(("old_rows", -1), ("new_rows", 1)),
    "del": _delta(("old_rows", -1)),
}
REFERENCING = {
    "ins": "INSERT ON sessions REFERENCING NEW TABLE AS new_rows",
    "upd": "UPDATE ON sessions REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "del": "DELETE ON sessions REFERENCING OLD TABLE AS old_rows",
}


def upgrade() -> None:
    """Swap the row triggers for statement triggers (the TRUNCATE trigger stays)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for kind, body in FUNCTIONS.items():
        op.execute(f"DROP TRIGGER IF EXISTS listed_session_counts_{kind} ON sessions")
        op.execute(
            f"CREATE FUNCTION listed_session_counts_{kind}() RETURNS trigger LANGUAGE plpgsql "
            f"AS $$\nBEGIN\n{body}\n    RETURN NULL;\nEND\n$$"
        )
        op.execute(
            f"CREATE TRIGGER listed_session_counts_{kind} AFTER {REFERENCING[kind]} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION listed_session_counts_{kind}()"
        )


def downgrade() -> None:
    """Back to 0101's row triggers (the counts stay right: both keep the same figures)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    membership_changed = (
        "OLD.state IS DISTINCT FROM NEW.state OR OLD.created_at IS DISTINCT FROM NEW.created_at "
        "OR OLD.session_type IS DISTINCT FROM NEW.session_type "
        "OR OLD.tenant_id IS DISTINCT FROM NEW.tenant_id"
    )
    timing = {
        "ins": "AFTER INSERT ON sessions FOR EACH ROW",
        "upd": f"AFTER UPDATE ON sessions FOR EACH ROW WHEN ({membership_changed})",
        "del": "AFTER DELETE ON sessions FOR EACH ROW",
    }
    for kind, when in timing.items():
        op.execute(f"DROP TRIGGER IF EXISTS listed_session_counts_{kind} ON sessions")
        op.execute(f"DROP FUNCTION IF EXISTS listed_session_counts_{kind}()")
        op.execute(
            f"CREATE TRIGGER listed_session_counts_{kind} {when} "
            "EXECUTE FUNCTION listed_session_counts_apply()"
        )
