"""What the routes need at run time, built once by `create_app` and kept on `app.state`."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from admin_api.adapters.bus import CommandBus
from admin_api.auth import TokenVerifier
from admin_api.domain.cursors import CursorCodec
from admin_api.service_layer.schema_watch import SchemaWatch
from admin_api.service_layer.tenant_slots import SearchBudget, TenantExports, TenantSlots
from admin_api.settings import MIN_SECRET_LENGTH, AdminApiSettings
from read_model.store import Store

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


@dataclass
class Runtime:
    """The read model's store, the Kafka bus, the token verifier, the clock, the metrics and
    the schema's standing."""

    settings: AdminApiSettings
    store: Store
    bus: CommandBus
    verifier: TokenVerifier
    clock: Clock
    metrics: CollectorRegistry
    schema: SchemaWatch
    """The database schema's standing against this release (`/readyz`, the log, a gauge)."""
    cursors: CursorCodec = field(init=False)
    """Signs and checks the lists' page cursors (`cursor_keys`)."""
    searches: TenantSlots = field(init=False)
    """How many searches of one tenant this process reads at once (`searches_per_tenant`), and
    for how long a minute (`search_seconds_per_minute`, shared by the processes)."""
    exports: TenantExports = field(init=False)
    """How many CSV exports of one tenant this process streams at once (`exports_per_tenant`)."""
    filter_terminations: SearchBudget = field(init=False)
    """How long a minute one tenant's terminations by a text filter may count their matches
    (`filter_termination_seconds_per_minute`): the registry resolves each such filter again,
    in the transaction every tenant's events wait behind."""

    def __post_init__(self) -> None:
        signing, *previous = cursor_keys(self.settings)
        self.cursors = CursorCodec(signing, previous)
        self.searches = TenantSlots(
            self.settings.searches_per_tenant,
            SearchBudget(self.settings.search_seconds_per_minute),
        )
        self.exports = TenantExports(self.settings.exports_per_tenant)
        self.filter_terminations = SearchBudget(
            self.settings.filter_termination_seconds_per_minute,
            spent_by="terminations by a filter with a text condition",
            name="filter_terminations",
        )

    @property
    def budgets(self) -> tuple[SearchBudget, ...]:
        """Every per-tenant budget, as `shared_budgets.BudgetSync` shares them."""
        return (self.searches.budget, self.filter_terminations)

    @property
    def engine(self) -> AsyncEngine:
        """The store's engine, for reads."""
        return self.store.engine


DEV_CURSOR_SECRET = "session-control-development-cursor-key-not-for-production"
"""Public: signs cursors only in development without an HS256 key or a cursor secret."""


def cursor_keys(settings: AdminApiSettings) -> tuple[bytes, ...]:
    """The keys page cursors are signed with (the first) and opened with (every one): the same
    in every worker and on every host.

    Several uvicorn workers (and replicas behind a load balancer) answer one admin's pages in
    turn, so the keys must come from configuration they share, never be drawn per process (a
    page 2 landing on another worker would be refused). `SESSIONS_CURSOR_SECRETS` (or
    `SESSIONS_CURSOR_SECRET`) when set; otherwise derived from the HS256 keys, which every
    worker already shares; with neither (JWKS only) development uses a public key and
    production refuses to start. Several secrets are a rotation: the new one first signs, the
    old ones still open the cursors they signed until they are removed.
    """
    production = settings.environment == "production"
    secrets = settings.configured_cursor_secrets()
    if secrets:
        name = "SESSIONS_CURSOR_SECRETS" if len(secrets) > 1 else "SESSIONS_CURSOR_SECRET"
        if production and any(len(secret) < MIN_SECRET_LENGTH for secret in secrets):
            raise ValueError(f"{name}: at least {MIN_SECRET_LENGTH} characters in production")
        if production and DEV_CURSOR_SECRET in secrets:
            # public in this repository: an admin could forge a cursor's totals and position
            # (a review, stop 70)
            raise ValueError(f"{name}: the public development cursor key is refused in production")
    elif settings.hs256_keys:
        secrets = settings.hs256_keys
    elif production:
        raise ValueError(
            "SESSIONS_CURSOR_SECRET: set it (32+ random characters, the same for every worker "
            "and host of the admin API); it signs the lists' page cursors, and with JWKS-only "
            "authentication there is no HS256 key to derive it from"
        )
    else:
        secrets = (DEV_CURSOR_SECRET,)
    # A key of its own, whatever else the secret signs (HMAC as a KDF, with a purpose label).
    return tuple(
        hmac.new(secret.encode(), b"session-control page cursors v1", hashlib.sha256).digest()
        for secret in secrets
    )
