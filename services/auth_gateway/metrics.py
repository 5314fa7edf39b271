"""The gateway's Prometheus metrics: a collector the host service registers with one line.

    gateway.register_metrics()            # prometheus_client's default registry
    gateway.register_metrics(my_registry) # or the service's own

Nothing is counted on the request path but refusals (an int per refused request); every
figure is read from the gateway when Prometheus scrapes. `session_gateway_staleness_seconds`
is the number to alert on: past `gateway_max_staleness_seconds` the gateway refuses sessions
(503; set to fail open, it admits them unchecked instead, `session_gateway_fail_open`) and
readiness says not ready.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from auth_gateway.middleware import Gateway

REFUSAL_REASONS = (
    "revoked",
    "tenant_unknown",
    "not_ready",
    "stale",
    "cookie_too_large",
    "too_many_credentials",
    "malformed_credential",
)
"""Why the middleware refused a request: every label value exists from the start, at 0."""


class GatewayCollector(Collector):
    """Reads one gateway's (`SessionGateway`'s) figures at scrape time."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    def collect(self) -> Iterator[Metric]:
        gateway = self._gateway
        watcher = gateway.watcher
        activity = gateway.activity
        staleness = watcher.staleness_seconds()  # since start-up before the first confirmation
        yield GaugeMetricFamily(
            "session_gateway_staleness_seconds",
            "Seconds since the revocations were last confirmed read up to the topic's end",
            value=staleness,
        )
        yield GaugeMetricFamily(
            "session_gateway_max_staleness_seconds",
            "The staleness past which the gateway is not ready and refuses sessions (or, set "
            "to fail open, admits them unchecked)",
            value=watcher.max_staleness_seconds,
        )
        yield GaugeMetricFamily(
            "session_gateway_ready",
            "1 when the revocations are read and current (readiness), else 0",
            value=1.0 if watcher.is_current else 0.0,
        )
        yield GaugeMetricFamily(
            "session_gateway_revocations_held",
            "Revocations in the table (sessions refused right now)",
            value=len(gateway.table),
        )
        refused = CounterMetricFamily(
            "session_gateway_requests_refused",
            "Requests the gateway refused, by reason",
            labels=("reason",),
        )
        for reason in REFUSAL_REASONS:
            refused.add_metric((reason,), gateway.refused.get(reason, 0))
        # fail open, a stale gateway admits what it cannot vouch for: seen only in its log
        # before, while GatewayStale said sessions were refused (a review, stop 72)
        yield GaugeMetricFamily(
            "session_gateway_fail_open",
            "1 when the gateway admits sessions it cannot check (gateway_fail_open), else 0",
            value=1.0 if gateway.settings.gateway_fail_open else 0.0,
        )
        yield CounterMetricFamily(
            "session_gateway_admitted_unverified",
            "Requests let past the revocations' currency check by fail open, while they were "
            "not read or not current (then checked against those read only; some are refused "
            "after)",
            value=gateway.admitted_unverified,
        )
        yield refused
        yield CounterMetricFamily(
            "session_gateway_records_applied",
            "Revocation records applied",
            value=watcher.records_applied,
        )
        skipped = CounterMetricFamily(
            "session_gateway_records_skipped",
            "Revocation records skipped, by why (rejected: unreadable or key and value "
            "disagree; newer_version: written in a newer contract than this gateway reads, its "
            "session admitted here)",
            labels=("why",),
        )
        skipped.add_metric(("rejected",), watcher.records_rejected)
        skipped.add_metric(("newer_version",), watcher.records_newer)
        skipped.add_metric(("tombstone_ignored",), watcher.tombstones_ignored)
        yield skipped
        yield GaugeMetricFamily(
            "session_gateway_revocations_unread",
            "Sessions whose latest revocation is of a newer contract than this gateway reads: "
            "admitted here until it is upgraded",
            value=len(watcher.unread),
        )
        yield CounterMetricFamily(
            "session_gateway_activity_sent", "Activity events sent", value=activity.sent
        )
        yield CounterMetricFamily(
            "session_gateway_activity_dropped",
            "Activity events dropped (the pending bound was reached)",
            value=activity.dropped,
        )
        yield GaugeMetricFamily(
            "session_gateway_activity_pending",
            "Activity events noted and not yet sent: waiting, or in the batch being sent",
            value=activity.pending,
        )
