"""The revocations topic as a `RevocationTable` (see `follower` for how the topic is read)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from auth_gateway.follower import CompactedTopicFollower
from auth_gateway.revocations import RevocationTable
from session_contracts.codec import DecodeError, decode_revocation

log = logging.getLogger(__name__)


class RevocationWatcher(CompactedTopicFollower):
    """Keeps `table` equal to the revocations of one tenant on the topic, minus expired ones."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        tenant_id: str,
        table: RevocationTable,
        *,
        fetch_max_wait_ms: int = 100,
        grace_seconds: float = 60.0,
        max_staleness_seconds: float = math.inf,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            bootstrap_servers,
            topic,
            fetch_max_wait_ms=fetch_max_wait_ms,
            clock=clock,
            monotonic=monotonic,
            max_staleness_seconds=max_staleness_seconds,
        )
        self.table = table
        self._tenant = tenant_id
        self._grace = grace_seconds
        self.records_applied = 0
        self.records_rejected = 0

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Fold one record of the topic into the table (a None value is a tombstone)."""
        if key is None:
            self.records_rejected += 1
            log.warning("revocation record without a key ignored")
            return
        if value is None:
            self.table.discard(key)
            return
        try:
            record = decode_revocation(value)
        except DecodeError as exc:
            self.records_rejected += 1
            log.warning(
                "revocation record %r ignored, not a session.revoked record this gateway reads: %s",
                key[:128],
                exc.reason,
            )
            return
        if record.tenant_id != self._tenant:
            return
        until = record.valid_until.timestamp() + self._grace
        if until <= self._clock():
            self.table.discard(key)  # could no longer be valid anyway
        else:
            self.table.add(key, until)
        self.records_applied += 1
