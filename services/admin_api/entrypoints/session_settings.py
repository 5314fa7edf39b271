"""A tenant's session settings per session type: read them, change them, publish the change."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path

from admin_api.adapters import settings_store
from admin_api.domain.policies import PolicyChange, effective
from admin_api.entrypoints.dependencies import CurrentAdmin, DbSession, Now, RuntimeDep
from admin_api.entrypoints.errors import PROTECTED, error_responses
from admin_api.entrypoints.schemas import SessionSettingPublic, SessionSettingsPublic
from read_model.unit_of_work import UnitOfWork
from session_contracts.models import (
    DEFAULT_POLICIES,
    SETTABLE_TYPES,
    SessionSettingsChanged,
    SettableType,
    as_utc,
)

router = APIRouter(
    prefix="/api/v1/settings/sessions", tags=["session settings"], responses=PROTECTED
)


def _public(
    stored: dict[SettableType, settings_store.StoredPolicy],
) -> SessionSettingsPublic:
    items = []
    for kind in SETTABLE_TYPES:
        own = stored.get(kind)
        policy = own.policy if own else DEFAULT_POLICIES[kind]
        items.append(
            SessionSettingPublic(
                session_type=kind,
                max_session_seconds=policy.max_session_seconds,
                idle_timeout_seconds=policy.idle_timeout_seconds,
                is_default=own is None,
                updated_at=as_utc(own.updated_at) if own else None,
                updated_by=own.updated_by if own else None,
            )
        )
    return SessionSettingsPublic(items=items)


@router.get("", response_model=SessionSettingsPublic)
async def read_settings(admin: CurrentAdmin, db: DbSession) -> SessionSettingsPublic:
    """Your tenant's current maximum session length and idle timeout, per session type."""
    return _public(await settings_store.load(db, admin.tenant_id))


@router.put(
    "/{session_type}",
    response_model=SessionSettingsPublic,
    responses=error_responses(400),
)
async def change_settings(
    admin: CurrentAdmin,
    runtime: RuntimeDep,
    now: Now,
    session_type: Annotated[SettableType, Path()],
    change: PolicyChange,
) -> SessionSettingsPublic:
    """Set the limits new sessions of this type get; existing sessions keep theirs (see
    `policy_outdated`). Published on the compacted `sessions.settings` topic for login services."""
    async with UnitOfWork(runtime.store) as uow:
        await settings_store.save(
            uow, admin.tenant_id, session_type, change.policy(), now, admin.user_id
        )
        stored = await settings_store.load(uow.conn, admin.tenant_id)
        current = {kind: s.policy for kind, s in stored.items()}
        # committed only once Kafka acknowledged: login services and the API agree
        await runtime.bus.settings_changed(
            SessionSettingsChanged(
                event_id=uuid.uuid4(),
                occurred_at=now,
                tenant_id=admin.tenant_id,
                changed_by=admin.user_id,
                settings=effective(current),
            )
        )
    return _public(stored)
