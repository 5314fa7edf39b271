"""The private broker and cluster that fault-injection tests stop and restart keep their data."""

from __future__ import annotations

import asyncio
import socket
import uuid

import asyncpg  # type: ignore[import-untyped]
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from devstack.deploy_scripts import REPO
from private_services import PrivateKafka, PrivatePostgres, free_port

pytestmark = pytest.mark.slow  # a broker or cluster of its own, started and restarted


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=value)
    finally:
        await producer.stop()


async def _read_all(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        seen: list[bytes] = []
        async with asyncio.timeout(60):
            while len(seen) < count:
                batch = await consumer.getmany(timeout_ms=1000)
                seen += [record.value for records in batch.values() for record in records]
        return seen
    finally:
        await consumer.stop()


@pytest.mark.kafka
async def test_private_broker_restarts_on_same_port_with_records_retained(
    private_kafka: PrivateKafka,
) -> None:
    topic = f"restart.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=private_kafka.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 2, 1)])
    finally:
        await admin.close()
    await _produce(private_kafka.bootstrap, topic, [b"before-1", b"before-2"])
    # The log dirs hold every session event: nobody but the broker's own user may enter them.
    state = private_kafka.state_dir / f"kafka-{private_kafka.port}"
    assert state.stat().st_mode & 0o077 == 0, oct(state.stat().st_mode)

    await private_kafka.stop()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", private_kafka.port)
    await private_kafka.start()

    await _produce(private_kafka.bootstrap, topic, [b"after"])
    assert sorted(await _read_all(private_kafka.bootstrap, topic, 3)) == [
        b"after",
        b"before-1",
        b"before-2",
    ]


def _dsn(cluster: PrivatePostgres) -> str:
    return cluster.admin_url.replace("postgresql+asyncpg://", "postgresql://")


async def _count(dsn: str, table: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_private_postgres_restart_cuts_connections_and_keeps_rows(
    private_postgres: PrivatePostgres,
) -> None:
    dsn = _dsn(private_postgres)
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE kept (id int PRIMARY KEY)")
    await conn.execute("INSERT INTO kept VALUES (1), (2)")

    await private_postgres.restart()

    lost = (asyncpg.exceptions.InterfaceError, asyncpg.exceptions.ConnectionDoesNotExistError)
    with pytest.raises((*lost, OSError)):
        await conn.fetchval("SELECT 1")
    assert await _count(dsn, "kept") == 2


@pytest.mark.postgres
async def test_private_postgres_prewarm_reads_every_block_after_a_restart_and_refuses_other_names(
    private_postgres: PrivatePostgres,
) -> None:
    # what an operator runs after restarting a large read model (operations.md): each relation
    # read whole, into the buffers or (`:read`) the OS page cache only
    dsn = _dsn(private_postgres)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE warm (id int PRIMARY KEY, pad text)")
        await conn.execute(
            "INSERT INTO warm SELECT i, repeat('x', 200) FROM generate_series(1, 5000) i"
        )
        blocks = {
            name: await conn.fetchval(f"SELECT pg_relation_size('{name}') / 8192")
            for name in ("warm", "warm_pkey")
        }
    finally:
        await conn.close()
    assert blocks["warm"] > 100
    await private_postgres.restart()
    printed = await private_postgres.prewarm("sessions_test", "warm", "warm_pkey:read")
    assert printed.splitlines() == [
        f"warm {blocks['warm']} blocks (buffer)",
        f"warm_pkey {blocks['warm_pkey']} blocks (read)",
    ]
    injected = "warm'); DROP TABLE warm; --"
    for bad in (("sessions_test", injected), ("sessions test", "warm"), ("x",)):
        with pytest.raises(RuntimeError, match="exited 1"):
            await private_postgres.prewarm(*bad)
    assert await _count(dsn, "warm") == 5000  # nothing ran as SQL


@pytest.mark.postgres
async def test_postgres_start_waits_while_a_connection_holds_its_port_then_starts(
    private_postgres: PrivatePostgres,
) -> None:
    # An outgoing connection takes its local port from 32768-60999, where the default 55432 is:
    # while one lives (and 60 s in TIME_WAIT after), the server cannot bind. Seen at a session's
    # start: a probe of the broker had taken 55432 and `postgres.sh start` died.
    await private_postgres.stop()
    listener = socket.create_server(("127.0.0.1", free_port()))
    client = socket.socket()
    client.bind(("127.0.0.1", private_postgres.port))
    client.connect(listener.getsockname())
    accepted, _ = listener.accept()
    script = await asyncio.create_subprocess_exec(
        "bash",
        str(REPO / "deploy" / "postgres.sh"),
        "start",
        env=private_postgres.env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert script.stderr is not None
    try:
        async with asyncio.timeout(60):
            line = b""
            while b"waiting until it closes" not in line:
                line = await script.stderr.readline()
                assert line, "postgres.sh ended without waiting for the port"
        assert f"port {private_postgres.port} is the local end of a connection (ESTABLISHED)" in (
            line.decode()
        )
        assert script.returncode is None
    finally:
        # The far end closes first and its side waits out TIME_WAIT; once its close has reached
        # this end (end of stream), this end's close frees the port at once.
        accepted.close()
        client.settimeout(10)
        assert client.recv(1) == b""
        client.close()
        listener.close()
    stdout, stderr = await asyncio.wait_for(script.communicate(), 60)
    assert script.returncode == 0, stderr.decode()
    assert f"SESSIONS_TEST_POSTGRES_URL={private_postgres.admin_url}" in stdout.decode()
    assert await _count(_dsn(private_postgres), "pg_database") >= 3
