"""`deploy/kafka.sh topics --check`: an existing topic whose setting is not the contract's is
named with the `kafka-configs.sh` line that changes it, and that line (run from the fetched jars
as `deploy/kafka.sh configs`) changes it: `sessions.events` then dates its records itself."""

from __future__ import annotations

import asyncio
import os
import shlex
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

import fresh_topics
from polling import until
from session_contracts.topics import DAY_MS, Topics

pytestmark = pytest.mark.kafka
REPO = Path(__file__).resolve().parents[3]


async def _run(*argv: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=REPO,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_topics_check_names_what_differs_and_its_command_repairs_it(
    kafka_bootstrap: str,
) -> None:
    topics = Topics(prefix=f"t{uuid.uuid4().hex[:12]}.", partitions=2)
    older = {
        topics.events: {"message.timestamp.type": "CreateTime"},  # made before 2026-12-04
        topics.commands: {"retention.ms": str(DAY_MS)},
    }
    await fresh_topics.create(kafka_bootstrap, topics, older)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SESSIONS_TOPIC_PREFIX": topics.prefix,
        "SESSIONS_TOPIC_PARTITIONS": str(topics.partitions),
    }
    check = ("bash", "deploy/kafka.sh", "topics", "--check")
    try:
        code, out = await _run(*check, env=env)
        assert code == 1, out
        assert (
            f"{topics.events}: message.timestamp.type is CreateTime, the contract's is "
            "LogAppendTime" in out
        )
        assert f"{topics.commands}: retention.ms is {DAY_MS}, the contract's is {7 * DAY_MS}" in out
        commands = [line.strip() for line in out.splitlines() if "kafka-configs.sh" in line]
        assert len(commands) == 2, out
        assert not any(t in out for t in (topics.revocations, topics.settings, topics.dead_letters))
        assert (await _run("bash", "deploy/kafka.sh", "topics", env=env))[0] == 0  # creates only

        for command in commands:
            _, *args = shlex.split(command)
            code, out = await _run("bash", "deploy/kafka.sh", "configs", *args, env=env)
            assert code == 0, out

        async def repaired() -> bool:
            return (await _run(*check, env=env))[0] == 0

        await until(repaired, 30, "the topics check passes once the printed commands ran")

        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            ahead = datetime.now(UTC) + timedelta(days=1)
            sent = await producer.send_and_wait(
                topics.events, b"{}", timestamp_ms=int(ahead.timestamp() * 1000)
            )
        finally:
            await producer.stop()
        assert sent.timestamp_type == 1  # LogAppendTime: the broker's, not the producer's
        assert sent.timestamp < int(ahead.timestamp() * 1000)
    finally:
        await fresh_topics.delete(kafka_bootstrap, topics)
