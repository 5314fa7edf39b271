"""Fixtures every suite shares: a real Kafka broker, fresh topics, and one database per backend.

Kafka: an explicit KAFKA_BOOTSTRAP_SERVERS wins; else testcontainers where a Docker engine
answers; else `deploy/kafka.sh start` (Apache Kafka jars from Maven Central, KRaft, loopback).
PostgreSQL: SESSIONS_TEST_POSTGRES_URL (an admin URL) wins; else `deploy/postgres.sh start`.
Fault injection: `private_kafka` / `private_postgres` are a test's OWN broker / cluster
(tests/private_services.py) that it may stop and restart; the shared ones are never touched.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

import fresh_topics
from devstack.deploy_scripts import postgres_admin_url as local_postgres_admin_url
from devstack.deploy_scripts import printed, run_script
from devstack.scratch_databases import create_database, drop_database
from migrated import MigratedCopies
from private_services import PrivateKafka, PrivatePostgres
from session_contracts.topics import Topics

if TYPE_CHECKING:
    from xdist.remote import Producer


def _docker_engine_answers() -> bool:
    try:
        return (
            subprocess.run(
                ["docker", "info"], capture_output=True, timeout=10, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


# Under pytest-xdist a test module is spread over the workers, test by test, except:
# - the modules under tests/e2e/browser/: their stack and Chromium are module-scoped (about 20 s
#   to start on a loaded machine), so each module runs on one worker and starts them once;
# - the tests under tests/cluster/: one group, handed out first, so the secured cluster they
#   start runs only while they do (tests/cluster/conftest.py stops it after the last);
# - tests marked xdist_group (none today), as --dist loadgroup has it.
# Both through the scheduler: with pytest 9 xdist's own loadgroup no longer sees the marks
# (xdist 3.8 renames `item._nodeid`, which pytest 9 no longer reads), so every test would be
# its own group. No module here must run alone: tests share nothing but the broker and the
# PostgreSQL cluster, each under names of its own (topic prefix, database, consumer group).
BROWSER_MODULES = "tests/e2e/browser/"
CLUSTER_TESTS = "tests/cluster/"


def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> object:
    """--dist loadgroup, with each browser module as one group (see above)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class Scheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope: str = super()._split_scope(nodeid)
            if scope == nodeid and nodeid.startswith(CLUSTER_TESTS):
                return CLUSTER_TESTS
            if scope == nodeid and nodeid.startswith(BROWSER_MODULES):
                return nodeid.split("::", 1)[0]
            return scope

    return Scheduling(config, log)


