"""Asserting that no Kafka client is left unclosed: aiokafka warns ("Unclosed AIOKafkaProducer",
"Unclosed AIOKafkaConsumer") when an object it made is collected before it was closed."""

from __future__ import annotations

import contextlib
import gc
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def no_kafka_client_left_unclosed() -> Iterator[None]:
    """Fails if a Kafka client is collected unclosed by the end of the block: drop the
    references to what it checks inside it (they are collected at its end)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
        gc.collect()
    assert [str(w.message) for w in caught if "Unclosed AIOKafka" in str(w.message)] == []
