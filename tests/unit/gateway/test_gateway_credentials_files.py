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

from admin_api.adapters.bus import KafkaBus
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
