"""Contract v2: tenant-qualified keys, and v1 session ids (credentials) turned into handles.

Keys: `session_history` becomes keyed by (tenant_id, event_id), `applied_commands` and
`termination_requests` by (tenant_id, command_id), so one tenant's producer can neither take nor
hide another tenant's history or audit rows by reusing their ids.

Index: `ix_sessions_never_created`, `expires_at` of the rows with `created_at IS NULL` only
(sessions seen only through activity, a termination or an expiry), which the sweeper deletes
past `expires_at` (`read_model.active.never_created_condition`): it reads them without walking
every ended session.

Data: every stored session id was the credential itself (contract v1). Each becomes
`session_handle(tenant_id, id)`, the handle the v1 upcaster derives from the same records and
gateways derive from the same cookie, in `sessions`, `session_history`, `revocations` and the
`session_ids` of stored command targets. The mapping is computed in Python (SQLite has no
SHA-256) a batch of keys at a time into a scratch table, then applied by one UPDATE per table,
so memory stays bounded whatever the read model's size. Every row is converted, whatever it
looks like: a v1 id can have a handle's shape (43 base64url characters), so no row can be told
converted by its look; Alembic's version row says whether this ran. Records still in `outbox`
keep their v1 values and keys (consumers upcast them). Downgrade is not possible (a hash has
no inverse): restore the backup or rebuild from the log with the old code.

Revision ID: 0201_contract_v2
Revises: 0102_counts_per_statement
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from session_contracts.handles import session_handle

revision: str = "0201_contract_v2"
down_revision: str | Sequence[str] | None = "0102_counts_per_statement"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5000
KEYED = {
    "session_history": "event_id",
    "applied_commands": "command_id",
    "termination_requests": "command_id",
}
WITH_SESSION_IDS = ("sessions", "session_history", "revocations")
WITH_TARGETS = ("applied_commands", "termination_requests")
# Exactly the literal condition of `read_model.active.never_created_condition` besides the time,
# so both planners can use the partial index (tests/unit/read_model/test_read_model_index_predicate)
NEVER_CREATED = "created_at IS NULL"


def upgrade() -> None:
    """Convert stored session ids to handles, re-key the three tables by tenant, and index
    the rows of sessions never created."""
    bind = op.get_bind()
    _session_ids_to_handles(bind)
    for table in WITH_TARGETS:
        _targets_to_handles(bind, table)
    for table, name in KEYED.items():
        if bind.dialect.name == "postgresql":
            op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey")
            op.create_primary_key(f"pk_{table}", table, ["tenant_id", name])
        else:
            # SQLite cannot alter a primary key: the table is recreated. The old key (unnamed in
            # SQLite) is named through the naming convention so that it can be dropped first:
            # dropping it is what clears its column's primary_key flag, without which the copy
            # would declare both keys and SQLAlchemy would warn that they do not match.
            with op.batch_alter_table(
                table, recreate="always", naming_convention={"pk": "old_pk_%(table_name)s"}
            ) as batch:
                batch.drop_constraint(f"old_pk_{table}", type_="primary")
                batch.create_primary_key(f"pk_{table}", ["tenant_id", name])
    op.create_index(
        "ix_sessions_never_created",
        "sessions",
        ["expires_at"],
        postgresql_where=sa.text(NEVER_CREATED),
        sqlite_where=sa.text(NEVER_CREATED),
    )


def downgrade() -> None:
    raise NotImplementedError("handles cannot be turned back into credentials")


def _session_ids_to_handles(bind: sa.Connection) -> None:
    scratch = sa.table(
        "v2_handle_map",
        sa.column("tenant_id", sa.String),
        sa.column("old_id", sa.String),
        sa.column("new_id", sa.String),
    )
    op.execute(
        "CREATE TABLE v2_handle_map (tenant_id VARCHAR(64) NOT NULL, old_id VARCHAR(128) "
        "NOT NULL, new_id VARCHAR(64) NOT NULL, PRIMARY KEY (tenant_id, old_id))"
    )
    for table in WITH_SESSION_IDS:
        after: tuple[str, str] | None = None
        while True:
            where = (
                ""
                if after is None
                else "WHERE (tenant_id > :t OR (tenant_id = :t AND session_id > :s))"
            )
            keys = bind.execute(
                sa.text(
                    f"SELECT DISTINCT tenant_id, session_id FROM {table} {where} "
                    f"ORDER BY tenant_id, session_id LIMIT {BATCH}"
                ),
                {} if after is None else {"t": after[0], "s": after[1]},
            ).all()
            if not keys:
                break
            known = {
                (row[0], row[1])
                for row in bind.execute(
                    sa.select(scratch.c.tenant_id, scratch.c.old_id).where(
                        sa.tuple_(scratch.c.tenant_id, scratch.c.old_id).in_(
                            [(k[0], k[1]) for k in keys]
                        )
                    )
                )
            }
            new = [
                {"tenant_id": t, "old_id": s, "new_id": session_handle(t, s)}
                for t, s in keys
                if (t, s) not in known
            ]
            if new:
                bind.execute(scratch.insert(), new)
            after = (keys[-1][0], keys[-1][1])
    for table in WITH_SESSION_IDS:
        op.execute(
            f"UPDATE {table} SET session_id = (SELECT m.new_id FROM v2_handle_map m "
            f"WHERE m.tenant_id = {table}.tenant_id AND m.old_id = {table}.session_id)"
        )
    op.execute("DROP TABLE v2_handle_map")


def _targets_to_handles(bind: sa.Connection, table: str) -> None:
    rows = sa.table(
        table,
        sa.column("tenant_id", sa.String),
        sa.column("command_id", sa.String),
        sa.column("target", sa.JSON),
    )
    after: tuple[str, str] | None = None
    while True:
        query = sa.select(rows.c.tenant_id, rows.c.command_id, rows.c.target)
        if after is not None:
            query = query.where(sa.tuple_(rows.c.tenant_id, rows.c.command_id) > after)
        batch = bind.execute(query.order_by(rows.c.tenant_id, rows.c.command_id).limit(BATCH)).all()
        if not batch:
            return
        for tenant_id, command_id, target in batch:
            converted = _converted_target(tenant_id, target)
            if converted is not None:
                bind.execute(
                    rows.update()
                    .where(rows.c.tenant_id == tenant_id, rows.c.command_id == command_id)
                    .values(target=converted)
                )
        after = (batch[-1][0], batch[-1][1])


def _converted_target(tenant_id: str, target: Any) -> dict[str, Any] | None:
    if isinstance(target, str):  # a JSON column some drivers hand back as text
        target = json.loads(target)
    if not isinstance(target, dict):
        return None
    changed = dict(target)
    if isinstance(target.get("session_ids"), list):
        changed["session_ids"] = [session_handle(tenant_id, str(s)) for s in target["session_ids"]]
    if isinstance(target.get("filter"), dict) and "session_id" in target["filter"]:
        # a substring of credentials: kept for the audit, marked as what it was
        changed["filter"] = {**target["filter"], "session_id": "(v1 credential substring)"}
    return changed if changed != target else None
