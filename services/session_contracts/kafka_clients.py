"""Every Kafka client of every service, built from one `KafkaSettings`.

Producers are idempotent with acks=all (retries never duplicate or reorder a partition, and a
record is acknowledged once every in-sync replica has it). Consumers and admin clients get the
same bootstrap list, client id and security. `connection_failure` names why a connection cannot
be made (refused, TLS, authentication), since aiokafka's own error says only "Unable to
bootstrap".
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import ssl
from collections.abc import Coroutine, Iterable
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import client as aiokafka_client
from aiokafka.abc import AbstractTokenProvider
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.conn import create_conn
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)
from aiokafka.helpers import create_ssl_context

from session_contracts.addresses import on_this_host
from session_contracts.kafka_records import tolerate_hostile_batches
from session_contracts.logs import redact_sasl_exchanges
from session_contracts.settings import KafkaSettings

log = logging.getLogger(__name__)

R = TypeVar("R")

_NO_AUTO_CREATION: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "session_control_no_topic_auto_creation", default=False
)


class _MetadataRequest(aiokafka_client.MetadataRequest):  # type: ignore[misc]
    """aiokafka's metadata request, asking the broker not to create the topics it names while
    a client of this project asks (`_without_auto_creation`); any other client's as before."""

    def __init__(
        self, topics: list[str] | None = None, allow_auto_topic_creation: bool | None = None
    ) -> None:
        if allow_auto_topic_creation is None and _NO_AUTO_CREATION.get():
            allow_auto_topic_creation = False
        super().__init__(topics, allow_auto_topic_creation)


def _without_auto_creation(client: Any) -> None:
    """Have `client` (an `AIOKafkaClient`) never ask the broker to create a topic it names.

    aiokafka asks for a topic by name with `allow_auto_topic_creation` true, and a broker with
    Kafka's default `auto.create.topics.enable=true` then creates it, with the broker's
    defaults: a gateway pointed at another cluster, or under another topic prefix, found an
    empty revocations topic made for it, read it to its end, and called itself current while
    every revoked session passed (a review, stop 70). The project's brokers refuse creation
    (`auto.create.topics.enable=false`, no CREATE in the ACLs), but a platform's may not; its
    topics are created explicitly, with the contract's settings (`kafka_admin.ensure_topics`)."""
    if aiokafka_client.MetadataRequest is not _MetadataRequest:
        aiokafka_client.MetadataRequest = _MetadataRequest
    update = client._metadata_update

    async def without_auto_creation(cluster_metadata: Any, topics: Any) -> Any:
        token = _NO_AUTO_CREATION.set(True)
        try:
            return await update(cluster_metadata, topics)
        finally:
            _NO_AUTO_CREATION.reset(token)

    client._metadata_update = without_auto_creation


class FileTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """OAUTHBEARER: the token in a file, read at each authentication (kept fresh outside)."""

    def __init__(self, path: str) -> None:
        self._path = path

    async def token(self) -> str:
        # A few hundred bytes from a local (tmpfs) mount: not worth a thread.
        return Path(self._path).read_text(encoding="utf-8").strip()  # noqa: ASYNC240

    def __repr__(self) -> str:
        return f"FileTokenProvider({self._path!r})"


def ssl_context(kafka: KafkaSettings) -> ssl.SSLContext:
    """The TLS context: the configured CA (or the system's), and the client certificate if any."""
    context: ssl.SSLContext = create_ssl_context(
        cafile=kafka.kafka_ssl_cafile,
        certfile=kafka.kafka_ssl_certfile,
        keyfile=kafka.kafka_ssl_keyfile,
        password=kafka.ssl_key_password(),
    )
    return context


def security_options(kafka: KafkaSettings) -> dict[str, Any]:
    """aiokafka's security keyword arguments (they hold the secret: never log them)."""
    redact_sasl_exchanges()  # aiokafka logs each SASL request at DEBUG, before any client can
    protocol = kafka.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl_context(kafka)
    if protocol.startswith("SASL_"):
        options["sasl_mechanism"] = kafka.kafka_sasl_mechanism
        if kafka.kafka_sasl_mechanism == "OAUTHBEARER":
            assert kafka.kafka_sasl_oauth_token_file is not None  # the settings' validator
            options["sasl_oauth_token_provider"] = FileTokenProvider(
                str(kafka.kafka_sasl_oauth_token_file)
            )
        else:
            options["sasl_plain_username"] = kafka.kafka_sasl_username
            options["sasl_plain_password"] = kafka.sasl_password()
    return options


