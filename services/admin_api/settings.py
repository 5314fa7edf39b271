"""The admin API's settings (env prefix `SESSIONS_`), built once at start-up and injected."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, field_validator, model_validator

from session_contracts.addresses import on_this_host
from session_contracts.settings import DEFAULT_DATABASE_URL, KafkaSettings, comma_secrets

DEV_JWT_SECRET = "session-control-development-secret-not-for-production"
"""Public, so it signs nothing that matters: the HS256 key only with an explicit
`SESSIONS_ENVIRONMENT=development`, no key of one's own and no JWKS; refused everywhere else."""

MIN_SECRET_LENGTH = 32

BudgetSeconds = Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False)]
"""Seconds a minute of a per-tenant budget (`service_layer.tenant_slots.SearchBudget`); 0 turns
it off."""


class AdminApiSettings(KafkaSettings):
    """Where the read model is, how admins authenticate, where to listen."""

    kafka_client_id: str = Field(
        default="session-admin-api", min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$"
    )

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy async URL of the registry's read model.",
        repr=False,  # it may hold a password: never in a settings object's repr
    )
    db_pool_size: int = Field(
        default=5, ge=1, le=100, description="PostgreSQL connections kept open per process."
    )
    db_max_overflow: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Connections opened beyond the pool under bursts (default: the pool size).",
    )
    searches_per_tenant: int = Field(
        default=2,
        ge=1,
        le=100,
        description="Searches (a text condition) of one tenant read at once per process; the "
        "others wait without a database connection, so one tenant cannot hold the whole pool.",
    )
    exports_per_tenant: int = Field(
        default=2,
        ge=1,
        le=100,
        description="CSV exports of one tenant streamed at once per process; another is "
        "answered 429 with Retry-After, so one tenant's exports cannot take every core.",
    )
    filter_termination_seconds_per_minute: BudgetSeconds = Field(
        default=5.0,
        description="Seconds a minute that one tenant's terminations by a filter with a text "
        "condition may spend counting their matches: the registry walks each such filter's "
        "matches again, so past it they answer 429 with Retry-After (nothing published); 0 "
        "turns it off. One budget for every process on the database (search_budget_sync_seconds).",
    )
    search_seconds_per_minute: BudgetSeconds = Field(
        default=30.0,
        description="Seconds a minute that one tenant's searches may read for (the time they "
        "hold their slots): past it a search answers 429 with Retry-After until the time is "
        "repaid, so one tenant cannot keep the database busy; 0 turns it off. One budget for "
        "every process on the database (search_budget_sync_seconds).",
    )
    search_budget_sync_seconds: float = Field(
        default=1.0,
        ge=0,
        le=60,
        allow_inf_nan=False,
        description="How often a process adds what its tenants' searches spent to the budgets "
        "every admin API process on the database shares, and takes in what the others spent "
        "(table search_budgets). Between two syncs a process decides alone, so a tenant may "
        "overdraw by what N processes read in that time. 0: each process keeps its own "
        "budgets (N processes give a tenant N budgets).",
    )
    schema_check_seconds: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        allow_inf_nan=False,
        description="How often a process reads the database's schema revision besides each "
        "/readyz (and once at start): behind this release, it logs a warning naming both "
        "revisions and sets admin_api_schema_behind to 1. 0: only /readyz reads it.",
    )
    environment: Literal["development", "production"] = Field(
        default="production",
        description="Production unless told otherwise. Development (only the main job sets it) "
        "accepts the public development secret, serves /openapi.json and lets the admin page "
        "sign in from a #token= link.",
    )
    jwt_secret: SecretStr | None = Field(
        default=None,
        description="HS256 key; in production at least 32 characters. One key: for several, "
        "see jwt_secrets.",
    )
    jwt_secrets: SecretStr | None = Field(
        default=None,
        description="HS256 keys, comma-separated, for rotation: every one verifies, the first "
        "signs development tokens. Instead of jwt_secret, not with it.",
    )
    jwks_url: str | None = Field(
        default=None,
        description="JWKS document of the identity provider (RS256/ES256); https in "
        "production (http to a loopback address only). Empty: unset.",
    )
    jwt_audience: str = "session-control"
    jwt_issuer: str | None = Field(
        default=None,
        min_length=1,
        description="The `iss` every token must carry; required in production.",
    )
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
    jwt_max_lifetime_seconds: int = Field(
        default=24 * 3600,
        ge=60,
        le=30 * 86400,
        description="Tokens meant to live longer (exp - iat, or exp - now without iat) are "
        "refused.",
    )
    jwks_cache_seconds: float = Field(
        default=300.0,
        ge=1.0,
        le=86400.0,
        description="How long the fetched JWKS is used (never longer: a withdrawn key is refused "
        "within it, even while the identity provider cannot be reached).",
    )
    jwks_refresh_cooldown_seconds: float = Field(
        default=30.0,
        ge=1.0,
        le=3600.0,
        description="At most one fetch of the JWKS started per this many seconds (at most half "
        "of jwks_cache_seconds), whether the last one worked or not, for tokens naming an "
        "unknown `kid` or a key set out of date (a flood of made-up kids never floods the "
        "identity provider).",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=64 * 1024,
        description="Larger request bodies are refused with 413 (a termination of 1000 ids "
        "is about 130 KB).",
    )
    max_query_bytes: int = Field(
        default=16 * 1024, ge=1024, description="Longer query strings are refused with 414."
    )
    cursor_secret: SecretStr | None = Field(
        default=None,
        description="Signs the lists' page cursors (HMAC-SHA256); every worker and host of the "
        "API must share it. Unset: derived from the HS256 keys (the first signs, every one "
        "opens); in production without one (JWKS only) the API refuses to start until it is "
        "set (32+ characters). One secret: for several, see cursor_secrets.",
    )
    cursor_secrets: SecretStr | None = Field(
        default=None,
        description="Cursor secrets, comma-separated, for rotation: the first signs, every one "
        "opens the cursors it signed. Instead of cursor_secret, not with it.",
    )
    publish_timeout_seconds: float = Field(
        default=20.0,
        ge=1.0,
        le=300.0,
        description="How long a termination or a settings change waits for Kafka's "
        "acknowledgement before it answers 503 and is withdrawn (longer than a leader's "
        "failover, shorter than the proxies' timeouts in front).",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    admin_page_token_url: str | None = Field(
        default=None,
        description="The admin page fetches the signed-in admin's token here (docs/admin-page.md).",
    )
    admin_page_sign_in_url: str | None = Field(
        default=None, description="Where the admin page's 'Sign in again' leads."
    )
    admin_page_token_header: str | None = Field(
        default=None,
        pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$",
        description="The request header in which the identity-aware proxy in front passes the "
        "signed-in admin's token (e.g. X-Forwarded-Access-Token); /admin/token hands it to the "
        "page, and is the page's token URL unless admin_page_token_url says otherwise.",
    )
    admin_page_live_interval_seconds: float = Field(
        default=5.0, ge=1.0, le=300.0, description="The page's live mode polls this often."
    )

    @model_validator(mode="after")
    def _keys_fit_environment(self) -> AdminApiSettings:
        problems: list[str] = []
        if self.jwt_secret is not None and self.jwt_secrets is not None:
            problems.append("set SESSIONS_JWT_SECRET or SESSIONS_JWT_SECRETS, not both")
        if self.cursor_secret is not None and self.cursor_secrets is not None:
            problems.append("set SESSIONS_CURSOR_SECRET or SESSIONS_CURSOR_SECRETS, not both")
        try:
            self.configured_cursor_secrets()
        except ValueError as exc:
            problems.append(str(exc))
        try:
            configured = self._configured_hs256_keys()
        except ValueError as exc:
            problems.append(str(exc))
            configured = ()
        production = self.environment == "production"
        if DEV_JWT_SECRET in configured and (production or self.jwks_url is not None):
            problems.append(
                "the public development secret is refused in production and whenever "
                "SESSIONS_JWKS_URL is set"
            )
        if production:
            short = [str(n) for n, key in enumerate(configured, 1) if len(key) < MIN_SECRET_LENGTH]
            if short:
                problems.append(
                    f"HS256 secrets need at least {MIN_SECRET_LENGTH} characters "
                    f"(too short: key {', '.join(short)})"
                )
            if not configured and self.jwks_url is None:
                problems.append(
                    "set SESSIONS_JWKS_URL (your identity provider's RS256/ES256 keys) or "
                    f"SESSIONS_JWT_SECRET (HS256, at least {MIN_SECRET_LENGTH} characters)"
                )
            if self.jwt_issuer is None:
                problems.append("set SESSIONS_JWT_ISSUER to the `iss` your tokens carry")
            if self.jwks_url is not None and not _fetched_safely(self.jwks_url):
                # whoever is on the path serves their own keys and signs any admin's token
                # (a review, stop 70)
                problems.append("SESSIONS_JWKS_URL must be https (http only to a loopback address)")
        if problems:
            default = "" if "environment" in self.model_fields_set else " (the default)"
            hint = "; on a development machine set SESSIONS_ENVIRONMENT=development" * production
            raise ValueError(
                f"SESSIONS_ENVIRONMENT={self.environment}{default}: {'; '.join(problems)}{hint}"
            )
        return self

    @field_validator("jwks_url", mode="before")
    @classmethod
    def _blank_jwks_url_is_unset(cls, value: object) -> object:
        """An empty or blank SESSIONS_JWKS_URL is none: it counted as a key source, so the API
        started with no key at all, refusing every token while /readyz said ready (a review,
        stop 70)."""
        if isinstance(value, str):
            return value.strip() or None
        return value

    def _configured_hs256_keys(self) -> tuple[str, ...]:
        return _secrets("SESSIONS_JWT_SECRETS", self.jwt_secrets, self.jwt_secret)

    def configured_cursor_secrets(self) -> tuple[str, ...]:
        """`SESSIONS_CURSOR_SECRETS` (or the one `SESSIONS_CURSOR_SECRET`): the first signs;
        may be empty (the cursor key is then derived, `admin_api.runtime.cursor_keys`)."""
        return _secrets("SESSIONS_CURSOR_SECRETS", self.cursor_secrets, self.cursor_secret)

    @property
    def hs256_keys(self) -> tuple[str, ...]:
        """The HS256 keys that verify tokens (the first signs development ones); may be empty.

        The development secret is among them only in development without a JWKS, and only
        when no key is configured."""
        dev_allowed = self.environment == "development" and self.jwks_url is None
        configured = self._configured_hs256_keys()
        if not configured:
            return (DEV_JWT_SECRET,) if dev_allowed else ()
        return tuple(key for key in configured if key != DEV_JWT_SECRET or dev_allowed)

    @property
    def hs256_key(self) -> str | None:
        """The HS256 key that signs development tokens, or None where HS256 is off."""
        return next(iter(self.hs256_keys), None)


def _secrets(name: str, several: SecretStr | None, one: SecretStr | None) -> tuple[str, ...]:
    """The secrets of a comma-separated setting `name` (several, for rotation), or of its
    one-secret form; ValueError naming the setting for an empty or repeated one."""
    if several is not None:
        return comma_secrets(name, several)
    if one is not None:
        return (one.get_secret_value(),)
    return ()


def _fetched_safely(url: str) -> bool:
    """Whether the keys at `url` come over TLS or from this host (a loopback address)."""
    parsed = urlparse(url)
    if parsed.scheme.lower() == "https":
        return True
    return on_this_host(parsed.hostname or "")
