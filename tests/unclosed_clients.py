"""Asserting that no Kafka client is left unclosed: aiokafka warns ("Unclosed AIOKafkaProducer",
"Unclosed AIOKafkaConsumer") when an object it made is collected before it was closed."""

from __future__ import annotations

import contextlib
import gc
import warnings
from collections.abc import Iterator

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


@contextlib.contextmanager
def no_kafka_client_left_unclosed() -> Iterator[None]:
    """Fails if a Kafka client made in the block is collected unclosed by its end: drop the
    references to what it checks inside it (they are collected at its end).

    Only the block's own clients count. Garbage left by earlier tests in the same process is
    collected before the block starts, and the clients alive when it starts are held until it
    ends, so none of them can be collected (and warn) inside it. Before, a consumer another test
    of the same pytest worker left unclosed was collected here and failed this check (CI, stop
    72)."""
    gc.collect()
    clients = (AIOKafkaConsumer, AIOKafkaProducer)
    made_before = [o for o in gc.get_objects() if isinstance(o, clients)]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
            gc.collect()
    finally:
        del made_before
    assert [str(w.message) for w in caught if "Unclosed AIOKafka" in str(w.message)] == []