_WARNED_INSECURE: set[str] = set()
"""The connections `_warn_if_insecure` has warned about (once per process each)."""


def insecure_reasons(kafka: KafkaSettings) -> list[str]:
    """Why the connection `kafka` describes is not safe off this host: a SASL password or
    token sent unencrypted, or records to a broker elsewhere unencrypted (empty: none)."""
    reasons = []
    protocol = kafka.kafka_security_protocol
    if protocol == "SASL_PLAINTEXT" and kafka.kafka_sasl_mechanism == "PLAIN":
        reasons.append("SASL PLAIN over SASL_PLAINTEXT sends the password unencrypted")
    if protocol == "SASL_PLAINTEXT" and kafka.kafka_sasl_mechanism == "OAUTHBEARER":
        reasons.append("OAUTHBEARER over SASL_PLAINTEXT sends the bearer token unencrypted")
    hosts = [h.strip().rsplit(":", 1)[0] for h in kafka.kafka_bootstrap_servers.split(",")]
    # by its parsed address, not a prefix (`localhost-kafka` passed for this host: a review,
    # stop 70)
    elsewhere = [h for h in hosts if h and not on_this_host(h)]
    if protocol in ("PLAINTEXT", "SASL_PLAINTEXT") and elsewhere:
        reasons.append(
            f"{protocol} sends records unencrypted to brokers not on this host "
            f"({', '.join(elsewhere)}): set SESSIONS_KAFKA_SECURITY_PROTOCOL=SASL_SSL or SSL"
        )
    return reasons


def _warn_if_insecure(kafka: KafkaSettings) -> None:
    """Warn, once per connection and process, of what `insecure_reasons` finds: the services
    accept every protocol the development broker and a closed network may use (a review,
    2026-12-06: a deployment that forgot one variable ran unencrypted, silently)."""
    described = kafka.describe()
    if described in _WARNED_INSECURE:
        return
    _WARNED_INSECURE.add(described)
    for reason in insecure_reasons(kafka):
        log.warning("Kafka %s: %s", described, reason)


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """What every client shares: bootstrap list, client id, request timeout, security."""
    _warn_if_insecure(kafka)
    return {
        "bootstrap_servers": kafka.kafka_bootstrap_servers,
        "client_id": kafka.kafka_client_id,
        "request_timeout_ms": kafka.kafka_request_timeout_ms,
        **security_options(kafka),
    }


