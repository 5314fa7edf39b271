"""`/readyz` reads the schema's standing through `SchemaWatch.read_shared`: calls at the same
moment share one read. `/readyz` answers anyone, and each call took a pooled connection for two
queries, so a flood of them took the pool from the admins (a review, stop 72)."""

from __future__ import annotations

import asyncio
import gc

import pytest
from prometheus_client import CollectorRegistry

from admin_api.service_layer import schema_watch
from admin_api.service_layer.schema_watch import SchemaWatch, schema_gauge
from read_model.revisions import SchemaStanding

STANDING = SchemaStanding(database="head", head="head", known=frozenset({"head"}))


async def test_calls_at_the_same_moment_share_one_read_and_a_later_call_reads_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads: list[object] = []
    release = asyncio.Event()

    async def read_standing(engine: object) -> SchemaStanding:
        reads.append(engine)
        await release.wait()
        return STANDING

    monkeypatch.setattr(schema_watch, "read_standing", read_standing)
    watch = SchemaWatch(engine=None, gauge=schema_gauge(CollectorRegistry()))  # type: ignore[arg-type]
    flood = [asyncio.create_task(watch.read_shared()) for _ in range(50)]
    await asyncio.sleep(0.01)
    flood[0].cancel()  # a caller gone does not end the read for the others
    release.set()
    answers = await asyncio.gather(*flood[1:])
    assert len(reads) == 1 and answers == [STANDING] * 49
    assert await watch.read_shared() == STANDING
    assert len(reads) == 2  # once a read has ended, the next call reads afresh


async def test_a_shared_read_that_fails_fails_every_caller_at_that_moment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def read_standing(engine: object) -> SchemaStanding:
        await asyncio.sleep(0.01)
        raise ConnectionRefusedError("database away")

    monkeypatch.setattr(schema_watch, "read_standing", read_standing)
    watch = SchemaWatch(engine=None, gauge=schema_gauge(CollectorRegistry()))  # type: ignore[arg-type]
    answers = await asyncio.gather(*(watch.read_shared() for _ in range(5)), return_exceptions=True)
    assert all(isinstance(a, ConnectionRefusedError) for a in answers)


async def test_a_failed_read_whose_callers_all_went_away_is_not_reported_unretrieved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A shield leaves the shared read's error to no one once every caller is cancelled:
    asyncio would log it as never retrieved, an error line for a flood that gave up."""
    unretrieved: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: unretrieved.append(context))

    async def read_standing(engine: object) -> SchemaStanding:
        await asyncio.sleep(0.01)
        raise ConnectionRefusedError("database away")

    monkeypatch.setattr(schema_watch, "read_standing", read_standing)
    watch = SchemaWatch(engine=None, gauge=schema_gauge(CollectorRegistry()))  # type: ignore[arg-type]
    callers = [asyncio.create_task(watch.read_shared()) for _ in range(3)]
    await asyncio.sleep(0)
    for caller in callers:
        caller.cancel()
    await asyncio.gather(*callers, return_exceptions=True)
    await asyncio.sleep(0.05)  # the read fails with no caller left
    watch._reading = None
    gc.collect()
    await asyncio.sleep(0)
    loop.set_exception_handler(None)
    assert unretrieved == []
