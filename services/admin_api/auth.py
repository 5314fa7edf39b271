"""Bearer JWTs: verifying admins' tokens (HS256 secret or a JWKS) and issuing development ones."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlparse

import httpx
import jwt
from prometheus_client import CollectorRegistry, Counter
from pydantic import AfterValidator, TypeAdapter, ValidationError

from admin_api.metrics import outcome_counter
from admin_api.settings import AdminApiSettings
from session_contracts.escaping import escape_reason
from session_contracts.models import TenantId, UserId

EDIT_USER_SESSIONS = "edit_user_sessions"
"""The grant every session endpoint needs (Domo's "Edit User Sessions")."""

JWK_KEY_TYPES = {"RS256": "RSA", "ES256": "EC"}
"""The algorithms a JWKS key verifies, and the key type (`kty`) each needs."""
ASYMMETRIC_ALGORITHMS = tuple(JWK_KEY_TYPES)  # a tuple: a header's `alg` may be a list or object
NUMERIC_DATE_CLAIMS = ("exp", "nbf", "iat")
JWKS_FETCH_TIMEOUT_SECONDS = 10.0
"""The most one fetch of the identity provider's key set takes, answer read whole included."""
MAX_JWKS_BYTES = 1024 * 1024
"""The most of a key set's answer read: an identity provider's is a few KB."""
# The claims that end up in commands, checked by the contract's own rules: a token the
# commands would refuse is refused here, not met as a 500 at the first termination.
_TENANT_ID: TypeAdapter[str] = TypeAdapter(TenantId)


_DEFAULT_IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff\u2800]"
)
"""Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): drawn as nothing when
not supported (the Hangul fillers, variation selectors, the combining grapheme joiner); and
U+2800 BRAILLE PATTERN BLANK, a symbol drawn as blank space."""
_NOT_SHOWN = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cn", "Cs"})


def _shown_as_it_is(value: str) -> str:
    """Refuses what would make an admin's id look like another's wherever it is shown (the audit,
    `ended_by`): controls (the contract refuses C0 and DEL, not C1 such as U+0085), format
    characters (U+200B, U+202E), line or paragraph separators, private-use and unassigned code
    points (by this Python's Unicode), default ignorables (U+034F, U+3164, U+FE00), a space
    other than U+0020 (U+00A0), and a space at either end. An id a token carries is never
    replayed from a log, so nothing that was taken is refused later."""
    if value != value.strip(" "):
        raise ValueError("a space at either end is not shown")
    for char in value:
        category = unicodedata.category(char)
        if category in _NOT_SHOWN or (category == "Zs" and char != " "):
            raise ValueError(f"U+{ord(char):04X} is not shown as it is")
    if found := _DEFAULT_IGNORABLE.search(value):
        raise ValueError(f"U+{ord(found.group()):04X} is not shown")
    return value


_ADMIN_ID: TypeAdapter[str] = TypeAdapter(Annotated[UserId, AfterValidator(_shown_as_it_is)])
VERIFIED_SECONDS = 30.0
"""How long a verified token is taken again without verifying it (never past its `exp`)."""
VERIFIED_TOKENS = 1024
"""The most verified tokens a verifier keeps (then all are let go)."""


log = logging.getLogger(__name__)


MAX_TOKEN_CHARS = 16_384
"""Longer bearer tokens are refused unread: an IdP's access tokens are a few KB, and a server
without a header limit (uvicorn with httptools) passed megabytes, which PyJWT decoded on the
event loop (base64 and JSON of the whole header segment) before any check."""


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


def jwks_fetch_counter(metrics: CollectorRegistry | None) -> Counter:
    """`admin_api_jwks_fetches_total{outcome}` on `metrics` (None: on none): each fetch of the
    identity provider's key set, `ok` or `failed`, both exported from the start (at 0)."""
    return outcome_counter(
        "admin_api_jwks_fetches",
        "Fetches of the identity provider's key set (JWKS), by outcome",
        metrics,
    )


