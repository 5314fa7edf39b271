"""The client platform services use to emit session events.

A platform service knows its sessions by their credential (the cookie value or token it
issued); the contract names them by their handle (`session_contracts.handles`). The builders
here (`created_event`, `activity_event`, `terminated_event`) and the publisher's methods of the
same names take the credential and put only its handle in the event: a platform service never
computes a handle by hand, and no credential reaches the topic.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from types import TracebackType
from typing import Self
from uuid import UUID

from aiokafka import AIOKafkaProducer

from session_contracts.codec import encode
from session_contracts.handles import (
    CREDENTIAL_MAX,
    credential_refusal,
    record_key,
    session_handle,
)
from session_contracts.kafka_clients import learn_partitions, new_producer, start_producer
from session_contracts.models import (
    Event,
    SessionActivity,
    SessionCreated,
    SessionPolicy,
    SessionTerminated,
    SessionType,
    TerminationReason,
)
from session_contracts.settings import KafkaSettings


def event_key(event: Event) -> bytes:
    """The Kafka key of an event: `<tenant_id>/<handle>` (one session's events, one partition)."""
    return record_key(event.tenant_id, event.session_id)


def _envelope(
    tenant_id: str, credential: str, occurred_at: datetime | None, event_id: UUID | None
) -> dict[str, object]:
    if (refusal := credential_refusal(credential)) is not None:
        # the gateway reads such a value as no session and never refuses it: its sessions
        # were listed and "terminated" while the app served them (a review, stop 70)
        raise ValueError(
            f"the session's credential {refusal}: the gateway checks credentials of 1-"
            f"{CREDENTIAL_MAX} printable ASCII characters without spaces only "
            "(docs/contract.md#credentials)"
        )
    return {
        "event_id": event_id or uuid.uuid4(),
        "occurred_at": occurred_at or datetime.now(UTC),
        "tenant_id": tenant_id,
        "session_id": session_handle(tenant_id, credential),
    }


def created_event(
    *,
    tenant_id: str,
    credential: str,
    user_id: str,
    user_name: str,
    session_type: SessionType,
    ip_address: str,
    policy: SessionPolicy,
    user_agent: str | None = None,
    device: str | None = None,
    occurred_at: datetime | None = None,
    event_id: UUID | None = None,
) -> SessionCreated:
    """`session.created` for the session whose credential is `credential` (only its handle
    is in the event). `occurred_at` defaults to now, `event_id` to a random UUID."""
    return SessionCreated(
        **_envelope(tenant_id, credential, occurred_at, event_id),
        user_id=user_id,
        user_name=user_name,
        session_type=session_type,
        ip_address=ip_address,
        user_agent=user_agent,
        device=device,
        policy=policy,
    )


def activity_event(
    *,
    tenant_id: str,
    credential: str,
    ip_address: str | None = None,
    occurred_at: datetime | None = None,
    event_id: UUID | None = None,
) -> SessionActivity:
    """`session.activity` for the session whose credential is `credential`."""
    return SessionActivity(
        **_envelope(tenant_id, credential, occurred_at, event_id),
        ip_address=ip_address,
    )


def terminated_event(
    *,
    tenant_id: str,
    credential: str,
    reason: TerminationReason,
    terminated_by: str | None = None,
    occurred_at: datetime | None = None,
    event_id: UUID | None = None,
) -> SessionTerminated:
    """`session.terminated` for the session whose credential is `credential` (a logout, a
    security control; admin terminations are the registry's)."""
    return SessionTerminated(
        **_envelope(tenant_id, credential, occurred_at, event_id),
        reason=reason,
        terminated_by=terminated_by,
    )


class SessionEventPublisher:
    """Publishes `session.*` events to `sessions.events`, keyed `<tenant_id>/<handle>`.

    Events carry handles, never credentials: build them with `created_event`, `activity_event`
    and `terminated_event`, which take the session's credential and put only its handle in the
    event. Where the broker is, how to authenticate and the topic prefix come from `kafka`
    (`KafkaSettings()` reads them from `SESSIONS_KAFKA_*`). Use as an async context manager,
    or call `start()` and `stop()`.
    """

    def __init__(self, kafka: KafkaSettings) -> None:
        self._kafka = kafka
        self._topics = kafka.topics
        self._start_within = kafka.kafka_request_timeout_ms / 1000
        # made by start(): a producer made and never started warns at exit that it was never
        # closed (a service built and not served: its tests, a command that only checks)
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        producer = new_producer(self._kafka)
        try:
            # fails, not hangs, on a broker still starting or gone after the bootstrap
            await start_producer(producer, self._start_within)
            # so that an event published once the broker is gone waits in the producer, which
            # delivers it after the outage, not in a wait for metadata that a bound cuts short
            await learn_partitions(producer, [self._topics.events])
        except BaseException:
            # a failed bootstrap, a missing topic: nothing of it is left open (`async with`
            # calls no stop() when the start raised)
            await producer.stop()
            raise
        self._producer = producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    @property
    def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("the publisher is not started: call start(), or use `async with`")
        return self._producer

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def publish(self, event: Event) -> None:
        """Send one event and wait until the broker has it."""
        await self._started.send_and_wait(self._topics.events, encode(event), key=event_key(event))

    async def publish_many(self, events: list[Event]) -> None:
        """Send events in a batch and wait until the broker has all of them."""
        futures = [
            await self._started.send(self._topics.events, encode(e), key=event_key(e))
            for e in events
        ]
        for future in futures:
            await future
