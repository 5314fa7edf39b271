"""A Kafka password file missing for a moment (a secret rotated by removing the old file, then
writing the new one) is waited out by the gateway's follower and the admin API's producer.
Each built its client, which reads the file, outside its retry, and one such moment ended it
for good: the gateway's view stayed stale (fail closed: every request refused until a
restart; fail open: every revoked session admitted), the admin API never connected. Found by
a review, stop 70."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition

from admin_api.adapters.bus import KafkaBus
from auth_gateway import follower
from auth_gateway.follower import Unanswered
from auth_gateway.revocations import RevocationTable
from auth_gateway.watcher import RevocationWatcher
from private_services import free_port
from session_contracts.settings import KafkaSettings


def _settings(password: Path) -> KafkaSettings:
    """SASL settings whose password file is gone once they are made."""
    password.write_text("gateway-secret\n")
    kafka = KafkaSettings(
        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",  # nothing listens: never reached
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="gateway",
        kafka_sasl_password_file=password,
    )
    password.unlink()
    return kafka


async def _until(task: asyncio.Task[None], condition: Callable[[], bool]) -> None:
    """Wait for `condition`; the task must go on meanwhile."""
    async with asyncio.timeout(30):
        while not condition():
            assert not task.done(), task.exception()
            await asyncio.sleep(0.05)


async def test_the_gateways_follower_waits_out_a_missing_password_file(tmp_path: Path) -> None:
    password = tmp_path / "kafka-password"
    watcher = RevocationWatcher(_settings(password), "revocations", None, RevocationTable())
    task = asyncio.create_task(watcher.run())
    try:
        await _until(task, lambda: "building the Kafka client" in (watcher.failure or ""))
        assert str(password) in (watcher.failure or "")
        password.write_text("gateway-secret\n")
        # read now: the consumer is built and tries the broker (refused: nothing listens)
        await _until(task, lambda: "building" not in (watcher.failure or "building"))
        assert not watcher.is_current
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_admin_apis_producer_waits_out_a_missing_password_file(tmp_path: Path) -> None:
    password = tmp_path / "kafka-password"
    bus = KafkaBus(_settings(password), publish_timeout=1)
    bus.start()
    task = bus._starting
    assert task is not None
    try:
        await _until(task, lambda: "No such file" in (bus.failure or ""))
        assert str(password) in (bus.failure or "")
        password.write_text("gateway-secret\n")
        await _until(task, lambda: "No such file" not in (bus.failure or "No such file"))
        assert not bus.ready
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class _OnePartitionAnswers:
    """A consumer of a two-partition topic whose partition 0 is answered every fetch and
    partition 1 never (its leader no longer takes the old credentials), on a clock the fetches
    move by their wait."""

    def __init__(self, clock: list[float]) -> None:
        self._clock = clock
        self._polled: dict[TopicPartition, int] = {}
        self._client = SimpleNamespace(
            cluster=SimpleNamespace(partitions_for_topic=lambda _topic: {0, 1})
        )

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        self._clock[0] += timeout_ms / 1000
        self._polled[TopicPartition("revocations", 0)] = int(self._clock[0] * 1000)
        await asyncio.sleep(0)
        return {}

    async def position(self, tp: TopicPartition) -> int:
        return 5

    def last_poll_timestamp(self, tp: TopicPartition) -> int | None:
        return self._polled.get(tp)

    def highwater(self, tp: TopicPartition) -> int | None:
        return 5 if tp in self._polled else None

    def last_stable_offset(self, tp: TopicPartition) -> int | None:
        return self.highwater(tp)


async def test_a_partition_left_unanswered_has_the_client_built_again() -> None:
    """A rotated password, then a rolling restart: the brokers not restarted keep answering
    the old client's fetches, the one restarted never does, and the view is never confirmed.
    Only the whole consumer unanswered had it built again (a review of the fix, stop 70)."""
    clock = [0.0]
    watcher = RevocationWatcher(
        KafkaSettings(kafka_bootstrap_servers="127.0.0.1:1"),
        "revocations",
        None,
        RevocationTable(),
        monotonic=lambda: clock[0],
    )
    watcher.ready_event.set()
    partitions = [TopicPartition("revocations", 0), TopicPartition("revocations", 1)]

    async def assigned(consumer: Any) -> list[TopicPartition]:
        return partitions

    watcher._assign = assigned  # type: ignore[method-assign]
    consumer: Any = _OnePartitionAnswers(clock)
    with pytest.raises(Unanswered, match=r"partition\(s\) \[1\] answered for 3\d s"):
        await asyncio.wait_for(watcher._follow(consumer), 10)
    assert watcher.confirmed_at is None


async def test_a_position_that_never_comes_has_the_client_built_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """aiokafka's `position` waits for ever while a partition's reset is refused (its leader
    no longer takes the old credentials): the unanswered check after it was never reached (a
    review, stop 70). Bounded now."""
    monkeypatch.setattr(follower, "UNANSWERED_SECONDS", 0.2)
    watcher = RevocationWatcher(
        KafkaSettings(kafka_bootstrap_servers="127.0.0.1:1"), "revocations", None, RevocationTable()
    )

    class Stuck:
        async def position(self, tp: TopicPartition) -> int:
            await asyncio.Event().wait()
            return 0

    consumer: Any = Stuck()
    with pytest.raises(Unanswered, match=r"no position of revocations partition 1"):
        await watcher._position(consumer, TopicPartition("revocations", 1))
