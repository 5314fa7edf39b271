"""The revocations topic kept to what the registry wrote, as gateways will read it after compaction.

A running gateway ignores a record that would un-revoke a session it holds revoked: an early
tombstone, a value it cannot read, another session's value, a revocation already past. But the
log cleaner keeps only the last record of each key, so a gateway started after compaction (a
restart, a deploy, a new replica) never learned such a revocation, and said current (found by
a review, 2026-12-06, reproduced on the broker). Only the registry's principal writes the topic
under the reference ACLs; a producer that writes it anyway (a plain-text broker, a principal
stolen or misused, a tool pointed at the wrong topic) could un-revoke any session that way.

So the registry follows the topic, from its beginning at each start, as gateways read it
(`read_committed`). Under a key whose session it holds revoked (a `revocations` row whose
`valid_until` is still ahead), a last record that is not that session's revocation lasting as
long is answered with the registry's revocation again, through the outbox: the record the
cleaner keeps, and the one a gateway started later reads, is the registry's. Counted
(`session_registry_revocations_rewritten_total`, alert `RegistryRevocationsRewritten`) and
logged: whoever wrote it is to be found. The registry's own tombstone comes only once the row is
deleted (past `valid_until`), so it is never answered.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError
from sqlalchemy import select, tuple_

from read_model.store import Store
from read_model.tables import revocations, sessions
from read_model.unit_of_work import UnitOfWork
from session_contracts.codec import DecodeError, decode_revocation
from session_contracts.escaping import escape_reason
from session_contracts.handles import contract_key, record_key
from session_contracts.kafka_records import CorruptBatch, unreadable_reason
from session_contracts.models import SessionRevoked, as_utc
from session_contracts.topics import Topics
from session_registry.adapters.partitions import partition_for_key
from session_registry.service_layer.changes import Changes

log = logging.getLogger(__name__)

FETCH_RECORDS = 500
"""Records checked a batch (one read of the `revocations` rows they name)."""
PARTITIONS_CHECK_SECONDS = 30.0
"""How often the topic's partitions are asked again (one added is read from its beginning)."""
RETRY_SECONDS = 5.0
"""The wait after a failure (the broker or the database away) before trying again."""
BOMB_REWRITE_EVERY_SECONDS = 600.0
"""How often, at most, the revocations of partitions holding a batch no consumer can read are
written again (after every such batch met meanwhile)."""
REWRITE_PAGE = 5000
"""Revocation rows read a page when a partition's are written again."""
HELD_RETRY_SECONDS = 30.0
"""How long a partition whose fetched batch fails its CRC is left before it is read again."""

Key = tuple[str, str]


def last_verdicts(records: Sequence[Any]) -> dict[Key, datetime | None]:
    """For each contract key among `records`, what its last record says: the `valid_until` of
    a revocation of the session the key names, or None for anything else (a tombstone, a value
    that is not a revocation this registry reads, another session's). Keys that are not
    `<tenant_id>/<handle>` (`contract_key`: v1, none) are left out: a gateway reads a tombstone
    under no other key, and a record under one touches no entry filed under a contract key."""
    verdicts: dict[Key, datetime | None] = {}
    for record in records:
        parts = contract_key(record.key)
        if parts is None:
            continue
        until: datetime | None = None
        if record.value is not None:
            try:
                revoked = decode_revocation(record.value)
            except DecodeError:
                pass
            else:
                if (revoked.tenant_id, revoked.session_id) == parts:
                    until = revoked.valid_until
        verdicts[parts] = until
    return verdicts


