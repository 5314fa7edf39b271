"""The secured three-node cluster (`deploy/kafka.sh cluster start`), started if not running.

Every service connects as its own SCRAM user over SASL_SSL, trusting the cluster's CA; the
ACLs of docs/security.md hold for the topic prefix the cluster was set up with. Tests keep
apart by tenant id (the topics are the environment's, shared as in production).
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from cluster_support import (
    Cluster,
    cluster_running,
    grant_environment,
    start_cluster,
    stop_cluster,
)
from session_contracts.kafka_acls import remove_acls
from session_contracts.kafka_admin import delete_topics
from session_contracts.settings import KafkaSettings
from session_contracts.topics import Topics
from session_registry.settings import DEFAULT_CONSUMER_GROUP

_started_here = False
"""Whether these tests started the cluster (and so stop it after the last of them)."""


@pytest.fixture
def cluster() -> Cluster:
    """The running secured cluster: started now if it is not (idempotent, 0.1 s when it runs).

    One the tests started is stopped after the last of them (`pytest_runtest_teardown`):
    idle, its three nodes take 3-5 s of CPU a minute from a suite that keeps both cores busy.
    One already running (`deploy/kafka.sh cluster start`) is left running."""
    global _started_here
    if not _started_here and not cluster_running():
        _started_here = True
    return start_cluster()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After the last cluster test of this process (they run as one group, conftest.py) and
    its fixtures' teardown, stop the cluster if they started it; a later one (a serial run in
    another order) starts it again."""
    global _started_here
    try:
        return (yield)
    finally:
        if _started_here and (nextitem is None or nextitem.path.parent != item.path.parent):
            _started_here = False
            stop_cluster()


@pytest.fixture
async def own_environment(cluster: Cluster) -> AsyncIterator[Cluster]:
    """The cluster with an environment of the test's own: a fresh topic prefix, its topics and
    the ACL table granted on them (`cluster grant`), both removed after (each run left five
    topics with three replicas each, and their 24 ACLs, on the cluster)."""
    own = dataclasses.replace(cluster, prefix=f"own{uuid.uuid4().hex[:8]}.")
    await asyncio.to_thread(grant_environment, own.prefix)
    try:
        yield own
    finally:
        admin = KafkaSettings(**own.as_user("admin"))
        await delete_topics(admin, Topics(prefix=own.prefix))
        await remove_acls(admin, admin.group_id(DEFAULT_CONSUMER_GROUP))


@pytest.fixture
def tenant() -> str:
    """A tenant id of this test's own: the cluster's topics are shared."""
    return f"t{uuid.uuid4().hex[:12]}"
