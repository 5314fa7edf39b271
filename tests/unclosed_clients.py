"""Asserting that no Kafka client is left unclosed: aiokafka warns ("Unclosed AIOKafkaProducer",
"Unclosed AIOKafkaConsumer", "Unclosed AIOKafkaConnection") when an object it made is collected
before it was closed."""

from __future__ import annotations

import contextlib
import gc
import warnings
from collections.abc import Iterator

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.conn import AIOKafkaConnection

WARNING_CLIENTS = (AIOKafkaConsumer, AIOKafkaProducer, AIOKafkaConnection)
"""The aiokafka classes that warn when collected unclosed (aiokafka 0.14)."""


@contextlib.contextmanager
def no_kafka_client_left_unclosed() -> Iterator[None]:
    """Fails if a Kafka client alive only in the block is collected unclosed by its end: drop
    the references to what it checks inside it (they are collected at its end).

    A client alive before the block is not counted: garbage earlier tests of the process left
    is collected before the block starts, and the clients alive when it starts are held until
    it ends, so none of them can be collected (and warn) inside it. Before, a consumer a test
    of the same pytest worker had left unclosed was collected here and failed this check (CI,
    stop 73). Their warnings, if any, come at those two moments, outside the check: pytest
    shows them in the current test's warnings. A task an earlier test left running that makes
    and drops a client during the block is still counted."""
    gc.collect()
    # type(), not isinstance(): a dead weakref.proxy among the objects raises on __class__
    made_before = [o for o in gc.get_objects() if issubclass(type(o), WARNING_CLIENTS)]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
            gc.collect()
    finally:
        del made_before
    assert [str(w.message) for w in caught if "Unclosed AIOKafka" in str(w.message)] == []
