"""The registry's Prometheus metrics, on a registry of its own (several can run in one process).

Counters are bumped once per batch or sweep, never per record, so they cost nothing measurable
on the hot path. What is a level at scrape time (lag, the outbox, the age of the last commit)
is read when Prometheus scrapes: lag from the consumer's last fetched high watermarks and the
positions this process committed, the outbox from the database (`OutboxProbe`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

_REASON_CLASSES = (
    ("empty record", "empty"),
    ("record of ", "too_large"),
    ("malformed JSON", "malformed_json"),
    ("expected a JSON object", "not_an_object"),
    ("schema_version", "schema_version"),
    ("unknown ", "unknown_type"),
    ("undecodable", "undecodable"),
    ("the database refused it", "database_refused"),
    ("the registry could not apply it", "registry_error"),
    ("unreadable batch", "unreadable_batch"),
)
"""Dead-letter reasons quote the record; the label is their class, a bounded set."""


def reason_class(reason: str) -> str:
    """The bounded label of a dead letter's reason (`contract` for a schema violation)."""
    for prefix, label in _REASON_CLASSES:
        if reason.startswith(prefix):
            return label
    return "contract" if "breaks the contract" in reason else "other"


PartitionLag = Callable[[], Mapping[tuple[str, int], int]]


@dataclass
class QueueLevel:
    """A queue as last read (the outbox, the deferred terminations): rows waiting and the age
    of the oldest."""

    backlog: int = 0
    oldest_age_seconds: float = 0.0


