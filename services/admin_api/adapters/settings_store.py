"""Reading and changing a tenant's session settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from read_model.tables import session_settings, session_settings_history
from read_model.unit_of_work import UnitOfWork
from session_contracts.models import SETTABLE_TYPES, SessionPolicy, SettableType

_t = session_settings.c


@dataclass(frozen=True)
class StoredPolicy:
    """A tenant's own setting for one session type, and who changed it when."""

    policy: SessionPolicy
    updated_at: datetime
    updated_by: str


async def load(conn: AsyncConnection, tenant_id: str) -> dict[SettableType, StoredPolicy]:
    """The settings the tenant changed (types never changed are absent: defaults apply)."""
    rows = await conn.execute(select(session_settings).where(_t.tenant_id == tenant_id))
    stored: dict[SettableType, StoredPolicy] = {}
    for row in rows:
        kind = next((k for k in SETTABLE_TYPES if k == row.session_type), None)
        if kind is None:
            continue
        policy = SessionPolicy(
            max_session_seconds=row.max_session_seconds,
            idle_timeout_seconds=row.idle_timeout_seconds,
        )
        stored[kind] = StoredPolicy(policy, row.updated_at, row.updated_by)
    return stored


async def save(
    uow: UnitOfWork,
    tenant_id: str,
    kind: SettableType,
    policy: SessionPolicy,
    at: datetime,
    by: str,
) -> None:
    """Replace the tenant's setting for one session type, and keep it in the type's history
    from `at` (in the caller's unit of work, which holds the tenant's settings lock).

    `at` is the admin API host's clock. Hosts whose clocks differ can file a later change
    before an earlier one; stamping it after the latest row instead (tried on 2026-12-06)
    moved the change away from the counts dated on the same host's clock and made
    `policy_outdated` compare with older settings (found by a review). One clock for both
    stamps, the database's, would settle it (not done)."""
    _h = session_settings_history.c
    seconds = {
        "max_session_seconds": policy.max_session_seconds,
        "idle_timeout_seconds": policy.idle_timeout_seconds,
    }
    values = {**seconds, "updated_at": at, "updated_by": by}
    statement = uow.store.insert(session_settings).values(
        tenant_id=tenant_id, session_type=kind, **values
    )
    await uow.conn.execute(
        statement.on_conflict_do_update(index_elements=[_t.tenant_id, _t.session_type], set_=values)
    )
    kept = {**seconds, "changed_by": by}
    history = uow.store.insert(session_settings_history).values(
        tenant_id=tenant_id, session_type=kind, since=at, **kept
    )
    await uow.conn.execute(
        history.on_conflict_do_update(
            index_elements=[_h.tenant_id, _h.session_type, _h.since], set_=kept
        )
    )
