"""The secured three-node cluster (`deploy/kafka.sh cluster start`), started once if not running.

Every service connects as its own SCRAM user over SASL_SSL, trusting the cluster's CA; the
ACLs of docs/security.md hold for the topic prefix the cluster was set up with. Tests keep
apart by tenant id (the topics are the environment's, shared as in production).
"""

from __future__ import annotations

import uuid

import pytest

from cluster_support import Cluster, start_cluster


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    """The running secured cluster (started now if it is not)."""
    return start_cluster()


@pytest.fixture
def tenant() -> str:
    """A tenant id of this test's own: the cluster's topics are shared."""
    return f"t{uuid.uuid4().hex[:12]}"