class _Levels(Collector):
    """Gauges read at scrape time: lag per partition, the outbox, the deferred terminations,
    the last commit's age."""

    def __init__(self, metrics: RegistryMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        m = self._metrics
        lag = GaugeMetricFamily(
            "session_registry_consumer_lag",
            "Records on the partition not yet applied (its end minus the stored position)",
            labels=("topic", "partition"),
        )
        for (topic, partition), value in sorted(m.lag().items()):
            lag.add_metric((topic, str(partition)), value)
        yield lag
        yield GaugeMetricFamily(
            "session_registry_partitions_assigned",
            "Partitions this registry process consumes",
            value=len(m.lag()),
        )
        yield GaugeMetricFamily(
            "session_registry_outbox_backlog",
            "Outbox records waiting to be published",
            value=m.outbox.backlog,
        )
        yield GaugeMetricFamily(
            "session_registry_outbox_oldest_age_seconds",
            "Age of the oldest outbox record waiting to be published (0 when empty)",
            value=m.outbox.oldest_age_seconds,
        )
        yield GaugeMetricFamily(
            "session_registry_terminations_deferred",
            "Terminations by a text filter taken from the commands topic and not applied yet",
            value=m.deferred.backlog,
        )
        yield GaugeMetricFamily(
            "session_registry_terminations_deferred_oldest_age_seconds",
            "Age of the oldest termination by a text filter not applied yet (0 when none)",
            value=m.deferred.oldest_age_seconds,
        )
        age = m.last_commit_age()
        yield GaugeMetricFamily(
            "session_registry_last_commit_age_seconds",
            "Seconds since this process last committed a batch (since start before the first)",
            value=age,
        )


class RegistryMetrics:
    """Every metric of one registry process; `registry` is what /metrics renders."""

    def __init__(
        self, *, lag: PartitionLag | None = None, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.registry = CollectorRegistry()
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            # the process-wide collectors, rendered by this registry too
            self.registry.register(collector)
        self._monotonic = monotonic
        self._last_commit = monotonic()
        self.lag: PartitionLag = lag or dict
        self.outbox = QueueLevel()
        self.deferred = QueueLevel()
        """The deferred terminations as last read (their count, the oldest's age)."""
        r = self.registry
        self.events_applied = Counter(
            "session_registry_events_applied",
            "Events applied to the read model, by type",
            ("type",),
            registry=r,
        )
        self.batch_seconds = Histogram(
            "session_registry_batch_seconds",
            "Time to apply one batch in one transaction",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batches_failed = Counter(
            "session_registry_batches_failed",
            "Batches that failed (database or broker away) and are retried",
            registry=r,
        )
        self.batches_dropped = Counter(
            "session_registry_batches_dropped",
            "Batches fetched during a rebalance, dropped and fetched again from the stored "
            "positions",
            registry=r,
        )
        self.dead_letters = Counter(
            "session_registry_dead_letters",
            "Records sent to the dead-letter topic, by reason class",
            ("reason",),
            registry=r,
        )
        self.commands_applied = Counter(
            "session_registry_commands_applied",
            "Termination commands applied",
            registry=r,
        )
        self.commands_failed = Counter(
            "session_registry_commands_failed",
            "Termination commands dead-lettered: given up in their application (their status "
            "says failed) or refused as they were read (their status stays pending)",
            registry=r,
        )
        self.sweeps = Counter(
            "session_registry_sweeps",
            "Expiry sweeps run, by outcome (ok, failed)",
            ("outcome",),
            registry=r,
        )
        self.sessions_terminated = Counter(
            "session_registry_sessions_terminated",
            "Sessions ended by termination commands",
            registry=r,
        )
        self.terminations_awaiting_creation = Counter(
            "session_registry_terminations_awaiting_creation",
            "Sessions a command named by id before their creation was read: kept ended, "
            "revoked when created",
            registry=r,
        )
        self.sessions_expired = Counter(
            "session_registry_sessions_expired",
            "Sessions the sweeper expired",
            registry=r,
        )
        self.sessions_purged = Counter(
            "session_registry_sessions_purged",
            "Ended sessions the sweeper deleted, with their history, past the retention",
            registry=r,
        )
        self.audit_purged = Counter(
            "session_registry_audit_purged",
            "Rows of the termination audit trail (applied commands, requests) the sweeper "
            "deleted past the audit retention",
            registry=r,
        )
        self.records_miskeyed = Counter(
            "session_registry_records_miskeyed",
            "Records applied whose Kafka key is not the one the contract gives their value "
            "(a producer keys by something else), by record",
            ("record",),
            registry=r,
        )
        self.creations_dated_ahead = Counter(
            "session_registry_creations_dated_ahead",
            "session.created records dated after the broker appended them, taken as created "
            "then (a producer's clock ahead, or a producer dating sign-ins ahead)",
            registry=r,
        )
        self.expiries_not_due = Counter(
            "session_registry_expiries_not_due",
            "session.expired records applied to open sessions before their deadline: the "
            "registry writes none such (a producer allowed on the events topic expires "
            "sessions, which keeps them from terminations while the platform serves them)",
            registry=r,
        )
        self.expired_sessions_served = Counter(
            "session_registry_expired_sessions_served",
            "expired sessions revoked because activity dated after their expiry was read: "
            "their platform served them after the registry expired them",
            registry=r,
        )
        self.revocations_rewritten = Counter(
            "session_registry_revocations_rewritten",
            "Revocations written again because the last record under their key on the "
            "revocations topic would un-revoke them at gateways started after compaction (a "
            "producer other than the registry writes the topic)",
            registry=r,
        )
        self.creations_contested = Counter(
            "session_registry_creations_contested",
            "session.created records of sessions created otherwise (another time or policy): "
            "a login service writes one a session; the one the broker appended first wins, "
            "so someone else writes creations",
            registry=r,
        )
        self.corrupt_batches = Counter(
            "session_registry_corrupt_batches",
            "Fetches that found a batch whose CRC fails (damaged where the broker keeps it); "
            "its partition is held",
            registry=r,
        )
        self.partitions_held = Gauge(
            "session_registry_partitions_held",
            "Partitions held at a batch whose CRC fails, not read past it (the others are)",
            registry=r,
        )
        self.positions_past_end = Gauge(
            "session_registry_positions_past_end",
            "Partitions whose stored position is past their end offset: the topic made again or "
            "its log cut short; their records are skipped as applied and sweeps wait",
            registry=r,
        )
        self.sweep_behind = Gauge(
            "session_registry_sweep_behind_seconds",
            "How far behind the clock the sweeper expires: nothing later than the moment up to "
            "which every partition of the group is applied (since start while none is known)",
            registry=r,
        )
        self.events_producer_dated = Gauge(
            "session_registry_events_producer_dated",
            "1 while the latest event records applied were dated by their producer "
            "(sessions.events left at CreateTime), 0 once dated by the broker",
            registry=r,
        )
        self.records_skipped = Counter(
            "session_registry_records_skipped",
            "Records below the stored position (redelivered), skipped",
            registry=r,
        )
        self.outbox_published = Counter(
            "session_registry_outbox_published",
            "Outbox records published to Kafka",
            registry=r,
        )
        self.outbox_relay_failures = Counter(
            "session_registry_outbox_relay_failures",
            "Outbox relays that failed (the records stay queued)",
            registry=r,
        )
        # every label value the alerts and dashboard name exists from the start, at 0
        for _, label in _REASON_CLASSES:
            self.dead_letters.labels(label)
        for label in ("contract", "other"):
            self.dead_letters.labels(label)
        for label in ("event", "command"):
            self.records_miskeyed.labels(label)
        for label in ("ok", "failed"):
            self.sweeps.labels(label)
        r.register(_Levels(self))

    def committed(
        self,
        seconds: float,
        event_types: Mapping[str, int],
        dead_letter_reasons: Iterable[str],
        commands: int,
        terminated: int,
        skipped: int,
        miskeyed: Mapping[str, int],
        dated_ahead: int = 0,
        producer_dated: bool | None = None,
        awaiting_creation: int = 0,
        expiries_not_due: int = 0,
        creations_contested: int = 0,
        commands_failed: int = 0,
        served_after_expiry: int = 0,
    ) -> None:
        """One batch committed."""
        self._last_commit = self._monotonic()
        self.batch_seconds.observe(seconds)
        for kind, count in event_types.items():
            self.events_applied.labels(kind).inc(count)
        for reason in dead_letter_reasons:
            self.dead_letters.labels(reason_class(reason)).inc()
        if commands:
            self.commands_applied.inc(commands)
        if commands_failed:
            self.commands_failed.inc(commands_failed)
        if terminated:
            self.sessions_terminated.inc(terminated)
        if awaiting_creation:
            self.terminations_awaiting_creation.inc(awaiting_creation)
        if skipped:
            self.records_skipped.inc(skipped)
        for kind, count in miskeyed.items():
            self.records_miskeyed.labels(kind).inc(count)
        if dated_ahead:
            self.creations_dated_ahead.inc(dated_ahead)
        if expiries_not_due:
            self.expiries_not_due.inc(expiries_not_due)
        if creations_contested:
            self.creations_contested.inc(creations_contested)
        if served_after_expiry:
            self.expired_sessions_served.inc(served_after_expiry)
        if producer_dated is not None:
            self.events_producer_dated.set(int(producer_dated))

    def last_commit_age(self) -> float:
        """Seconds since the last committed batch."""
        return max(0.0, self._monotonic() - self._last_commit)