class JwksKeys:
    """The identity provider's signing keys (its JWKS), fetched by one request at a time and
    at most once per `cooldown` past their first fetch.

    - A token whose `kid` the key set fetched within `lifespan` holds is answered at once: it
      never waits for a fetch, whatever other requests ask for. In the second half of
      `lifespan` such a request starts a fetch in the background, so the set is usually
      renewed before anyone must wait for it.
    - Otherwise (a `kid` the set lacks, or a set older than `lifespan`) the request waits for a
      fetch: the one running, or one it starts when none started within `cooldown`. Past
      that, nothing is fetched and the token is refused at once. The cooldown is at most half
      of `lifespan`, so a set is always renewed before it runs out when the provider answers.
    - A set older than `lifespan` is never used: a key withdrawn from the JWKS is refused
      within `lifespan` (a token verified just before is taken again for `VERIFIED_SECONDS`),
      even while the identity provider cannot be reached.
    - A fetch ends within `JWKS_FETCH_TIMEOUT_SECONDS` whatever the provider does (a reply
      sent a byte at a time included), and reads at most `MAX_JWKS_BYTES`.

    PyJWT's client (`PyJWKClient`) fetched and cached under one lock, and started its
    cooldown only after a fetch that succeeded. While the endpoint failed or hung, each token
    naming a made-up `kid` made a fetch of its own (up to the 10 s timeout each, one after
    another), and every admin's request that needed the key set waited behind them (found by
    a review, 2026-12-06). PyJWT now only parses the keys.
    """

    def __init__(
        self,
        url: str,
        lifespan: float,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
        fetches: Counter | None = None,
    ) -> None:
        if urlparse(url).scheme.lower() not in ("http", "https"):
            raise ValueError(f"the JWKS URL must be http or https, not {escape_reason(url)!r}")
        self._url = url
        self._https = urlparse(url).scheme.lower() == "https"
        self._lifespan = lifespan
        self._cooldown = min(cooldown, lifespan / 2)
        self._clock = clock
        self._fetches = fetches
        self._keys: dict[str, list[jwt.PyJWK]] = {}
        self._fetched_at: float | None = None
        """When the set was last fetched whole (`clock`)."""
        self._started_at: float | None = None
        """When a fetch was last started, whatever came of it (`clock`)."""
        self._fetching: asyncio.Future[None] | None = None

    async def keys(self, kid: object) -> list[jwt.PyJWK]:
        """The signing keys named `kid` (one, or one per key type: RFC 7517 lets keys of
        different types share a kid); InvalidToken if the set has none, or cannot be had."""
        name = kid if isinstance(kid, str) else None
        fetching = self._fetching
        if fetching is not None and fetching.get_loop() is not asyncio.get_running_loop():
            self._fetching = None  # left by an event loop that ended (a test client's)
        now = self._clock()
        age = math.inf if self._fetched_at is None else now - self._fetched_at
        if age < self._lifespan and name in self._keys:
            if age >= self._lifespan / 2 and self._may_start(now):
                self._start(now)  # renewed in the background: nobody waits
            return self._keys[name]
        if self._fetching is not None or self._may_start(now):
            if self._fetching is None:
                self._start(now)
            assert self._fetching is not None
            await asyncio.shield(self._fetching)  # one request's cancellation stops no fetch
        fresh = self._fetched_at is not None and self._clock() - self._fetched_at < self._lifespan
        if not fresh:
            raise InvalidToken("the identity provider's key set (JWKS) cannot be fetched now")
        if name not in self._keys:
            raise InvalidToken(
                escape_reason(f'no signing key of the key set (JWKS) matches: "{kid}"')
            )
        return self._keys[name]

    def _may_start(self, now: float) -> bool:
        return self._fetching is None and (
            self._started_at is None or now - self._started_at >= self._cooldown
        )

    def _start(self, now: float) -> None:
        self._started_at = now
        self._fetching = asyncio.ensure_future(self._fetch())

    async def _fetch(self) -> None:
        try:
            async with asyncio.timeout(JWKS_FETCH_TIMEOUT_SECONDS):
                body = await self._read()
            jwk_set = jwt.PyJWKSet.from_dict(json.loads(body))
            keys: dict[str, list[jwt.PyJWK]] = {}
            for key in jwk_set.keys:
                if key.key_id and key.public_key_use in ("sig", None):
                    keys.setdefault(key.key_id, []).append(key)
            if not keys:
                raise ValueError("the key set holds no signing key with a kid")
            self._keys, self._fetched_at = keys, self._clock()
            self._count("ok")
        except Exception as exc:  # anything the provider sends: a background task logs it
            self._count("failed")
            # said to the operator, not to whoever sent a token
            log.warning(
                "the identity provider's key set (JWKS) could not be fetched: %s: %s",
                type(exc).__name__,
                escape_reason(str(exc)[:500]),
            )
        finally:
            self._fetching = None

    async def _read(self) -> bytes:
        """The JWKS document's bytes: a 200 answer, redirects not followed, at most
        `MAX_JWKS_BYTES` as sent (a compressed answer is not inflated, and fails to parse)."""
        async with (
            # an http URL (a loopback sidecar: the only one production accepts) never through a
            # proxy from the environment (HTTP_PROXY): the keys went in clear to the proxy,
            # and whoever is on that path could serve their own (a review, stop 70); https
            # may, its TLS runs end to end through the proxy's tunnel
            httpx.AsyncClient(timeout=JWKS_FETCH_TIMEOUT_SECONDS, trust_env=self._https) as client,
            # identity: the cap counts the bytes on the wire, never what they inflate to (gzip's
            # 200 MB of spaces in 200 KB took 144 MiB before the cap was met: a review)
            client.stream(
                "GET",
                self._url,
                headers={"Accept": "application/json", "Accept-Encoding": "identity"},
            ) as answer,
        ):
            if answer.status_code != 200:
                raise ValueError(f"the JWKS endpoint answered {answer.status_code}")
            body = bytearray()
            async for chunk in answer.aiter_raw():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise ValueError(f"the key set is larger than {MAX_JWKS_BYTES} bytes")
            return bytes(body)

    def _count(self, outcome: str) -> None:
        if self._fetches is not None:
            self._fetches.labels(outcome).inc()