@pytest_asyncio.fixture(autouse=True, scope="module", loop_scope="session")
async def _no_task_outlives_its_module(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """A task that a module's tests or fixtures start and leave running fails the module at its
    teardown, naming the task; it is cancelled, so later tests do not inherit it.

    The tests of a worker share one event loop, so a task left running logs into whichever test
    comes next and fails it at random: in stop 50's CI, a consumer that a cancelled
    `stop_consumer` left retrying a stopped broker wrote its connection errors into another
    module's captured log. A task still ending (a stop finishing in the background) is given
    a few seconds, a bound on a hang, not a speed claim.
    """
    before = asyncio.all_tasks()
    yield
    this = asyncio.current_task()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while left := [t for t in asyncio.all_tasks() - before if t is not this and not t.done()]:
        if loop.time() > deadline:
            for task in left:
                task.cancel()
            running = "; ".join(sorted(map(_described, left)))
            pytest.fail(f"{request.node.nodeid} left {len(left)} task(s) running: {running}")
        await asyncio.sleep(0.05)


def _described(task: asyncio.Task[object]) -> str:
    """A task left running, with whose it is: a Kafka client's task says the topics its client
    knew (which producer or consumer it was is otherwise a guess: a CI failure named only
    `AIOKafkaClient._md_synchronizer`)."""
    coro = task.get_coro()
    owner = getattr(getattr(coro, "cr_frame", None), "f_locals", {}).get("self")
    client = getattr(owner, "_client", None) or getattr(owner, "client", None) or owner
    topics = getattr(client, "_topics", None)
    known = f" (its Kafka client knew topics {sorted(topics)})" if topics is not None else ""
    return f"{task.get_name()}: {coro!r}{known}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist, the cluster's tests are handed out first, then the tests marked
    `slow` (a minute or more).

    A worker takes its tests in collection order; a long test collected last would start when
    the others are done and hold the whole run for its length. The cluster's group first: the
    cluster idles at 3-5 s of CPU a minute, so it should run for the least of the suite. Stable
    sort: every worker collects the same order, as xdist requires. A serial run keeps the
    collection order.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(
            key=lambda item: (
                not item.nodeid.startswith(CLUSTER_TESTS),
                item.get_closest_marker("slow") is None,
            )
        )


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a real Apache Kafka broker."""
    explicit = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if explicit:
        yield explicit
        return
    if _docker_engine_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:4.1.1").with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    yield printed(run_script("kafka.sh", "start"), "KAFKA_BOOTSTRAP_SERVERS")


@pytest.fixture
async def topics(kafka_bootstrap: str) -> AsyncIterator[Topics]:
    """The contract's topics under a fresh prefix: tests never see each other's records.

    Deleted after the test (tests/fresh_topics.py says why).
    """
    fresh = Topics(prefix=f"t{uuid.uuid4().hex[:12]}.", partitions=3)
    await fresh_topics.create(kafka_bootstrap, fresh)
    try:
        yield fresh
    finally:
        await asyncio.shield(fresh_topics.delete(kafka_bootstrap, fresh))


@pytest.fixture
async def unmade_topics(kafka_bootstrap: str) -> AsyncIterator[Topics]:
    """A fresh prefix (one partition a topic) whose topics the code under test makes, or never
    does: whichever of them exist after the test are deleted, as `topics`' are."""
    fresh = Topics(prefix=f"t{uuid.uuid4().hex[:12]}.", partitions=1)
    try:
        yield fresh
    finally:
        await asyncio.shield(fresh_topics.delete(kafka_bootstrap, fresh))


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """An asyncpg URL of a PostgreSQL role that may create databases."""
    return local_postgres_admin_url()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database URL: SQLite in a temporary file, or a new PostgreSQL database.

    A test that also takes `migrated` gets its PostgreSQL database created as the migrated
    copy at once (`migrated.migrate` of it is then done), not created empty and made again."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}"
        return
    admin_url = request.getfixturevalue("postgres_admin_url")
    name = f"t_{uuid.uuid4().hex[:16]}"
    if "migrated" in request.fixturenames:
        copies: MigratedCopies = request.getfixturevalue("migrated")
        url = await copies.new_postgres_copy(admin_url, name)
    else:
        url = await create_database(admin_url, name)
    try:
        yield url
    finally:
        await asyncio.shield(drop_database(admin_url, name))


@pytest.fixture(scope="session")
async def migrated(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MigratedCopies]:
    """`await migrated.migrate(db_url)`: the test's new database at the current schema, copied
    from one migrated once per process (tests/migrated.py), not migrated again."""
    copies = MigratedCopies(tmp_path_factory.mktemp("schema-template"))
    try:
        yield copies
    finally:
        await asyncio.shield(copies.close())


@pytest.fixture
async def private_kafka(tmp_path: Path) -> AsyncIterator[PrivateKafka]:
    """A started broker of this test's own (free ports, state in tmp_path); stopped afterwards."""
    broker = PrivateKafka(tmp_path / "private-kafka")
    await broker.start()
    try:
        yield broker
    finally:
        await asyncio.shield(broker.stop())


@pytest.fixture
async def private_postgres(tmp_path: Path) -> AsyncIterator[PrivatePostgres]:
    """A started PostgreSQL cluster of this test's own (free port); deleted afterwards."""
    cluster = PrivatePostgres(tmp_path / "private-postgres")
    await cluster.start()
    try:
        yield cluster
    finally:
        await asyncio.shield(cluster.destroy())
