"""Bearer JWTs: verifying admins' tokens (HS256 secret or a JWKS) and issuing development ones."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt

from admin_api.settings import AdminApiSettings

EDIT_USER_SESSIONS = "edit_user_sessions"
"""The grant every session endpoint needs (Domo's "Edit User Sessions")."""

ASYMMETRIC_ALGORITHMS = ("RS256", "ES256")
_TENANT = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class InvalidToken(Exception):
    """The token is missing, malformed, badly signed, expired or not meant for us."""


@dataclass(frozen=True)
class Admin:
    """The caller, as the token says: who, in which tenant, allowed to do what."""

    user_id: str
    tenant_id: str
    grants: frozenset[str]

    def may(self, grant: str) -> bool:
        """Whether the token carries `grant`."""
        return grant in self.grants


class TokenVerifier:
    """Checks signature, exp, nbf, aud (and iss where configured) and reads the admin claims."""

    def __init__(self, settings: AdminApiSettings) -> None:
        self._hs256_key = settings.hs256_key
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer
        self._leeway = settings.jwt_leeway_seconds
        # PyJWKClient caches the key set and refetches on an unknown kid.
        self._jwks = jwt.PyJWKClient(settings.jwks_url) if settings.jwks_url else None

    async def verify(self, token: str) -> Admin:
        """The admin the token names; InvalidToken when it must not be trusted."""
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
            key = await self._key_for(token, algorithm)
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[str(algorithm)],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "sub", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        return _admin_from(claims)

    async def _key_for(self, token: str, algorithm: object) -> Any:
        # The key follows from the algorithm we allow, never from what the token asks for.
        if algorithm == "HS256" and self._hs256_key is not None:
            return self._hs256_key
        if algorithm in ASYMMETRIC_ALGORITHMS and self._jwks is not None:
            jwks = self._jwks
            signing_key = await asyncio.to_thread(jwks.get_signing_key_from_jwt, token)
            return signing_key.key
        raise InvalidToken(f"signing algorithm {algorithm!r} is not accepted")


def _admin_from(claims: dict[str, Any]) -> Admin:
    sub, tenant, grants = claims.get("sub"), claims.get("tenant"), claims.get("grants", [])
    if not isinstance(sub, str) or not 1 <= len(sub) <= 128:
        raise InvalidToken("claim 'sub' must be a user id of 1-128 characters")
    if not isinstance(tenant, str) or not _TENANT.match(tenant):
        raise InvalidToken("claim 'tenant' must be a tenant id")
    if not isinstance(grants, list) or not all(isinstance(g, str) for g in grants):
        raise InvalidToken("claim 'grants' must be a list of strings")
    return Admin(user_id=sub, tenant_id=tenant, grants=frozenset(grants))


def issue_dev_token(
    settings: AdminApiSettings,
    sub: str,
    tenant: str,
    grants: Sequence[str] = (EDIT_USER_SESSIONS,),
    ttl: int | timedelta = 3600,
) -> str:
    """An HS256 token for the development stack and tests; `ttl` in seconds or a timedelta."""
    key = settings.hs256_key
    if key is None:
        raise ValueError("no HS256 secret in force: development tokens cannot be issued")
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "tenant": tenant,
        "grants": list(grants),
        "aud": settings.jwt_audience,
        "iat": now,
        "nbf": now,
        "exp": now + int(ttl.total_seconds() if isinstance(ttl, timedelta) else ttl),
    }
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, key, algorithm="HS256")