def new_producer(kafka: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent, acks=all producer: retries never duplicate or reorder a partition."""
    options: dict[str, Any] = {
        **client_options(kafka),
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 2,
        "compression_type": None,
    }
    options.update(overrides)
    producer = AIOKafkaProducer(**options)
    _without_auto_creation(producer.client)
    return producer


async def start_producer(producer: AIOKafkaProducer, within: float) -> None:
    """Start `producer`, or stop it and raise `KafkaConnectionError`: if it found no brokers,
    or got no producer id within `within` seconds.

    An idempotent producer's `start()` waits for its producer id (aiokafka's `Sender.start`),
    retrying for as long as no broker gives one: for the whole outage when the broker goes
    away after the bootstrap, and for ever when a broker that was still starting answered the
    bootstrap metadata request with no brokers (aiokafka then keeps only its bootstrap
    connection, and once that closes it has no node to ask: "Unable to update metadata from
    []"). A gateway's activity reporter was caught there across a broker restart: its flush
    never returned, so nothing it noted was sent again and nothing was logged. Past `within`
    the start is given up, the producer stopped (no sender task yet: nothing to flush), and
    callers retry as for any broker that cannot be reached. A producer that started but knows
    no brokers is refused the same way: its sends would neither complete nor fail.

    A start that fails otherwise, or is cancelled, stops the producer too: past its bootstrap
    the client's metadata task runs, and nothing else would end it (aiokafka's `start()` leaves
    it running; a gateway stopping while its activity reporter started a producer left one
    such task for the life of the process).
    """
    try:
        # asyncio.timeout, not wait_for: Python 3.11's wait_for returns the result, and drops a
        # cancellation of the caller, when the start ends as the cancellation comes (devstack
        # stopped by a signal during its publisher's start served on, its children running)
        async with asyncio.timeout(within):
            await producer.start()
    except BaseException as exc:
        await producer.stop()  # nothing was sent: its flush has nothing to wait for
        if isinstance(exc, TimeoutError):
            raise KafkaConnectionError(
                f"no producer id from the broker within {within:g} s "
                "(is it away or still starting?)"
            ) from None
        raise
    if not producer.client.cluster.brokers():
        await producer.stop()  # nothing was sent: its flush has nothing to wait for
        raise KafkaConnectionError("the broker named no brokers (is it still starting?)")


async def learn_partitions(producer: AIOKafkaProducer, topics: Iterable[str]) -> None:
    """Have a started `producer` learn the partitions of `topics` now, while the broker
    answers; raise `UnknownTopicOrPartitionError` naming a topic the broker lacks (after the
    request timeout).

    aiokafka's bootstrap asks the broker for no topic, so a producer learns a topic on its
    first send to it (or at a metadata refresh, which its start makes only when its first
    producer-id request fails). A send made once the broker had gone away waited out the
    request timeout for metadata with its record not even queued, then failed: the registry's
    relay, sending an expiry during an outage, held nothing a stop could give up (a CI
    failure of `test_registry_stop_broker_away.py`), and its first record after any start
    waited a metadata round trip.
    """
    for topic in topics:
        try:
            await producer.partitions_for(topic)
        except UnknownTopicOrPartitionError:
            raise UnknownTopicOrPartitionError(f"topic {topic} is not on the broker") from None


async def stop_producer(
    producer: AIOKafkaProducer, within: float, *, track: set[asyncio.Task[Any]] | None = None
) -> bool:
    """Stop `producer` within `within` seconds; True if it stopped after delivering what it
    held, False if it was abandoned: what it held failed, its sender stopped, its
    connections closed.

    `stop()` first waits for every batch the producer holds to be delivered, and while the
    broker is away that wait does not end. Cancelled there (a bound on it), the producer was
    left running for the life of the process: its sender task retrying, its connections
    reopened, one more per broker outage in a gateway. aiokafka has no public way to give
    up a flush, so this stops the sender (its requests in flight end first), then fails the
    batches (`fail_all`, as aiokafka does when its sender dies), which ends the flush, and
    closes the client.

    The stop runs in a task of its own, as `stop_consumer`'s: a caller cancelled during it
    (a gateway stopping while its activity producer was being replaced, a bound on a
    shutdown) propagates at once, and the stop still goes to its end. Cancelled in place,
    it left the producer marked closed (aiokafka sets that first) with its sender and
    connections running, which no later stop could end (a review, stop 73). `track`: the
    owner's set, which holds the stop while it runs, for `stops_under_way`.
    """
    return await _to_its_end(
        _stop_producer_to_the_end(producer, within), "stopping a Kafka producer", track
    )


async def _stop_producer_to_the_end(producer: AIOKafkaProducer, within: float) -> bool:
    try:
        async with asyncio.timeout(within):  # not wait_for: see start_producer
            await producer.stop()
        return True
    except TimeoutError:
        pass
    sender = producer._sender
    if sender is not None:  # first, so that nothing sends or re-queues a batch failed below
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await sender.close()  # its requests in flight end
    accumulator = producer._message_accumulator
    held = undelivered_batches(producer)
    # A batch re-queued when its request was cancelled (the sender's close) still has the
    # callback that takes it out of the in-flight set when it ends: back in the set, so that
    # the callback does not fail (a KeyError logged from the event loop).
    accumulator._pending_batches.update(held)
    accumulator.fail_all(
        KafkaTimeoutError(f"producer abandoned: not delivered within {within:.1f} s of its stop")
    )
    for batch in held:  # aiokafka's own futures: callers see the failure through theirs
        for future in (batch.future, batch._drain_waiter):
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: no "exception was never retrieved" log
    await producer.client.close()
    return False


def undelivered_batches(producer: AIOKafkaProducer) -> list[Any]:
    """The batches `producer` holds undelivered: queued, or in flight (taken by its sender,
    or waiting out the retry backoff after a failed request, where a batch the broker refuses
    spends most of its time)."""
    accumulator = producer._message_accumulator
    held: list[Any] = [batch for queued in accumulator._batches.values() for batch in queued]
    held += accumulator._pending_batches
    return held


# Every stop in progress, held until it ends (the loop keeps only weak references to tasks):
# one whose caller was cancelled has no other holder.
_STOPPING: set[asyncio.Task[Any]] = set()


async def start_consumer(consumer: AIOKafkaConsumer) -> None:
    """`consumer.start()`; a start that fails or is cancelled stops the consumer, then raises.

    aiokafka's `start()` leaves a consumer whose start failed (the broker unreachable, a topic
    or an ACL refused) unclosed: it warns so when collected ("Unclosed AIOKafkaConsumer"), and
    past its bootstrap its client's metadata task retries the broker for the life of the
    process. The registry's commands started theirs before the `try` that stops them, so a
    command run with the broker away left one behind (found when a test of the suite was
    blamed for one, stop 73)."""
    try:
        await consumer.start()
    except BaseException:
        try:
            await stop_consumer(consumer)
        except Exception:  # the start's error is the one to raise
            log.exception("stopping a Kafka consumer whose start failed failed")
        raise


async def stop_consumer(
    consumer: AIOKafkaConsumer, *, track: set[asyncio.Task[Any]] | None = None
) -> None:
    """`consumer.stop()`, run to its end in a task of its own; a cancellation of the caller
    propagates at once, and the stop still ends.

    - `Fetcher.close` cancels its fetch requests and awaits each, and one that was waiting out
      its retry backoff, as they do while the broker is away, re-raises its cancellation
      (aio-libs/aiokafka#647, open). `stop()` then ended half-way, its client left open, and
      the error went on to the caller: a registry stopping during an outage ended in a
      traceback before closing its producer and database, and a gateway's follower restarting
      its consumer after a failure ended the follower itself. What `stop()` did not reach is
      done here.
    - `Fetcher.close` and the client's `close` await their tasks under
      `suppress(CancelledError)`, which swallowed a cancellation of the caller arriving then: a
      follower cancelled at that moment ran on for good. In a task of its own, the stop never
      sees the caller's cancellation.
    - A caller cancelled before the stop ends used to leave the consumer half-stopped, its
      fetch task and client retrying the broker for the life of the process. The stop now goes
      on without it; a failure then is logged, as nobody awaits it. `track`: the owner's set,
      which holds the stop while it runs, for `stops_under_way`.
    """
    await _to_its_end(_stop_to_the_end(consumer), "stopping a Kafka consumer", track)


async def _to_its_end(
    stop: Coroutine[Any, Any, R], name: str, track: set[asyncio.Task[Any]] | None
) -> R:
    """`stop` in a task of its own (held in `_STOPPING`, and in `track` if given, while it
    runs), awaited through a shield: a cancellation of the caller propagates at once, and the
    stop goes on, saying if it fails or (a producer's) gave up what it held, at once if it has
    just ended (its result was never read)."""
    stopping = asyncio.create_task(stop, name=name)
    _STOPPING.add(stopping)
    stopping.add_done_callback(_STOPPING.discard)
    if track is not None:
        track.add(stopping)
        stopping.add_done_callback(track.discard)
    try:
        return await asyncio.shield(stopping)
    except asyncio.CancelledError:
        stopping.add_done_callback(_log_unawaited_failure)
        raise


async def _stop_to_the_end(consumer: AIOKafkaConsumer) -> None:
    this = asyncio.current_task()
    try:
        await consumer.stop()
        return
    except asyncio.CancelledError:
        if this is not None and this.cancelling():
            raise  # this task's own: only the loop's end cancels it
        # aiokafka's own (#647): what stop() did not reach, the fetch requests after the one
        # that raised and the client, or the client's metadata task would retry the broker
    for task in list(consumer._fetcher._pending_tasks):
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            if this is not None and this.cancelling():
                raise
    await consumer._client.close()


def _log_unawaited_failure(stopping: asyncio.Task[Any]) -> None:
    if stopping.cancelled():
        return
    if (failure := stopping.exception()) is not None:
        log.error("%s failed: %r", stopping.get_name(), failure, exc_info=failure)
    elif stopping.result() is False:  # stop_producer's: what it held was given up
        log.warning("%s: not delivered within its bound, abandoned", stopping.get_name())


def producer_stop_bound(within: float) -> float:
    """About the longest `stop_producer(producer, within)` takes: the producer's own stop, then
    its sender's close (each up to `within`), then its client's close, allowed a second (a
    connection whose peer is gone may take longer to close: a wait so bounded then returns
    with the stop still going on)."""
    return 2 * within + 1.0


async def stops_under_way(tracked: set[asyncio.Task[Any]], within: float) -> set[asyncio.Task[Any]]:
    """Wait, up to `within` seconds, for the client stops an owner tracked (`stop_producer`'s
    and `stop_consumer`'s `track`) that go on without their callers.

    An owner's stop calls it last, so that it returns with the clients it replaced stopped
    too: a gateway's stop cancels its activity reporter, which may be replacing a producer,
    and the admin API's bus its reconnection (a review, stop 73). Only the owner's own: not
    another's stops in the same event loop. Returns those still going on after `within`."""
    under_way = {task for task in tracked if not task.done()}
    if under_way:
        _, under_way = await asyncio.wait(under_way, timeout=within)
    return under_way


def new_consumer(kafka: KafkaSettings, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    """A consumer (no group unless `group_id` is given: use `kafka.group_id(name)`), which a
    batch its producer made hostile does not stop or exhaust (`kafka_records`)."""
    tolerate_hostile_batches()
    options: dict[str, Any] = {**client_options(kafka), "group_id": None}
    options.update(overrides)
    consumer = AIOKafkaConsumer(*topics, **options)
    _without_auto_creation(consumer._client)
    return consumer


def new_admin(kafka: KafkaSettings, **overrides: Any) -> AIOKafkaAdminClient:
    """An admin client."""
    options: dict[str, Any] = {**client_options(kafka), "request_timeout_ms": 15_000}
    options.update(overrides)
    admin = AIOKafkaAdminClient(**options)
    _without_auto_creation(admin._client)
    return admin


async def connection_failure(kafka: KafkaSettings) -> str | None:
    """Why no connection to the first reachable-looking broker can be made (None: it can).

    One short phrase naming the cause: refused, TLS (e.g. an untrusted certificate) or SASL
    authentication (e.g. a wrong password). It never contains a secret.
    """
    causes = []
    for address in kafka.kafka_bootstrap_servers.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            options = security_options(kafka)
            conn = await create_conn(
                host.strip("[]"),
                int(port),
                client_id=kafka.kafka_client_id,
                request_timeout_ms=min(kafka.kafka_request_timeout_ms, 10_000),
                **options,
            )
        except ssl.SSLError as exc:
            causes.append(f"{address}: TLS handshake failed ({exc.reason or exc})")
        except KafkaError as exc:
            causes.append(f"{address}: {_kafka_cause(kafka, exc)}")
        except (OSError, TimeoutError, ValueError) as exc:
            causes.append(f"{address}: {type(exc).__name__}: {_scrub(kafka, str(exc))}")
        else:
            conn.close()
            return None
    return "; ".join(causes)


def describe_kafka_error(exc: BaseException, operation: str, topic: str) -> str:
    """One line for an error of `operation` ("read", "write", "create") on `topic`: an
    authorization failure names the topic and the operation the principal lacks."""
    if isinstance(exc, TopicAuthorizationFailedError):
        return (
            f"not authorized to {operation} topic {topic} "
            f"(the broker's ACLs deny {operation.upper()} on it to this principal)"
        )
    if isinstance(exc, ClusterAuthorizationFailedError) and operation == "write":
        return (
            f"not authorized to write topic {topic}: the principal may write no topic at all "
            "(an idempotent producer's InitProducerId is refused without WRITE on some topic)"
        )
    if isinstance(exc, GroupAuthorizationFailedError):
        return f"not authorized to use consumer group {exc} (ACL: READ on the group)"
    return f"{type(exc).__name__}: {exc}"


def _kafka_cause(kafka: KafkaSettings, exc: KafkaError) -> str:
    name = type(exc).__name__
    text = _scrub(kafka, str(exc))
    if "Authentication" in name or "authentication" in text.lower():
        who = kafka.kafka_sasl_username or "the token"
        return f"SASL authentication failed for {who} ({kafka.kafka_sasl_mechanism}): {text}"
    return f"{name}: {text}"


def _scrub(kafka: KafkaSettings, text: str) -> str:
    secret = kafka.sasl_password()
    return text.replace(secret, "**********") if secret else text
