"""A tenant's session settings per session type: the routes that read them and change one (the
work is `service_layer.session_settings`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, Response

from admin_api.domain.policies import PolicyChange
from admin_api.entrypoints.dependencies import CurrentAdmin, RuntimeDep
from admin_api.entrypoints.errors import PROTECTED, error_responses, invalid_input
from admin_api.entrypoints.schemas import SessionSettingPublic, SessionSettingsPublic
from admin_api.entrypoints.strict_json import StrictJsonRoute
from admin_api.service_layer import session_settings
from session_contracts.models import DEFAULT_POLICIES, SETTABLE_TYPES, SettableType, as_utc

router = APIRouter(
    prefix="/api/v1/settings/sessions",
    tags=["session settings"],
    responses=PROTECTED,
    route_class=StrictJsonRoute,  # a body repeating a key: 422
)


def _public(stored: session_settings.TenantSettings) -> SessionSettingsPublic:
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


ETAG_HEADER = {
    "ETag": {
        "description": "The settings as they are now: send it as `If-Match` with a change, so "
        "that it is made only on these.",
        "schema": {"type": "string"},
    }
}


@router.get(
    "",
    response_model=SessionSettingsPublic,
    responses={200: {"description": "Successful Response", "headers": ETAG_HEADER}},
)
async def read_settings(
    admin: CurrentAdmin, runtime: RuntimeDep, response: Response
) -> SessionSettingsPublic:
    """Your tenant's current maximum session length and idle timeout, per session type."""
    stored = await session_settings.read_settings(admin, runtime.store)
    response.headers["ETag"] = session_settings.settings_tag(stored)
    return _public(stored)


@router.put(
    "/{session_type}",
    response_model=SessionSettingsPublic,
    responses={
        200: {"description": "Successful Response", "headers": ETAG_HEADER},
        **error_responses(400, 412),
    },
)
async def change_settings(
    admin: CurrentAdmin,
    runtime: RuntimeDep,
    session_type: Annotated[SettableType, Path()],
    change: PolicyChange,
    request: Request,
    response: Response,
    if_match: Annotated[
        str | None,
        Header(
            max_length=1024,
            description="The `ETag` of the settings read: the change is made only while they "
            "are still the tenant's (412 otherwise). Without it, the change is made on "
            "whatever they are.",
        ),
    ] = None,
) -> SessionSettingsPublic:
    """Set the limits new sessions of this type get; existing sessions keep theirs (see
    `policy_outdated`). Published on the compacted `sessions.settings` topic for login services."""
    if if_match is not None:  # every If-Match line, as one list (RFC 9110 5.3)
        if_match = ", ".join(request.headers.getlist("if-match"))
        if len(if_match) > session_settings.MAX_IF_MATCH:  # max_length saw the first line only
            raise invalid_input(
                "header",
                ("if-match", f"at most {session_settings.MAX_IF_MATCH} characters", None),
            )
    command = session_settings.ChangeSettings(session_type, change, if_match)
    stored = await session_settings.change_settings(
        command, admin, runtime.store, runtime.bus, runtime.clock
    )
    response.headers["ETag"] = session_settings.settings_tag(stored)
    return _public(stored)
