"""Logging that stays readable while the broker is away.

While a broker is unreachable, aiokafka logs the same connection errors every retry backoff
(about a hundred lines a second for a registry's few clients). `quiet_kafka_reconnects` keeps
the first of each message and then one per `every_seconds`, with a count of those held back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

KAFKA_LOGGERS = (
    "aiokafka",  # aiokafka/client.py: "Unable connect to node", "Unable to update metadata"
    "aiokafka.admin.client",
    "aiokafka.conn",
    "aiokafka.cluster",
    "aiokafka.consumer.consumer",
    "aiokafka.consumer.fetcher",
    "aiokafka.consumer.group_coordinator",
    "aiokafka.producer.producer",
    "aiokafka.producer.sender",
)


class RepeatFilter(logging.Filter):
    """Passes a message (by logger and format string) at most once per `every_seconds`."""

    def __init__(self, every_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._every = every_seconds
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._every:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like this in the last {self._every:.0f} s)"
        return True


def quiet_kafka_reconnects(every_seconds: float = 30.0) -> None:
    """Install one `RepeatFilter` on aiokafka's loggers (filters are not inherited by children).

    Idempotent: a process that builds several apps installs it once.
    """
    repeat = RepeatFilter(every_seconds)
    for name in KAFKA_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RepeatFilter) for f in logger.filters):
            logger.addFilter(repeat)