class TokenVerifier:
    """Checks signature, exp, nbf, iat, aud, iss (where configured) and the token's lifetime,
    and reads the admin claims (`sub` and `tenant` by the contract's rules)."""

    def __init__(self, settings: AdminApiSettings, jwks_fetches: Counter | None = None) -> None:
        self._hs256_keys = settings.hs256_keys
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer
        self._leeway = settings.jwt_leeway_seconds
        self._max_lifetime = settings.jwt_max_lifetime_seconds
        self._jwks = (
            JwksKeys(
                settings.jwks_url,
                settings.jwks_cache_seconds,
                settings.jwks_refresh_cooldown_seconds,
                fetches=jwks_fetches,
            )
            if settings.jwks_url
            else None
        )
        self._verified: dict[str, tuple[float, Admin]] = {}

    async def verify(self, token: str) -> Admin:
        """The admin the token names; InvalidToken when it must not be trusted.

        A token that passed is taken again, as the same string, for `VERIFIED_SECONDS` and
        never past its `exp`: an admin's page sends the same token with every request, and
        checking its signature and claims was a tenth of a list request's CPU. Only a token
        that passed every check is kept, so no other string (a byte changed, another
        signature) is ever answered from here; a JWKS key withdrawn is noticed within the
        key set's own cache time anyway (`jwks_cache_seconds`)."""
        if len(token) > MAX_TOKEN_CHARS:  # before any parsing: every request waits on it
            raise InvalidToken(f"a token is at most {MAX_TOKEN_CHARS} characters")
        now = time.time()
        kept = self._verified.get(token)
        if kept is not None and now < kept[0]:
            return kept[1]
        try:
            header = jwt.get_unverified_header(token)
            claims = await self._decode(token, header.get("alg"), header.get("kid"))
        except jwt.PyJWTError as exc:
            # PyJWT quotes the token's own text (its kid): a lone surrogate there cannot be
            # rendered in the 401, which was a 500 instead
            raise InvalidToken(escape_reason(str(exc))) from None
        _check_times(claims, self._max_lifetime, self._leeway, now)
        admin = _admin_from(claims)
        if len(self._verified) >= VERIFIED_TOKENS:
            self._verified.clear()
        self._verified[token] = (min(now + VERIFIED_SECONDS, float(claims["exp"])), admin)
        return admin

    async def _decode(self, token: str, algorithm: object, kid: object) -> dict[str, Any]:
        # The key follows from the algorithm we allow, never from what the token asks for.
        if algorithm == "HS256" and self._hs256_keys:
            *earlier, last = self._hs256_keys
            for key in earlier:  # rotation: any configured key verifies
                try:
                    return self._decode_with(token, key, "HS256")
                except jwt.InvalidSignatureError:
                    continue
            return self._decode_with(token, last, "HS256")
        if algorithm in ASYMMETRIC_ALGORITHMS and self._jwks is not None:
            named = await self._jwks.keys(kid)
            # of keys sharing the kid (one per key type), the one of the token's algorithm
            fitting = [k for k in named if _fits(k, str(algorithm))]
            try:
                return self._decode_with(
                    token, _key_for((fitting or named)[0], str(algorithm)), str(algorithm)
                )
            except (TypeError, ValueError, OSError) as exc:
                # PyJWT raises its own errors for most of what a token or a key holds, not for
                # all: a key its algorithm cannot read (TypeError, ValueError); a 401, not a 500
                raise InvalidToken(
                    f"the token cannot be verified with the key set (JWKS): "
                    f"{escape_reason(str(exc))}"
                ) from None
        raise InvalidToken(f"signing algorithm {algorithm!r} is not accepted")

    def _decode_with(self, token: str, key: Any, algorithm: str) -> dict[str, Any]:
        required = ["exp", "sub", "aud"] + (["iss"] if self._issuer is not None else [])
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=self._audience,
            issuer=self._issuer,
            leeway=self._leeway,
            options={"require": required},
        )
        return claims


