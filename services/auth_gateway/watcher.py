"""The revocations topic as a `RevocationTable` (see `follower` for how the topic is read).

Each record is filed under its tenant-qualified key `<tenant_id>/<handle>`, and nothing a
record of one tenant says reaches another tenant's entries:

- A revocation is applied only when its Kafka key names the session its value names: the
  key is `record_key(tenant_id, session_id)` of the value (contract v2), or, for a v1 record,
  the v1 session id whose handle the upcaster derived (`session_handle(tenant_id, key)`). A
  record whose key and value disagree is skipped and counted in `records_rejected`.
- A revocation's expiry (`valid_until` plus the clock-skew grace) never moves earlier: a later
  record for the same session keeps the later of the two (`RevocationTable.add`), and a record
  already past its `valid_until` changes nothing.
- A tombstone (null value) is read only under a tenant-qualified key and touches only that
  (tenant, handle); it removes the entry only once the entry's expiry, `valid_until` plus the
  grace, has passed on this gateway's clock. The registry tombstones a revocation at its
  `valid_until` on its own clock, so the grace is what covers a registry clock ahead of this
  one. An earlier tombstone is counted in `tombstones_ignored` and the entry stays until
  eviction, at the same expiry.
- An expiry that cannot be computed (a NaN from the grace's arithmetic) holds the revocation
  for as long as the table can, never drops it.
- v1 records (the session id was the credential) are read through the shared decoder, whose
  upcaster turns the id into the same handle a gateway derives from that credential.
- Anything that cannot be decoded is counted in `records_rejected`, logged with its escaped
  reason, and skipped; `apply` never raises, so the follower never stops on a record.
- A revocation of a newer `schema_version` (a registry upgraded before this gateway: a
  `session.revoked` at most `NEWER_WITHIN` versions ahead, under its own contract key, of a
  served tenant) is counted apart, in `records_newer`, its key kept in `unread` until a
  readable record or a tombstone replaces it, and logged as an error: its session stays
  admitted here until this gateway is upgraded (alert `GatewayRevocationsUnread`, on
  `unread`). It was counted with the hostile records, which no alert reads (a review,
  stop 72).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Collection
from datetime import datetime

from opentelemetry.trace import SpanKind
from pydantic import TypeAdapter

from auth_gateway.follower import CompactedTopicFollower
from auth_gateway.revocations import ENDED, RevocationTable
from session_contracts.codec import DecodeError, NewerVersion, decode_revocation
from session_contracts.escaping import escape_reason
from session_contracts.handles import contract_key, is_v1_key_of, record_key
from session_contracts.kafka_records import unreadable_reason
from session_contracts.models import SCHEMA_VERSION, Timestamp
from session_contracts.settings import KafkaSettings
from session_contracts.tracing import RecordHeaders, extract_context, tracer

log = logging.getLogger(__name__)

NEWER_WITHIN = 2
"""How far ahead of this gateway's contract a revocation's `schema_version` may be and still
be taken as the next contract's (`RevocationWatcher._newer`), not as a broken record."""
_TIME: TypeAdapter[datetime] = TypeAdapter(Timestamp)
MAX_UNREAD = 100_000
"""The most sessions `RevocationWatcher.unread` names (the count goes on past it)."""


