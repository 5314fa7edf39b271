"""The secured three-node cluster of `deploy/kafka.sh cluster` from Python (benchmarks).

`SecuredCluster.started()` runs `deploy/kafka.sh cluster start` (idempotent) and reads the
values it prints; `environment(prefix)` grants another topic prefix its topics and ACLs;
`settings(user, prefix)` is the `KafkaSettings` of a service principal on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from devstack.deploy_scripts import printed, run_script
from session_contracts.settings import KafkaSettings


@dataclass(frozen=True)
class SecuredCluster:
    bootstrap: str
    directory: Path

    @classmethod
    def started(cls) -> SecuredCluster:
        """Start the cluster if it is not running; its bootstrap list and state directory."""
        out = cluster_script("start")
        return cls(
            printed(out, "KAFKA_CLUSTER_BOOTSTRAP_SERVERS"), Path(printed(out, "KAFKA_CLUSTER_DIR"))
        )

    def environment(self, prefix: str) -> None:
        """Create the topics of `prefix` (3 replicas, min ISR 2) and grant the ACL table."""
        cluster_script("grant", prefix)

    def settings(self, user: str, prefix: str, partitions: int = 6) -> KafkaSettings:
        """How the service principal `user` connects (SASL_SSL, SCRAM-SHA-512, the CA)."""
        return KafkaSettings(
            kafka_bootstrap_servers=self.bootstrap,
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username=user,
            kafka_sasl_password_file=self.directory / "users" / f"{user}.password",
            kafka_ssl_cafile=self.directory / "tls" / "ca.pem",
            kafka_client_id=f"bench-{user}",
            topic_prefix=prefix,
            topic_partitions=partitions,
        )


def cluster_script(*arguments: str) -> str:
    """Run `deploy/kafka.sh cluster ARGUMENTS`; what it printed (an error names both streams)."""
    return run_script("kafka.sh", "cluster", timeout=900, args=arguments)