def _fits(jwk: jwt.PyJWK, algorithm: str) -> bool:
    """Whether `jwk` verifies tokens of `algorithm` (`_key_for`)."""
    return jwk.key_type == JWK_KEY_TYPES[algorithm] and jwk.algorithm_name == algorithm


def _key_for(jwk: jwt.PyJWK, algorithm: str) -> Any:
    """The JWKS key the token's kid names, if it is a key for the token's algorithm: of its
    key type (`kty`), and with that `alg` when the JWKS gives one (PyJWT infers RS256 for an
    RSA key, ES256 for a P-256 one). PyJWT read an RSA key for an ES256 header as an EC one,
    or the reverse, and raised TypeError before checking any signature."""
    if not _fits(jwk, algorithm):
        raise InvalidToken(
            f"signing algorithm {algorithm} does not fit the key its kid names "
            f"(kty {escape_reason(str(jwk.key_type))}, "
            f"alg {escape_reason(str(jwk.algorithm_name))})"
        )
    return jwk.key


def _check_times(claims: dict[str, Any], max_lifetime: int, leeway: int, now: float) -> None:
    # PyJWT reads these with int(), which takes "1700000000" too: numbers only (NumericDate).
    for name in NUMERIC_DATE_CLAIMS:
        if name not in claims:
            continue
        value = claims[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidToken(
                f"claim {name!r} must be a number of seconds (NumericDate), "
                f"not {type(value).__name__}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidToken(f"claim {name!r} must be a finite number")
    # exp - iat as the issuer meant it; without iat, what is left (allowing the clock skew)
    if "iat" in claims:
        lifetime, allowed = claims["exp"] - claims["iat"], max_lifetime
    else:
        lifetime, allowed = claims["exp"] - now, max_lifetime + leeway
    if lifetime > allowed:
        raise InvalidToken(
            f"the token is valid for longer than the {max_lifetime} s allowed "
            "(SESSIONS_JWT_MAX_LIFETIME_SECONDS)"
        )


def _claim(claims: dict[str, Any], name: str, rule: TypeAdapter[str], what: str) -> str:
    """The claim as a string `rule` takes; InvalidToken saying it must be `what` otherwise."""
    value = claims.get(name)
    if isinstance(value, str):
        try:
            return rule.validate_python(value)
        except ValidationError:
            pass
    raise InvalidToken(f"claim {name!r} must be {what}")


def _admin_from(claims: dict[str, Any]) -> Admin:
    sub = _claim(
        claims,
        "sub",
        _ADMIN_ID,
        "a user id: 1-128 characters, no control characters or lone surrogates "
        "(the contract's UserId), and nothing that is not shown as it is (format, separator, "
        "private-use, unassigned or ignorable characters, a space other than U+0020, a space "
        "at either end)",
    )
    tenant = _claim(
        claims,
        "tenant",
        _TENANT_ID,
        "a tenant id: 1-64 of the characters A-Z a-z 0-9 . _ - (the contract's TenantId)",
    )
    grants = claims.get("grants", [])
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
    """An HS256 token for the development stack and tests; `ttl` in seconds or a timedelta,
    at most `settings.jwt_max_lifetime_seconds`."""
    key = settings.hs256_key
    if key is None:
        raise ValueError("no HS256 secret in force: development tokens cannot be issued")
    seconds = int(ttl.total_seconds() if isinstance(ttl, timedelta) else ttl)
    if seconds > settings.jwt_max_lifetime_seconds:
        raise ValueError(
            f"ttl: {seconds} s is longer than jwt_max_lifetime_seconds "
            f"({settings.jwt_max_lifetime_seconds} s); the admin API would refuse the token"
        )
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "tenant": tenant,
        "grants": list(grants),
        "aud": settings.jwt_audience,
        "iat": now,
        "nbf": now,
        "exp": now + seconds,
    }
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, key, algorithm="HS256")
