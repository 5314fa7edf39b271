"""The admin API's settings (env prefix `SESSIONS_`), built once at start-up and injected."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from session_contracts.settings import DEFAULT_DATABASE_URL, KafkaSettings

DEV_JWT_SECRET = "session-control-development-secret-not-for-production"
"""Signs development tokens only; refused outside development."""

MIN_SECRET_LENGTH = 32


class AdminApiSettings(KafkaSettings):
    """Where the read model is, how admins authenticate, where to listen."""

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy async URL of the registry's read model.",
    )
    environment: Literal["development", "production"] = "development"
    jwt_secret: SecretStr = Field(
        default=SecretStr(DEV_JWT_SECRET),
        description="HS256 key; outside development it must be set and at least 32 characters.",
    )
    jwks_url: str | None = Field(
        default=None, description="JWKS document of the identity provider (RS256/ES256)."
    )
    jwt_audience: str = "session-control"
    jwt_issuer: str | None = None
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
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
        "API must share it. Unset: derived from the first HS256 key; in production without "
        "one (JWKS only) the API refuses to start until it is set (32+ characters).",
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
    admin_page_live_interval_seconds: float = Field(
        default=5.0, ge=1.0, le=300.0, description="The page's live mode polls this often."
    )

    @model_validator(mode="after")
    def _secrets_fit_environment(self) -> AdminApiSettings:
        if self.environment == "development":
            return self
        secret = self.jwt_secret.get_secret_value()
        if secret != DEV_JWT_SECRET and len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"jwt_secret: at least {MIN_SECRET_LENGTH} characters outside development"
            )
        if secret == DEV_JWT_SECRET and self.jwks_url is None:
            raise ValueError(
                "jwt_secret: the development default is refused outside development; "
                "set SESSIONS_JWKS_URL (RS256/ES256) or a secret of your own"
            )
        return self

    @property
    def hs256_key(self) -> str | None:
        """The HS256 key in force, or None where only JWKS-signed tokens are accepted."""
        secret = self.jwt_secret.get_secret_value()
        if secret == DEV_JWT_SECRET and self.environment != "development":
            return None
        return secret
