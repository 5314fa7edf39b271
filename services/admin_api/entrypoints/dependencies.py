"""Dependency aliases every route uses: the runtime and the admin."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from admin_api.auth import EDIT_USER_SESSIONS, Admin, InvalidToken
from admin_api.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    """The runtime `create_app` built (`async`, as every dependency here: FastAPI runs a plain
    `def` dependency in its thread pool, a hand-off per request for a dictionary lookup)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


_bearer = HTTPBearer(
    auto_error=False,
    description="JWT with claims sub, tenant, grants (needs edit_user_sessions).",
)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


async def current_admin(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Admin:
    """The admin the bearer token names, who must hold `edit_user_sessions`."""
    if credentials is None:
        raise _unauthorized("missing bearer token")
    try:
        admin = await runtime.verifier.verify(credentials.credentials)
    except InvalidToken as exc:
        raise _unauthorized(f"invalid token: {exc}") from None
    if not admin.may(EDIT_USER_SESSIONS):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"needs grant {EDIT_USER_SESSIONS}")
    return admin


CurrentAdmin = Annotated[Admin, Depends(current_admin)]
