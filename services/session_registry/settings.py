"""The registry's settings (env prefix `SESSIONS_`), built once at start-up and injected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Self

from pydantic import Field, SecretStr, field_validator, model_validator

from session_contracts.models import as_utc
from session_contracts.record_signing import RecordSigner, SignedExpiries, key_id
from session_contracts.settings import DEFAULT_DATABASE_URL, KafkaSettings, comma_secrets
from session_contracts.topics import COMMANDS_RETENTION_DAYS
from session_registry.adapters.partitions import to_millis
from session_registry.adapters.signing_standing import SigningStanding
from session_registry.domain.state import ACTIVITY_ONLY_SECONDS

DEFAULT_CONSUMER_GROUP = "session-registry"
"""The registry's group id after the group prefix."""
MIN_AUDIT_RETENTION_DAYS = COMMANDS_RETENTION_DAYS + 1
"""The shortest audit retention: longer than `sessions.commands` keeps a command."""
MIN_SIGNING_KEY_CHARS = 32
"""The shortest record signing key accepted (an HMAC-SHA256 key of 32 random characters)."""


class RegistrySettings(KafkaSettings):
    """Where the read model lives, which consumer group reads, and how big the batches are."""

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="Read model URL: sqlite+aiosqlite or postgresql+asyncpg.",
        repr=False,  # it may hold a password: never in a settings object's repr
    )
    kafka_client_id: str = Field(
        default="session-registry", min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$"
    )
    consumer_group: str = Field(
        default="",
        max_length=128,
        pattern=r"^[A-Za-z0-9._-]*$",
        description="Kafka consumer group; also the name the stored positions are kept under. "
        "Empty: `<group prefix>session-registry` (the group prefix defaults to the topic "
        "prefix, so environments sharing a cluster never share the group).",
    )
    group_instance_id: str | None = Field(
        default=None,
        max_length=128,
        description="Static group membership: a restarted process with the same id takes its "
        "partitions back at once, without a rebalance (e.g. the pod name of a StatefulSet).",
    )
    session_timeout_ms: int = Field(default=10_000, ge=1_000, le=300_000)
    batch_max_records: int = Field(
        default=20_000, ge=1, le=1_000_000, description="Records per getmany batch at most."
    )
    poll_timeout_ms: int = Field(default=200, ge=1, le=60_000)
    held_partition_retry_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3_600,
        description="How often a partition held at a batch whose CRC fails is fetched again "
        "(the broker serves it whole once the damaged copy is repaired or leadership moves).",
    )
    max_partition_fetch_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024)
    revocation_guard: bool = Field(
        default=True,
        description="Follow the revocations topic and write the registry's revocation again "
        "under a key whose last record would un-revoke a session at gateways started after "
        "compaction (`service_layer.revocation_guard`; its principal needs READ on the topic).",
    )
    record_signing_keys: SecretStr | None = Field(
        default=None,
        description="Keys signing the records only the registry writes (session.expired), "
        "comma-separated, each at least 32 characters: the first signs, every one verifies "
        "(rotation: add the new one after the old ones everywhere, then move it first; keep "
        "an old one while the events topic holds records it signed). Set, a session.expired "
        "without a valid signature is dead-lettered (only the registry writes it: anyone "
        "else's could keep a live session from every termination); unset, it is applied, "
        "and one before its deadline counted (RegistryExpiriesNotDue).",
    )
    record_signing_since: datetime | None = Field(
        default=None,
        description="With record_signing_keys: a session.expired without a signature that the "
        "broker appended (LogAppendTime) before this moment is applied (written before the "
        "keys were set). Unset: none is. Set it to when the keys were first deployed.",
    )
    sweep_interval_seconds: float = Field(
        default=5.0, ge=0, description="How often the expiry sweeper runs; 0 turns it off."
    )
    sweep_batch_size: int = Field(default=1000, ge=1, le=100_000)
    activity_grace_seconds: int = Field(
        default=120,
        ge=0,
        le=86_400,
        description="How long after a session's expires_at its activity may still arrive: "
        "gateways report a session at most once per SESSIONS_GATEWAY_ACTIVITY_INTERVAL_SECONDS "
        "(60 s), so the platform's idle deadline can be that much later than the registry's. "
        "The sweeper expires a session (finally) only this long after its expires_at, and a "
        "termination also ends the sessions whose expires_at passed less than this before "
        "it. Keep it above the gateways' interval plus the pipeline's lag.",
    )
    ended_retention_days: int = Field(
        default=30,
        ge=0,
        le=36_600,
        description="An ended session (terminated or expired) is deleted with its history this "
        "many days after the later of its end and its expires_at; 0 keeps every ended session. "
        "Revocations are not affected: each stays until its valid_until.",
    )
    audit_retention_days: int = Field(
        default=400,
        ge=0,
        le=36_600,
        description="A termination's audit trail (the applied command, the admin's request) is "
        "deleted this many days after it was requested; 0 keeps it all. At least "
        f"{MIN_AUDIT_RETENTION_DAYS} days: longer than the commands topic keeps a command, so a "
        "command read again (a consumer rewound) still finds its mark and is not applied twice.",
    )
    activity_only_seconds: int = Field(
        default=ACTIVITY_ONLY_SECONDS,
        ge=60,
        le=7 * 86400,
        description="A session seen only through activity (never created) is deleted this "
        "long after its latest activity; it is never listed.",
    )
    outbox_chunk: int = Field(default=10_000, ge=1, le=100_000)
    migrate_on_start: bool = Field(
        default=True, description="Bring the database to the current schema on start."
    )
    create_topics: bool = Field(
        default=True, description="Create missing topics (with the contract's settings) on start."
    )
    db_pool_size: int = Field(
        default=5, ge=1, le=100, description="PostgreSQL connections kept open."
    )
    db_max_overflow: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Connections opened beyond the pool under bursts (default: the pool size).",
    )
    registry_http_host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address of the operations port (/healthz, /readyz, /metrics); "
        "loopback by default: put a scraper or a proxy on the host to reach it.",
    )
    registry_http_port: int | None = Field(
        default=9180,
        ge=0,
        le=65535,
        description="Port of /healthz, /readyz and /metrics (`session-registry run`); "
        "0: any free port (logged at start); unset (null): no operations port.",
    )
    registry_metrics: bool = Field(
        default=True,
        description="Keep and export the Prometheus metrics (/metrics); false: no metric is "
        "kept or served (/healthz and /readyz still answer), to measure what they cost.",
    )
    registry_ready_max_lag: int = Field(
        default=1000,
        ge=0,
        description="/readyz answers 503 while the records not yet applied, over every "
        "assigned partition, are more than this.",
    )
    registry_lag_refresh_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="How often the registry asks the broker for the end of each partition it "
        "holds (one ListOffsets request per leader), so the consumer lag and /readyz count "
        "the records that arrive while the consumer loop is stuck on a batch.",
    )
    registry_alive_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="/healthz answers 503 once the consumer loop has not gone round (polled, "
        "settled a batch, retried) for this long: it hangs, restart the process.",
    )

    @property
    def audit_retention(self) -> timedelta | None:
        """`audit_retention_days` as a span; None when the audit trail is kept (0)."""
        return timedelta(days=self.audit_retention_days) if self.audit_retention_days else None

    @field_validator("audit_retention_days")
    @classmethod
    def _audit_outlives_commands(cls, days: int) -> int:
        if 0 < days < MIN_AUDIT_RETENTION_DAYS:
            raise ValueError(
                f"audit_retention_days must be 0 (keep) or at least {MIN_AUDIT_RETENTION_DAYS}: "
                f"the commands topic keeps a command {COMMANDS_RETENTION_DAYS} days, and a command "
                "read again after its audit row is gone would be applied again"
            )
        return days

    @property
    def activity_grace(self) -> timedelta:
        """`activity_grace_seconds` as a span."""
        return timedelta(seconds=self.activity_grace_seconds)

    @property
    def ended_retention(self) -> timedelta | None:
        """`ended_retention_days` as a span; None when ended sessions are kept (0)."""
        return timedelta(days=self.ended_retention_days) if self.ended_retention_days else None

    @property
    def signed_expiries(self) -> SignedExpiries | None:
        """How `session.expired` records are read (`record_signing_keys`); None: unsigned ones
        are applied."""
        if self.record_signing_keys is None:
            return None
        since = self.record_signing_since
        return SignedExpiries(
            RecordSigner(comma_secrets("record_signing_keys", self.record_signing_keys)),
            None if since is None else to_millis(as_utc(since)),
        )

    @property
    def signing_standing(self) -> SigningStanding:
        """How these settings read `session.expired` records: the keys' public ids, sorted,
        and the "since" (None without keys: it means nothing then)."""
        if self.record_signing_keys is None:
            return SigningStanding((), None)
        keys = comma_secrets("record_signing_keys", self.record_signing_keys)
        since = self.record_signing_since
        return SigningStanding(
            tuple(sorted({key_id(key.encode()).decode() for key in keys})),
            None if since is None else as_utc(since),
        )

    @model_validator(mode="after")
    def _signing(self) -> Self:
        # after the fields are read, so an error names the key by its place, never its text
        # (no error echoes what was read: `KafkaSettings.model_config`)
        keys, since = self.record_signing_keys, self.record_signing_since
        if keys is None:
            if since is not None:
                raise ValueError("record_signing_since is set without record_signing_keys")
            return self
        short = [
            str(n)
            for n, key in enumerate(comma_secrets("record_signing_keys", keys), 1)
            if len(key) < MIN_SIGNING_KEY_CHARS
        ]
        if short:
            raise ValueError(
                f"record_signing_keys: key {', '.join(short)} is shorter than "
                f"{MIN_SIGNING_KEY_CHARS} characters"
            )
        if since is not None and as_utc(since) > datetime.now(UTC):
            raise ValueError(
                "record_signing_since is later than now: every unsigned session.expired "
                "appended before it would be applied (set it to when the keys were first set)"
            )
        return self

    @model_validator(mode="after")
    def _default_group(self) -> Self:
        if not self.consumer_group:
            self.consumer_group = self.group_id(DEFAULT_CONSUMER_GROUP)
        return self
