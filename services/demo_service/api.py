"""The demo's JSON endpoints, as a mobile app or script would use them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from demo_service.context import Context, CurrentSession, client_ip
from demo_service.sessions import ExternalSession
from session_contracts.models import OneLine, SessionType

router = APIRouter(prefix="/api")

UserName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256), OneLine
]
"""A name as the sign-in takes it: the contract's `UserName`, surrounding space dropped."""


class SignInRequest(BaseModel):
    """A mobile-style sign-in."""

    model_config = ConfigDict(extra="forbid")

    user_name: UserName
    session_type: Literal[SessionType.mobile, SessionType.browser] = Field(
        default=SessionType.mobile,
        description="Only the types the admin page lists: a session of another type "
        "(`access_token`, `api_client`) is recorded but never listed, so a client choosing "
        "one would hide from its admins.",
    )


class SignedIn(BaseModel):
    """The session's credential, to send in the session header on every request."""

    credential: str = Field(description="The token to send in `header_name`; keep it secret.")
    handle: str = Field(description="The session's public handle, as admins see it.")
    header_name: str
    session_type: SessionType
    expires_at: datetime


class Me(BaseModel):
    """Who the current session belongs to (only the handle for a session opened elsewhere)."""

    handle: str
    signed_in_here: bool = Field(description="False: opened elsewhere on the platform.")
    user_id: str | None = None
    user_name: str | None = None
    session_type: SessionType | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None


class Problem(BaseModel):
    """An error answer."""

    error: Literal["not_signed_in"] = Field(description="Machine-readable cause.")


@router.post("/signin", status_code=201)
async def api_sign_in(body: SignInRequest, request: Request, context: Context) -> SignedIn:
    """Create a session and return its token (send it as the session header)."""
    session = await context.sign_in.sign_in(
        body.user_name, body.session_type, client_ip(request), request.headers.get("user-agent")
    )
    return SignedIn(
        credential=session.credential,
        handle=session.handle,
        header_name=context.settings.gateway_header_name,
        session_type=session.session_type,
        expires_at=session.expires_at(),
    )


@router.get("/me", responses={401: {"model": Problem}}, response_model=None)
async def me(session: CurrentSession) -> Me | JSONResponse:
    """The current session's user."""
    if session is None:
        return JSONResponse({"error": "not_signed_in"}, status_code=401)
    if isinstance(session, ExternalSession):
        return Me(handle=session.handle, signed_in_here=False)
    return Me(
        handle=session.handle,
        signed_in_here=True,
        user_id=session.user_id,
        user_name=session.user_name,
        session_type=session.session_type,
        created_at=session.created_at,
        expires_at=session.expires_at(),
    )