class RevocationGuard:
    """Follows the revocations topic and writes the registry's revocation again under any key
    whose last record would un-revoke a session it holds revoked."""

    def __init__(
        self,
        store: Store,
        topics: Topics,
        consumer: AIOKafkaConsumer,
        clock: Callable[[], datetime],
        after_rewrite: Callable[[], Awaitable[None]],
        rewritten: Callable[[int], None] = lambda _: None,
    ) -> None:
        self._store = store
        self._topics = topics
        self.consumer = consumer
        self._clock = clock
        self._after_rewrite = after_rewrite
        self._rewritten = rewritten
        self.checked = 0
        """Records read."""
        self.rewrites = 0
        """Revocations written again."""
        self._handed: dict[TopicPartition, int] = {}
        """Per partition, the offset after the last record handed over and checked."""
        self._pending: set[int] = set()
        """Partitions where a batch no consumer can read was met since the last rewrite of
        their revocations (`_rewrite_pending`)."""
        self._pending_done_at = -math.inf
        """When that rewrite last ran (the event loop's clock)."""

    async def run(self) -> None:
        """Follow the topic until cancelled; never stops the registry. Records fetched are
        checked until that succeeds (the database away: again every `RETRY_SECONDS`), never
        skipped; a batch whose CRC fails holds its partition for `HELD_RETRY_SECONDS`, the
        others read again from where the fetch started (aiokafka drops what it took of them)."""
        assigned: set[TopicPartition] = set()
        checked_at = -PARTITIONS_CHECK_SECONDS
        loop = asyncio.get_running_loop()
        while True:
            try:
                if loop.time() - checked_at >= PARTITIONS_CHECK_SECONDS:
                    assigned = await self._assign(assigned)
                    checked_at = loop.time()
                if not assigned:
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                try:
                    batch = await self.consumer.getmany(timeout_ms=1000, max_records=FETCH_RECORDS)
                except CorruptBatch as met:
                    await self._hold(met)
                    continue
                records = [record for part in batch.values() for record in part]
                while records:
                    try:
                        await self.check(records)
                        break
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:  # the database away: tried again, never skipped
                        self._failed(exc)
                        await asyncio.sleep(RETRY_SECONDS)
                for record in records:
                    tp = TopicPartition(record.topic, record.partition)
                    self._handed[tp] = max(self._handed.get(tp, 0), record.offset + 1)
                await self._rewrite_pending()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker away, a surprise: follow on, never stop
                self._failed(exc)
                await asyncio.sleep(RETRY_SECONDS)

    def _failed(self, exc: BaseException) -> None:
        log.warning(
            "following %s to keep it to the registry's revocations failed, again in %.0f s: %s",
            self._topics.revocations,
            RETRY_SECONDS,
            escape_reason(str(exc)),
        )

    async def _hold(self, met: CorruptBatch) -> None:
        """Pause the damaged partition a while; read the others again from what was handed
        over of them (aiokafka dropped what the fetch took of them)."""
        log.error(
            "%s; the revocation guard reads that partition again in %.0f s",
            met,
            HELD_RETRY_SECONDS,
        )
        for tp in self.consumer.assignment():
            if tp != met.tp:
                await self._seek_handed(tp)
        self.consumer.pause(met.tp)
        asyncio.get_running_loop().call_later(HELD_RETRY_SECONDS, self._resume, met.tp)

    async def _seek_handed(self, tp: TopicPartition) -> None:
        """Seek `tp` past the records handed over and checked (its start if none)."""
        handed = self._handed.get(tp)
        if handed is None:
            await self.consumer.seek_to_beginning(tp)
        else:
            self.consumer.seek(tp, handed)

    def _resume(self, tp: TopicPartition) -> None:
        if tp in self.consumer.assignment():
            self.consumer.resume(tp)

    async def _assign(self, assigned: set[TopicPartition]) -> set[TopicPartition]:
        """Every partition of the topic, those new since the last time from their start (the
        others where they were)."""
        topic = self._topics.revocations
        # aiokafka has no public call answering a topic's partitions without subscribing (as
        # the gateway's follower, `auth_gateway.follower`)
        cluster = await self.consumer._client.fetch_all_metadata()
        partitions = {TopicPartition(topic, n) for n in cluster.partitions_for_topic(topic) or ()}
        if not partitions or partitions == assigned:
            return assigned
        self.consumer.assign(sorted(partitions))
        for tp in sorted(partitions):
            await self._seek_handed(tp)
        return partitions

    async def check(self, records: Sequence[Any]) -> int:
        """Write the registry's revocation again under each key among `records` whose last
        record would un-revoke a session still revoked; return how many. A batch no consumer
        can read marks its partition for `_rewrite_pending`."""
        for record in records:
            if unreadable_reason(record.key, record.value, record.headers) is not None:
                self._pending.add(record.partition)
        return await self._check_keys(records)

    async def _rewrite_pending(self) -> int:
        """A batch that no consumer can read (a compression bomb) may hide a record under any
        key of its partition, which the log cleaner, reading the real keys, keeps as that
        key's last: every revocation held whose key the producer files there is written again
        after it (a key revoked before partitions were added has its record where the count
        then sent it, and is not answered: a limit documented). At most once every
        `BOMB_REWRITE_EVERY_SECONDS`, after every such batch met meanwhile: a bomb costs two
        kilobytes, the answer a share of the live revocations. Page by page, never the whole
        table in memory; a row that keeps no record (`_published`) is skipped and logged."""
        loop = asyncio.get_running_loop()
        if not self._pending or loop.time() - self._pending_done_at < BOMB_REWRITE_EVERY_SECONDS:
            return 0
        bombed, self._pending = self._pending, set()
        self._pending_done_at = loop.time()
        every = range(max(len(self.consumer.assignment()), max(bombed) + 1))
        r = revocations.c
        after: Key | None = None
        written: list[Key] = []
        while True:
            now = self._clock()
            page = select(r.tenant_id, r.session_id, r.valid_until).where(r.valid_until > now)
            if after is not None:
                page = page.where(tuple_(r.tenant_id, r.session_id) > tuple_(*after))
            page = page.order_by(r.tenant_id, r.session_id).limit(REWRITE_PAGE)
            async with self._store.engine.connect() as conn:
                rows = (await conn.execute(page)).all()
            if not rows:
                break
            after = (rows[-1].tenant_id, rows[-1].session_id)
            chunk = {
                (row.tenant_id, row.session_id): as_utc(row.valid_until)
                for row in rows
                if partition_for_key(record_key(row.tenant_id, row.session_id), every) in bombed
            }
            if chunk:
                written += await UnitOfWork(self._store).run(
                    functools.partial(self._rewrite, undone=chunk, now=now)
                )
            await asyncio.sleep(0)  # the hashing is Python: the loop's other tasks go on
        log.error(
            "%s partition(s) %s held a batch no consumer can read (what it hides may un-revoke "
            "sessions at gateways started after compaction): %d revocation(s) written again",
            self._topics.revocations,
            sorted(bombed),
            len(written),
        )
        if written:
            self.rewrites += len(written)
            self._rewritten(len(written))
            await self._after_rewrite()
        return len(written)

    async def _check_keys(self, records: Sequence[Any]) -> int:
        verdicts = last_verdicts(records)
        if not verdicts:
            self.checked += len(records)
            return 0
        now = self._clock()
        r = revocations.c
        async with self._store.engine.connect() as conn:
            rows = await conn.execute(
                select(r.tenant_id, r.session_id, r.valid_until).where(
                    tuple_(r.tenant_id, r.session_id).in_(list(verdicts)), r.valid_until > now
                )
            )
            held = {(row.tenant_id, row.session_id): as_utc(row.valid_until) for row in rows}
        undone = {
            key: until
            for key, until in held.items()
            if (seen := verdicts[key]) is None or as_utc(seen) < until
        }
        if not undone:
            self.checked += len(records)
            return 0
        written = await UnitOfWork(self._store).run(lambda uow: self._rewrite(uow, undone, now))
        if len(written) < len(undone):
            # a row that keeps no record and whose session's row holds no end (or a hand-made
            # row holding no record a gateway reads)
            left = sorted(set(undone) - set(written))
            log.warning(
                "%d revocation(s) under a key whose last record would un-revoke them cannot be "
                "written again (the row keeps no record, written before revision 1301, and the "
                "session's row holds no end); first: %s/%s",
                len(left),
                escape_reason(left[0][0]),
                escape_reason(left[0][1]),
            )
        if written:
            self.rewrites += len(written)
            self._rewritten(len(written))
            log.warning(
                "%d revocation(s) written again: the last record under their key on %s would "
                "un-revoke them at gateways started after compaction (a producer other than "
                "the registry writes the topic: docs/operations.md#registryrevocationsrewritten);"
                " first: %s/%s",
                len(written),
                self._topics.revocations,
                escape_reason(written[0][0]),
                escape_reason(written[0][1]),
            )
            await self._after_rewrite()
        self.checked += len(records)
        return len(written)

    async def _rewrite(
        self, uow: UnitOfWork, undone: dict[Key, datetime], now: datetime
    ) -> list[Key]:
        """Queue the revocation of each key still held, as its row keeps the record published
        (the row locked, in key order), lasting as long as the row says; return the keys
        written. The session's row is read only for a row that keeps no record (written
        before revision 1301, or by the release before it on the migrated schema): retention
        may have deleted it (30 days past `expires_at`, before a mobile session's
        `valid_until`), and it is not locked (other writers lock sessions first)."""
        r = revocations.c
        locked = uow.store.for_update(
            select(revocations)
            .where(tuple_(r.tenant_id, r.session_id).in_(sorted(undone)), r.valid_until > now)
            .order_by(r.tenant_id, r.session_id)
        )
        # the sweeper may have deleted a row (and queued its tombstone) since `check` read it
        rows = list(await uow.conn.execute(locked))
        bare = [(row.tenant_id, row.session_id) for row in rows if not _keeps_record(row)]
        ends = await _session_ends(uow, bare) if bare else {}
        changes = Changes()
        written: list[Key] = []
        for row in rows:
            key = (row.tenant_id, row.session_id)
            record = _published(row, ends.get(key))
            if record is None:
                continue
            changes.publish_revocation(self._topics, record)
            written.append(key)
        await changes.flush(uow, True, states=False)
        return written