class RevocationWatcher(CompactedTopicFollower):
    """Keeps `table` equal to the live revocations of its tenants on the topic.

    `tenants`: the tenants whose revocations are kept (a single-tenant service names its
    own); None keeps every tenant's (a gateway serving tenants a resolver names).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        tenants: Collection[str] | None,
        table: RevocationTable,
        *,
        fetch_max_wait_ms: int = 100,
        grace_seconds: float = 60.0,
        max_staleness_seconds: float = math.inf,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        partitions_check_seconds: float = 30.0,
    ) -> None:
        super().__init__(
            kafka,
            topic,
            fetch_max_wait_ms=fetch_max_wait_ms,
            clock=clock,
            monotonic=monotonic,
            max_staleness_seconds=max_staleness_seconds,
            partitions_check_seconds=partitions_check_seconds,
        )
        self.table = table
        self._tenants = None if tenants is None else frozenset(tenants)
        self.on_revoked: Callable[[bytes], None] | None = None
        """Told the key of every revocation applied (the gateway closes its open sockets)."""
        self._grace = grace_seconds
        self.records_applied = 0
        self.records_rejected = 0
        self.records_newer = 0
        self.unread: set[bytes] = set()
        """Keys of served sessions whose latest record is a revocation of a newer contract
        (`_newer`): each such session is admitted here. A readable record or a tombstone under
        the key takes it out; at most `MAX_UNREAD` are named."""
        self.tombstones_ignored = 0

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Fold one record of the topic into the table (a None value is a tombstone).

        Never raises: a record it cannot read is counted, logged and skipped.
        """
        try:
            if value is None:
                self._tombstone(key)
            else:
                self._revocation(key, value)
        except Exception as exc:  # the decoder is total; this guards the rest of the fold
            self._reject(key, f"unexpected {type(exc).__name__}: {exc}")

    def apply_with_headers(
        self, key: bytes | None, value: bytes | None, headers: RecordHeaders
    ) -> None:
        """`apply`, under a child span of the registry's when the record carries a trace
        context (tracing on); records without one cost nothing more. Headers this cannot read
        are passed over, never the record: a revocation carrying a header without a value was
        skipped whole (`trace_headers` raised on it)."""
        if not headers:
            self.apply(key, value)
            return
        unreadable = unreadable_reason(key, value, headers)
        if unreadable is not None:  # not a tombstone: a batch the consumer could not read
            self.records_rejected += 1
            log.error(
                "%s holds a batch this gateway cannot read, skipped; the revocations in it are "
                "not enforced here: %s",
                self.topic,
                escape_reason(unreadable),
            )
            return
        try:
            context = extract_context(headers)
        except Exception:  # the trace is what is lost, never the revocation
            log.warning("revocation record's trace headers unreadable; applied untraced")
            self.apply(key, value)
            return
        with tracer().start_as_current_span(
            "gateway.apply_revocation", context=context, kind=SpanKind.CONSUMER
        ):
            self.apply(key, value)

    def _serves(self, tenant_id: str) -> bool:
        return self._tenants is None or tenant_id in self._tenants

    def _tombstone(self, key: bytes | None) -> None:
        parts = contract_key(key)
        if parts is None:
            # A v1 tombstone (keyed by a raw id, no tenant) or no key at all: it names no
            # entry of any tenant; the entry it meant leaves by eviction after valid_until.
            self.tombstones_ignored += 1
            return
        if not self._serves(parts[0]):
            return
        # The entry's expiry already holds the grace: adding it to the clock as well (before
        # 2026-12-06) cancelled it, and the registry's tombstone at valid_until removed it then.
        self.unread.discard(bytes(key or b""))
        if self.table.discard_ended(bytes(key or b""), self._clock()) is None:
            self.tombstones_ignored += 1  # before valid_until + grace: the revocation stays

    def _revocation(self, key: bytes | None, value: bytes) -> None:
        if key is None:
            self._reject(key, "a revocation record without a key")
            return
        try:
            record = decode_revocation(value)
        except NewerVersion as exc:
            newer = self._newer(key, value)
            if newer == "ours":
                log.error(
                    "revocation record %s is of a newer contract than this gateway reads, so "
                    "its session stays admitted here: upgrade this gateway (%s)",
                    _named(key),
                    exc.reason,
                )
            elif newer is None:
                self._reject(key, f"not a session.revoked record this gateway reads: {exc.reason}")
            return
        except DecodeError as exc:
            self._reject(key, f"not a session.revoked record this gateway reads: {exc.reason}")
            return
        entry = record_key(record.tenant_id, record.session_id)
        if key != entry and not is_v1_key_of(key, record.tenant_id, record.session_id):
            self._reject(key, "its key does not name the session its value names")
            return
        if not self._serves(record.tenant_id):
            return
        self.unread.discard(entry)
        until = record.valid_until.timestamp() + self._grace
        # A record already past it could no longer be valid. Asked as "not past": an expiry
        # that is NaN compares false either way, and is held (`RevocationTable.add`).
        if not until <= self._clock():
            self.table.add(entry, until, ENDED.get(record.reason.value, 0))
            if self.on_revoked is not None:
                self.on_revoked(entry)
        self.records_applied += 1

    def _newer(self, key: bytes, value: bytes) -> str | None:
        """What a record of a newer `schema_version` is: `ours`, a revocation of a session this
        gateway serves written by the next contract (a `session.revoked` at most
        `NEWER_WITHIN` versions ahead, under its own contract key: `contract_key`'s shapes, so
        a tombstone can clear it); `others`, the same of a tenant it does not serve (skipped
        unsaid, as a readable one is); None, anything else: hostile or broken, rejected.
        `ours` is counted (`records_newer`) and, until its `valid_until` has passed, named in
        `unread`, which pages. Any record above 3 was paged at first (a review, stop 72), and a
        key of no contract shape was kept for good (a review of that fix)."""
        try:
            payload = json.loads(value)
        except ValueError:
            return None
        if not isinstance(payload, dict) or payload.get("type") != "session.revoked":
            return None
        version = payload.get("schema_version")
        if type(version) is not int or not 0 < version - SCHEMA_VERSION <= NEWER_WITHIN:
            return None
        # the key's own shapes (`contract_key`), naming the session the value names
        named = contract_key(key)
        if named is None or named != (payload.get("tenant_id"), payload.get("session_id")):
            return None
        if not self._serves(named[0]):
            return "others"
        self.records_newer += 1
        if (
            _still_valid(payload.get("valid_until"), self._clock() - self._grace)
            and len(self.unread) < MAX_UNREAD
        ):
            self.unread.add(key)
        return "ours"

    def _reject(self, key: bytes | None, reason: str) -> None:
        self.records_rejected += 1
        log.warning("revocation record %s ignored, %s", _named(key), escape_reason(reason))


def _still_valid(valid_until: object, now: float) -> bool:
    """Whether a newer record's `valid_until`, read as the current contract reads a time, is
    ahead of `now` (the clock less the grace, as the table holds a revocation); one that
    cannot be read so is taken as ahead, the session perhaps revoked. `fromisoformat` alone
    took a bare date or a naive time, the latter in the host's zone (a review, stop 72)."""
    try:
        return _TIME.validate_python(valid_until).timestamp() > now
    except ValueError:
        return True


def _named(key: bytes | None) -> str:
    """A record's key as a log may show it: a contract key (`<tenant_id>/<handle>`; a handle is
    a digest, not a credential) as it is, any other only by its size. A v1 key is the session
    id itself, a credential: the log printed up to 128 bytes of it."""
    if key is None:
        return "without a key"
    parts = contract_key(key)
    if parts is not None:
        return f"{parts[0]}/{parts[1]}"
    return f"with a key of {len(key)} bytes (not shown: it may be a credential)"
