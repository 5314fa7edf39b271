"""Reports `session.activity` at most once per session per interval, off the request path.

The middleware notes only requests whose session the host service authenticated (see
`middleware`), by the session's tenant-qualified key `<tenant_id>/<handle>`: the event carries
the tenant and the handle, and is keyed by that same key, never by a credential.

`note()` runs inside a request and only touches two bounded in-memory structures; a
background task turns what was noted into events and sends them in batches through an
idempotent producer. If the broker is away, events wait (bounded, oldest dropped first) and
the producer is restarted until it answers: activity is a hint for idle expiry, so losing
some under a long outage is acceptable, delaying requests is not.

Two ways aiokafka's producer can hang rather than fail, both met on a broker restart:

- A broker that is still starting can answer the bootstrap metadata request with no brokers.
  The client then keeps only its bootstrap connection, and once that closes it has no node to
  ask (aiokafka logs "Unable to update metadata from []" forever), and an idempotent sender
  waits for a producer id that no node can give, in its `start()` itself. So a producer whose
  start-up found no brokers, or got no producer id within `delivery_timeout_seconds` (the
  broker went away after the bootstrap), is stopped and another one tried at the next flush
  (`session_contracts.kafka_clients.start_producer`). Before that bound a start caught there
  held the flush for ever: nothing noted was sent again, and nothing was logged.
- Whatever else keeps a batch from being handed over or completing, the wait for it is
  bounded (`delivery_timeout_seconds`); past it the batch is queued again and the producer
  replaced. The sends are inside the bound too: one waits for its topic's metadata, or for
  room in the producer's buffer, up to the client's request timeout (a broker gone between
  the producer's start and its first send held the flush that long).
  Its stop is bounded too, since stopping flushes first; past the bound the producer is
  abandoned (`session_contracts.kafka_clients.stop_producer`: its batches failed, its sender
  and connections closed), not left running. An event can then be sent twice, which is
  harmless: the registry keeps the latest activity of a session.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from session_contracts.addresses import reported_ip
from session_contracts.codec import encode
from session_contracts.handles import split_record_key
from session_contracts.kafka_clients import (
    producer_stop_bound,
    start_producer,
    stop_producer,
    stops_under_way,
)
from session_contracts.models import SessionActivity

log = logging.getLogger(__name__)

AUTHENTICATED = "session_authenticated"
"""The hook: the app sets `request.state.session_authenticated = True` once it has
authenticated the session the gateway admitted; only then is activity reported for it."""
ProducerFactory = Callable[[], AIOKafkaProducer]


class ActivityReporter:
    """Debounces activity per session and publishes it to the events topic in the background."""

    def __init__(
        self,
        producer_factory: ProducerFactory,
        topic: str,
        *,
        interval_seconds: float = 60.0,
        flush_seconds: float = 0.5,
        max_tracked: int = 100_000,
        max_pending: int = 50_000,
        delivery_timeout_seconds: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._factory = producer_factory
        self._topic = topic
        self._interval = interval_seconds
        self._flush_seconds = flush_seconds
        self._delivery_timeout = delivery_timeout_seconds
        self._max_tracked = max_tracked
        self._clock = clock
        self._last_reported: OrderedDict[bytes, float] = OrderedDict()
        self._pending: deque[tuple[bytes, str | None, float]] = deque(maxlen=max_pending)
        self._producer: AIOKafkaProducer | None = None
        self._sources: list[Callable[[], None]] = []
        self._in_flight = 0
        self._stopping: set[asyncio.Task[Any]] = set()
        """Producer stops under way (`stop_producer`'s `track`), which `stop` waits for."""
        self.sent = 0
        self.dropped = 0

    @property
    def tracked(self) -> int:
        """Sessions currently in the debounce map."""
        return len(self._last_reported)

    @property
    def pending(self) -> int:
        """Activity events noted and not yet sent: waiting, or in the batch being sent.

        The batch in flight counts until the broker has it: a send that hangs until the
        delivery bound would otherwise read as nothing waiting, and `GatewayActivityUnsent`
        (pending above 0 for ten minutes, nothing sent) would miss a producer whose sends
        never complete (a review, stop 72)."""
        return len(self._pending) + self._in_flight

    def due(self, key: bytes) -> bool:
        """Whether `note` would report session `key` now (not reported within the interval):
        what a caller asks before working out what to note."""
        last = self._last_reported.get(key)
        return last is None or self._clock() - last >= self._interval

    def note(self, key: bytes, client_ip: str | None) -> None:
        """Record that the session `key` (`<tenant_id>/<handle>`) made a request now; cheap."""
        now = self._clock()
        last = self._last_reported.get(key)
        if last is not None and now - last < self._interval:
            return
        self._last_reported[key] = now
        self._last_reported.move_to_end(key)
        if len(self._last_reported) > self._max_tracked:
            self._last_reported.popitem(last=False)
        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1
        self._pending.append((key, client_ip, now))

    def add_source(self, source: Callable[[], None]) -> None:
        """Have `source` note, at each flush, the sessions it is serving still (the
        middleware's requests and connections the app authenticated): a WebSocket or a
        streamed response lives on past its check, and noted only when it ended, its session
        looked idle to the registry, which expired it; then no termination reached it, nor
        closed the connection (a review, stop 70). `note` reports each once an interval."""
        self._sources.append(source)

    def note_held(self) -> None:
        """Have each source note the sessions it is serving still (`add_source`)."""
        for source in self._sources:
            source()

    def forget_idle(self) -> None:
        """Drop debounce entries older than the interval (they would report again anyway)."""
        horizon = self._clock() - self._interval
        entries = self._last_reported
        while entries:
            oldest = next(iter(entries))
            if entries[oldest] >= horizon:
                break
            del entries[oldest]

    async def run(self) -> None:
        """Flush pending activity every `flush_seconds` until cancelled."""
        while True:
            await asyncio.sleep(self._flush_seconds)
            self.forget_idle()
            try:
                self.note_held()
                await self.flush()
            except Exception:
                log.exception("activity flush failed; retrying")

    async def flush(self) -> None:
        """Send what is pending and wait for the broker; keep it pending if the broker is away."""
        if not self._pending:
            return
        producer = await self._started_producer()
        if producer is None:
            return
        batch = list(self._pending)
        self._pending.clear()
        # counted in `pending` until the broker has it; put back before it stops counting
        # here, so a scrape between the two reads it twice, never not at all
        self._in_flight += len(batch)
        try:
            # the sends inside the bound too: a send waits for the topic's metadata, or for
            # room in the producer's buffer, for as long as the client's request timeout
            async with asyncio.timeout(self._delivery_timeout):
                futures = [
                    await producer.send(self._topic, encode(event), key=key)
                    for key, event in map(self._keyed_event, batch)
                    if event is not None
                ]
                await asyncio.gather(*futures)
        except (KafkaError, TimeoutError) as exc:
            self._put_back(batch)
            log.warning(
                "sending %d activity events failed (%r); will retry with a new producer",
                len(batch),
                exc,
            )
            await self._close_producer()
            return
        except asyncio.CancelledError:
            # the gateway stopping (or stop()'s bound): kept, so the shutdown says they were
            # not sent (some may have been: activity sent twice only repeats a last-seen time)
            self._put_back(batch)
            raise
        except BaseException:
            # a bug (`run` logs it): not retried, which could fail for ever; counted as dropped
            self._in_flight -= len(batch)
            self.dropped += len(batch)
            raise
        self._in_flight -= len(batch)
        self.sent += len(futures)

    def _put_back(self, batch: list[tuple[bytes, str | None, float]]) -> None:
        """A batch in flight, not sent, back to waiting: queued again before it stops counting
        as in flight, so `pending` never reads it as gone."""
        self._requeue(batch)
        self._in_flight -= len(batch)

    def _requeue(self, batch: list[tuple[bytes, str | None, float]]) -> None:
        """Put a batch that failed back before what was noted meanwhile; past the bound the
        oldest go first, counted (put back by `extendleft`, the newest fell off uncounted)."""
        merged = [*batch, *self._pending]
        bound = self._pending.maxlen or len(merged)
        self.dropped += max(0, len(merged) - bound)
        self._pending.clear()
        self._pending.extend(merged[-bound:])

    def _keyed_event(
        self, item: tuple[bytes, str | None, float]
    ) -> tuple[bytes, SessionActivity | None]:
        return item[0], self._event(item)

    def _event(self, item: tuple[bytes, str | None, float]) -> SessionActivity | None:
        key, client_ip, at = item
        parts = split_record_key(key)
        if parts is None:
            return None  # the middleware only notes keys it made; be defensive anyway
        tenant_id, handle = parts
        try:
            return SessionActivity(
                event_id=uuid.uuid4(),
                occurred_at=datetime.fromtimestamp(at, UTC),
                tenant_id=tenant_id,
                session_id=handle,
                ip_address=reported_ip(client_ip),  # a link-local peer's zone id dropped
            )
        except ValueError:
            return None

    async def _started_producer(self) -> AIOKafkaProducer | None:
        if self._producer is None:
            producer = self._factory()
            try:
                # refuses one that found no brokers or got no producer id in time
                await start_producer(producer, self._delivery_timeout)
            except KafkaError as exc:
                log.warning("activity producer cannot reach the broker: %r", exc)
                await self._stop(producer)
                return None
            self._producer = producer
        return self._producer

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await self._stop(producer)

    async def _stop(self, producer: AIOKafkaProducer) -> None:
        """Stop `producer`, bounded: a hung sender would otherwise hold its flush forever.
        Past the bound it is abandoned, not left running (`stop_producer`); what it held was
        queued again already."""
        if not await stop_producer(producer, self._delivery_timeout, track=self._stopping):
            log.warning(
                "activity producer did not stop within %.1f s; abandoned (sender and "
                "connections closed)",
                self._delivery_timeout,
            )

    async def stop(self) -> None:
        """Send what is pending (best effort) and close the producer.

        Whatever the flush ended in (the bound, the broker refusing, a bug), what is still
        pending is logged and the producer closed: only the bound was logged, and a flush
        that raised left the producer open (a review, stop 73)."""
        try:
            async with asyncio.timeout(5):
                await self.flush()
        except TimeoutError:
            pass
        except Exception:
            log.exception("sending the pending activity at shutdown failed")
        finally:
            if self.pending:
                log.warning("%d activity events unsent at shutdown", self.pending)
            await self._close_producer()
            this = asyncio.current_task()
            if this is None or not this.cancelling():  # cancelled: out without this wait
                # one a cancelled flush was replacing, stopping on its own (the gateway's
                # stop cancels `run` first)
                bound = producer_stop_bound(self._delivery_timeout)
                await stops_under_way(self._stopping, bound)
