"""`no_kafka_client_left_unclosed` blames a block for its own clients only.

CI failed once (stop 72) on a publisher test whose publisher was closed: a consumer another test
of the same pytest worker had left unclosed was collected inside the check and counted. These
make such leftovers on purpose, in reference cycles, so that only the garbage collector frees
them, and collect them where the test can see they did warn.
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from unclosed_clients import no_kafka_client_left_unclosed

NOBODY = "127.0.0.1:1"  # never connected to: none of these is started


def _unclosed_in_a_cycle() -> list[Any]:
    """A consumer only the garbage collector can free (it refers to itself), never closed."""
    consumer = AIOKafkaConsumer(bootstrap_servers=NOBODY)
    holder: list[Any] = [consumer]
    consumer.__dict__["cycle"] = holder
    return holder


@contextmanager
def _leftovers_shown_to_warn() -> Iterator[None]:
    """Runs with automatic collection off (so a leftover is freed only where a test says), and
    checks at the end that the test's leftovers did warn when collected: they were real."""
    gc.disable()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
            gc.collect()
    finally:
        gc.enable()
    assert any("Unclosed AIOKafkaConsumer" in str(w.message) for w in caught)


async def test_garbage_left_before_the_block_is_not_blamed_on_it() -> None:
    with _leftovers_shown_to_warn():
        left = _unclosed_in_a_cycle()
        del left  # garbage now; collected when the collector next runs
        with no_kafka_client_left_unclosed():
            pass


async def test_a_client_alive_when_the_block_starts_and_dropped_in_it_is_not_blamed_on_it() -> None:
    with _leftovers_shown_to_warn():
        earlier = _unclosed_in_a_cycle()  # an earlier test's, still referred to (a task, a log)
        with no_kafka_client_left_unclosed():
            del earlier


async def test_a_client_made_in_the_block_and_dropped_unclosed_fails_it() -> None:
    with pytest.raises(AssertionError), no_kafka_client_left_unclosed():
        made = _unclosed_in_a_cycle()
        del made


async def test_a_client_made_in_the_block_and_closed_passes_it() -> None:
    with no_kafka_client_left_unclosed():
        consumer = AIOKafkaConsumer(bootstrap_servers=NOBODY)
        await consumer.stop()
        del consumer
