"""`no_kafka_client_left_unclosed` blames a block for its own clients only.

CI failed once (stop 72) on a publisher test whose publisher was closed: a consumer another test
of the same pytest worker had left unclosed was collected inside the check and counted. These
make such leftovers on purpose, in reference cycles, so that only the garbage collector frees
them, and collect them where the test can see they did warn.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.conn import AIOKafkaConnection

from unclosed_clients import no_kafka_client_left_unclosed

NOBODY = "127.0.0.1:1"  # never connected to: none of these is started


def _unclosed_in_a_cycle(made: list[int] | None = None) -> list[Any]:
    """A consumer only the garbage collector can free (it refers to itself), never closed;
    its id added to `made`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=NOBODY)
    holder: list[Any] = [consumer]
    consumer.__dict__["cycle"] = holder
    if made is not None:
        made.append(id(consumer))
    return holder


@contextmanager
def _leftovers_shown_to_warn() -> Iterator[list[int]]:
    """Runs with automatic collection off (so a leftover is freed only where a test says), and
    checks at the end that the leftovers the test made (their ids in the list it yields) did
    warn when collected, each, by the warning's source: they were real, and not some other
    test's garbage warning in their place."""
    made: list[int] = []
    gc.disable()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield made
            gc.collect()
    finally:
        gc.enable()
    warned = {id(w.source) for w in caught if "Unclosed AIOKafkaConsumer" in str(w.message)}
    assert made and set(made) <= warned


async def test_garbage_left_before_the_block_is_not_blamed_on_it() -> None:
    with _leftovers_shown_to_warn() as made:
        left = _unclosed_in_a_cycle(made)
        del left  # garbage now; collected when the collector next runs
        with no_kafka_client_left_unclosed():
            pass


async def test_a_client_alive_when_the_block_starts_and_dropped_in_it_is_not_blamed_on_it() -> None:
    with _leftovers_shown_to_warn() as made:
        earlier = _unclosed_in_a_cycle(made)  # an earlier test's, still referred to (a task)
        with no_kafka_client_left_unclosed():
            del earlier


class _Open:
    """A connection's stream reader and writer, open."""

    def at_eof(self) -> bool:
        return False

    def close(self) -> None:
        pass


async def test_a_connection_alive_when_the_block_starts_is_not_blamed_on_it() -> None:
    """A connection (`create_conn`, an admin client's) warns as consumers do (a review)."""
    connection = AIOKafkaConnection("127.0.0.1", 1)
    connection.__dict__["cycle"] = connection
    # as if connected (an unconnected one does not warn), with what its close() ends
    connection._reader = _Open()
    connection._writer = _Open()
    connection._read_task = asyncio.get_running_loop().create_future()
    connection._read_task.set_result(None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.disable()
        try:
            with no_kafka_client_left_unclosed():
                del connection
        finally:
            gc.enable()
        gc.collect()
    assert any("Unclosed AIOKafkaConnection" in str(w.message) for w in caught)


async def test_a_dead_weakref_proxy_among_the_objects_does_not_break_the_check() -> None:
    class Referent:
        pass

    referent = Referent()
    proxy = weakref.proxy(referent)
    del referent  # the proxy is dead: asking its __class__ raises ReferenceError
    with no_kafka_client_left_unclosed():
        pass
    del proxy


async def test_a_client_made_in_the_block_and_dropped_unclosed_fails_it() -> None:
    with pytest.raises(AssertionError), no_kafka_client_left_unclosed():
        made = _unclosed_in_a_cycle()
        del made


async def test_a_client_made_in_the_block_and_closed_passes_it() -> None:
    with no_kafka_client_left_unclosed():
        consumer = AIOKafkaConsumer(bootstrap_servers=NOBODY)
        await consumer.stop()
        del consumer
