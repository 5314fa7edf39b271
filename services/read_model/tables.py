"""The read model's tables (SQLAlchemy Core), whoever writes them.

The registry writes sessions, history, positions, applied commands, the outbox and revocations;
the admin API writes `session_settings`, `termination_requests` and `search_budgets` and reads
everything. Alembic migrations under `read_model/migrations` create exactly the tables of
`metadata`.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Computed,
    DateTime,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    func,
)

metadata = MetaData()

# A session's row: the fold of every event seen for it, in any order.
sessions = Table(
    "sessions",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("session_id", String(128), primary_key=True),
    # creation fields: NULL until session.created arrives (activity may come first)
    Column("user_id", String(128)),
    Column("user_name", String(256)),
    Column("session_type", String(16)),
    Column("ip_address", String(45)),
    # the creation address as 16 bytes (IPv4 mapped into IPv6): CIDR filters become ranges
    Column("ip_packed", LargeBinary(16)),
    Column("user_agent", String(1024)),
    Column("device", String(128)),
    Column("max_session_seconds", BigInteger),
    Column("idle_timeout_seconds", BigInteger),
    Column("created_at", DateTime(timezone=True)),
    # the maximum activity time seen, creation included
    Column("last_activity_at", DateTime(timezone=True)),
    # the address of the latest event that carried one, and that event's time (so the
    # merge stays order-insensitive when activity without an address comes later)
    Column("current_ip", String(45)),
    Column("current_ip_at", DateTime(timezone=True)),
    # min(created_at + max_session_seconds, last_activity_at + idle_timeout_seconds); for a
    # session never created (activity only), last_activity_at + the registry's
    # activity_only_seconds, after which the sweeper deletes the row
    Column("expires_at", DateTime(timezone=True)),
    # 'open' until a termination or expiry, which is final
    Column("state", String(16), nullable=False, server_default="open"),
    Column("ended_at", DateTime(timezone=True)),
    Column("end_reason", String(16)),
    Column("ended_by", String(128)),
    # when the broker appended the session.created the creation fields come from (the first
    # appended wins: a creation forged later cannot shorten a live session); NULL when unknown
    # (a row from before revision 1401, or a topic dated by its producers)
    Column("creation_appended_at", DateTime(timezone=True)),
    Index("ix_sessions_listing", "tenant_id", "state", "last_activity_at", "session_id"),
    Index("ix_sessions_expiry", "state", "expires_at"),
)

# Lifecycle history of each session (created, terminated, expired; not every activity).
# Keyed by (tenant_id, event_id): one tenant's producer cannot take another tenant's event id
# (revision 0201).
session_history = Table(
    "session_history",
    metadata,
    Column("event_id", String(36), nullable=False),
    Column("tenant_id", String(64), nullable=False),
    Column("session_id", String(128), nullable=False),
    Column("type", String(32), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("detail", JSON, nullable=False),
    PrimaryKeyConstraint("tenant_id", "event_id", name="pk_session_history"),
    Index("ix_session_history_session", "tenant_id", "session_id", "occurred_at"),
)

# Where each consumer stands in each partition; written in the same transaction as the rows.
consumer_positions = Table(
    "consumer_positions",
    metadata,
    Column("consumer", String(128), primary_key=True),
    Column("topic", String(249), primary_key=True),
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("next_offset", BigInteger, nullable=False),
)

# Partitions whose stored position a registry found past their end (the records there were
# skipped as applied already), kept until the operator's repair: `positions set` deletes a
# partition's row, and a swap starts without any. Revision 1801.
positions_past_end = Table(
    "positions_past_end",
    metadata,
    Column("consumer", String(128), primary_key=True),
    Column("topic", String(249), primary_key=True),
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("stored", BigInteger, nullable=False),
    Column("end_offset", BigInteger, nullable=False),
    Column("noted_at", DateTime(timezone=True), nullable=False),
)

# Termination commands applied (once each per tenant), with what they did: the audit trail.
applied_commands = Table(
    "applied_commands",
    metadata,
    Column("command_id", String(36), nullable=False),
    Column("tenant_id", String(64), nullable=False),
    Column("requested_by", String(128), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
    Column("reason", String(16), nullable=False),
    Column("target", JSON, nullable=False),
    Column("terminated", Integer, nullable=False),
    PrimaryKeyConstraint("tenant_id", "command_id", name="pk_applied_commands"),
    Index("ix_applied_commands_tenant_time", "tenant_id", "requested_at"),
)

# Termination requests accepted by the admin API (pending until the registry applies them).
termination_requests = Table(
    "termination_requests",
    metadata,
    Column("command_id", String(36), nullable=False),
    Column("tenant_id", String(64), nullable=False),
    Column("requested_by", String(128), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("reason", String(16), nullable=False),
    Column("target", JSON, nullable=False),
    Column("requested", Integer, nullable=False),
    PrimaryKeyConstraint("tenant_id", "command_id", name="pk_termination_requests"),
    Index("ix_termination_requests_tenant_time", "tenant_id", "requested_at"),
)

# Termination commands by a text filter, taken from the commands topic and not applied yet: the
# registry resolves their targets beside its consumer loop, in chunks, and ends each chunk in a
# transaction of its own (`session_registry.service_layer.deferred_terminations`). Revision
# 0901 creates it.
deferred_terminations = Table(
    "deferred_terminations",
    metadata,
    Column("command_id", String(36), nullable=False),
    Column("tenant_id", String(64), nullable=False),
    # where on the commands topic it came from: the registry assigned that partition resolves
    # it (NULL: any registry); the offset names it in a dead letter
    Column("partition", Integer),
    Column("record_offset", BigInteger),
    # its trace context (`traceparent`, `tracestate`), which the chunks' spans continue; JSON
    Column("trace_headers", LargeBinary),
    Column("command", JSON, nullable=False),  # the command, as its JSON
    Column("deferred_at", DateTime(timezone=True), nullable=False),
    # the last session id ended so far (its resolution goes on after it), and how many
    Column("ended_after", String(128)),
    Column("terminated", Integer, nullable=False, server_default="0"),
    PrimaryKeyConstraint("tenant_id", "command_id", name="pk_deferred_terminations"),
)

# Termination commands the registry gave up on: applying one failed by itself (a value the
# database refuses, an error the command provokes), and it went to the dead-letter topic. Its
# status is then `failed`, with what it ended before (a termination by a text filter can give
# up after some chunks), until a redrive applies it. `requested_at` is the command's, for the
# audit retention. Revision 1601 creates it.
failed_commands = Table(
    "failed_commands",
    metadata,
    Column("command_id", String(36), nullable=False),
    Column("tenant_id", String(64), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("failed_at", DateTime(timezone=True), nullable=False),
    Column("terminated", Integer, nullable=False),
    PrimaryKeyConstraint("tenant_id", "command_id", name="pk_failed_commands"),
)

# How the running registry reads `session.expired` records: its signing keys (by their public
# ids, `record_signing.key_id`) and `SESSIONS_RECORD_SIGNING_SINCE`, written at each start (one
# row). `rebuild --swap` refuses a shell that would read them otherwise. Revision 1701.
registry_signing = Table(
    "registry_signing",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("key_ids", String(1000), nullable=False),
    Column("since", DateTime(timezone=True), nullable=True),
    Column("written_at", DateTime(timezone=True), nullable=False),
)

# Records to publish, written in the read-model transaction and relayed to Kafka after it:
# a crash between the commit and the send re-sends (idempotent records), never loses.
outbox = Table(
    "outbox",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("topic", String(249), nullable=False),
    Column("key", LargeBinary, nullable=False),
    Column("value", LargeBinary),  # NULL: a tombstone
    Column("headers", LargeBinary),  # the record's headers (the trace context), JSON; or NULL
    # when the row was queued (the database's clock): the age of the oldest is a metric
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Revocations published and not yet tombstoned; the sweeper tombstones them after valid_until.
# The row holds the record published (its other fields), so the revocation guard can write it
# again whatever became of the session's row (retention, an expiry folded since). Revision 1301
# adds `session_type`, `revoked_at` and `reason`: NULL in a row written before it, or by the
# release before it on the migrated schema (the guard then reads the session's row).
revocations = Table(
    "revocations",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("session_id", String(128), primary_key=True),
    Column("valid_until", DateTime(timezone=True), nullable=False),
    Column("session_type", String(16)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("reason", String(16)),
    Index("ix_revocations_valid_until", "valid_until"),
)


# The current session settings of a tenant for one session type; no row means the defaults
# (`session_contracts.models.DEFAULT_POLICIES`). The admin API writes it; filters read it for
# `policy_outdated`. Revision 0101 creates it.
session_settings = Table(
    "session_settings",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("session_type", String(16), primary_key=True),
    Column("max_session_seconds", BigInteger, nullable=False),
    Column("idle_timeout_seconds", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(128), nullable=False),
)

# Every setting a tenant's session type has had, from `since` (the moment the admin API stamped
# its change) until the next row's: what a termination by `policy_outdated` compares sessions
# with, as of the moment of the count the admin confirmed (`read_model.session_query.
# policy_outdated`), not as of when the registry reads its targets, which may come after a
# later change (found by a review, 2026-12-06). The admin API writes a row with each change of
# `session_settings`. Revision 1501 creates it from `session_settings`.
session_settings_history = Table(
    "session_settings_history",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("session_type", String(16), nullable=False),
    Column("since", DateTime(timezone=True), nullable=False),
    Column("max_session_seconds", BigInteger, nullable=False),
    Column("idle_timeout_seconds", BigInteger, nullable=False),
    Column("changed_by", String(128), nullable=False),
    PrimaryKeyConstraint("tenant_id", "session_type", "since", name="pk_session_settings_history"),
)

# What one tenant's searches (or terminations by a text filter) have left of their budget,
# shared by every admin API process on the database (`admin_api.service_layer.shared_budgets`,
# `read_model.search_budgets`): `seconds` as of `at` (seconds since the epoch, the database's
# clock), refilling at `size` a minute up to `size` (the budget's setting in the process that
# last wrote it). A tenant whose bucket is full has no row. Revision 1001 creates it.
search_budgets = Table(
    "search_budgets",
    metadata,
    Column("budget", String(32), nullable=False),  # "searches" or "filter_terminations"
    Column("tenant_id", String(64), nullable=False),
    Column("seconds", Double, nullable=False),
    Column("at", Double, nullable=False),
    Column("size", Double, nullable=False),
    PrimaryKeyConstraint("budget", "tenant_id", name="pk_search_budgets"),
)

# Open, created browser/mobile sessions per tenant and type, kept by PostgreSQL statement
# triggers (revisions 0101, 0102). Derived from `sessions`, so on a metadata of its own: never
# created by `metadata.create_all`, never copied by a read-model swap (the rebuilt database
# counts itself). SQLite has no such table.
counts_metadata = MetaData()
listed_session_counts = Table(
    "listed_session_counts",
    counts_metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("session_type", String(16), primary_key=True),
    Column("sessions", BigInteger, nullable=False),
)

# Every user name a listed session of the tenant has had, kept by PostgreSQL triggers
# (revision 0501) for search; on the counts' metadata for the same reasons.
listed_user_names = Table(
    "listed_user_names",
    counts_metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("user_name", String(256), primary_key=True),
    # lower(user_name), kept by PostgreSQL (revision 0701): what `ILIKE` compares
    Column("user_name_folded", Text, Computed("lower(user_name)", persisted=True)),
)

__all__ = [
    "applied_commands",
    "consumer_positions",
    "counts_metadata",
    "listed_session_counts",
    "listed_user_names",
    "metadata",
    "outbox",
    "revocations",
    "session_history",
    "session_settings",
    "session_settings_history",
    "sessions",
    "termination_requests",
]
