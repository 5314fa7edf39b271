"""A tenant's session settings per session type: read them, change one and publish the change."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from admin_api.adapters import settings_store
from admin_api.adapters.bus import CommandBus
from admin_api.auth import Admin
from admin_api.domain.policies import PolicyChange, effective
from admin_api.runtime import Clock
from read_model.store import Store
from read_model.unit_of_work import UnitOfWork
from session_contracts.models import SessionSettingsChanged, SettableType

TenantSettings = dict[SettableType, settings_store.StoredPolicy]
"""The settings the tenant changed, by type (types never changed are absent: defaults apply)."""


@dataclass(frozen=True)
class ChangeSettings:
    """New limits for the sessions of one type created from now on."""

    session_type: SettableType
    change: PolicyChange


async def read_settings(admin: Admin, store: Store) -> TenantSettings:
    """The settings the admin's tenant changed."""
    async with store.engine.connect() as conn:
        return await settings_store.load(conn, admin.tenant_id)


async def change_settings(
    command: ChangeSettings, admin: Admin, store: Store, bus: CommandBus, clock: Clock
) -> TenantSettings:
    """Store the change and publish the tenant's full settings, in one transaction.

    Committed only once Kafka acknowledged the record, so login services and the API agree; a
    bus that is down (`BusUnavailable`) leaves the settings as they were.
    """
    now = clock()
    # Not `run` (retried): the record may already be on Kafka when a retryable error strikes.
    async with UnitOfWork(store) as uow:
        policy = command.change.policy()
        await settings_store.save(
            uow, admin.tenant_id, command.session_type, policy, now, admin.user_id
        )
        stored = await settings_store.load(uow.conn, admin.tenant_id)
        current = {kind: s.policy for kind, s in stored.items()}
        await bus.settings_changed(
            SessionSettingsChanged(
                event_id=uuid.uuid4(),
                occurred_at=now,
                tenant_id=admin.tenant_id,
                changed_by=admin.user_id,
                settings=effective(current),
            )
        )
    return stored