def _keeps_record(row: Any) -> bool:
    return row.session_type is not None and row.revoked_at is not None and row.reason is not None


async def _session_ends(uow: UnitOfWork, keys: Sequence[Key]) -> dict[Key, Any]:
    """The type and end of each of these sessions whose row holds one."""
    s = sessions.c
    chosen = select(s.tenant_id, s.session_id, s.session_type, s.ended_at, s.end_reason).where(
        tuple_(s.tenant_id, s.session_id).in_(list(keys)),
        s.session_type.is_not(None),
        s.ended_at.is_not(None),
        s.end_reason.is_not(None),
    )
    return {(row.tenant_id, row.session_id): row for row in await uow.conn.execute(chosen)}


def _published(row: Any, end: Any = None) -> SessionRevoked | None:
    """The revocation record a `revocations` row keeps, lasting as long as the row; for a row
    that keeps none, the one its session's `end` (type, `ended_at`, `end_reason`) gives, as
    the registry built it before revision 1301. None when neither is there, or what is there
    is no record (a hand-made row: never retried for good)."""
    if _keeps_record(row):
        session_type, revoked_at, reason = row.session_type, row.revoked_at, row.reason
    elif end is not None:
        session_type, revoked_at, reason = end.session_type, end.ended_at, end.end_reason
    else:
        return None
    try:
        return SessionRevoked(
            tenant_id=row.tenant_id,
            session_id=row.session_id,
            session_type=session_type,
            revoked_at=as_utc(revoked_at),
            reason=reason,
            valid_until=as_utc(row.valid_until),
        )
    except ValidationError:
        return None
