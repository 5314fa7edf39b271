"""The client platform services use to emit session events."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from aiokafka import AIOKafkaProducer

from session_contracts.codec import encode
from session_contracts.models import Event
from session_contracts.topics import Topics


def idempotent_producer(bootstrap_servers: str, **overrides: object) -> AIOKafkaProducer:
    """An idempotent, acks=all producer: retries never duplicate or reorder a partition."""
    options: dict[str, object] = {
        "bootstrap_servers": bootstrap_servers,
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 2,
        "compression_type": None,
        "request_timeout_ms": 30_000,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


class SessionEventPublisher:
    """Publishes `session.*` events to `sessions.events`, keyed by session id.

    Use as an async context manager, or call `start()` and `stop()`.
    """

    def __init__(self, bootstrap_servers: str, topics: Topics | None = None) -> None:
        self._topics = topics or Topics()
        self._producer = idempotent_producer(bootstrap_servers)

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

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
        await self._producer.send_and_wait(
            self._topics.events, encode(event), key=event.session_id.encode()
        )

    async def publish_many(self, events: list[Event]) -> None:
        """Send events in a batch and wait until the broker has all of them."""
        futures = [
            await self._producer.send(self._topics.events, encode(e), key=e.session_id.encode())
            for e in events
        ]
        for future in futures:
            await future
