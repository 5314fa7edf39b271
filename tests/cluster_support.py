"""The secured three-node cluster of `deploy/kafka.sh cluster`: its values and how to reach it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.deploy_scripts import printed
from devstack.secured_cluster import cluster_script


@dataclass(frozen=True)
class Cluster:
    bootstrap: str
    directory: Path
    prefix: str

    def password_file(self, user: str) -> Path:
        return self.directory / "users" / f"{user}.password"

    @property
    def ca(self) -> Path:
        return self.directory / "tls" / "ca.pem"

    def node_pid(self, node: int) -> int:
        return int((self.directory / f"node{node}" / "kafka.pid").read_text())

    def as_user(self, user: str, **overrides: Any) -> dict[str, Any]:
        """Settings keyword arguments of a service connecting as `user`."""
        return {
            "kafka_bootstrap_servers": self.bootstrap,
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "SCRAM-SHA-512",
            "kafka_sasl_username": user,
            "kafka_sasl_password_file": self.password_file(user),
            "kafka_ssl_cafile": self.ca,
            "topic_prefix": self.prefix,
            "kafka_client_id": f"test-{user}",
            **overrides,
        }


def start_cluster() -> Cluster:
    """`deploy/kafka.sh cluster start` (idempotent) and the values it prints."""
    out = cluster_script("start")
    return Cluster(
        printed(out, "KAFKA_CLUSTER_BOOTSTRAP_SERVERS"),
        Path(printed(out, "KAFKA_CLUSTER_DIR")),
        printed(out, "KAFKA_CLUSTER_TOPIC_PREFIX"),
    )


def cluster_running() -> bool:
    """`deploy/kafka.sh cluster status`: every node runs and answers."""
    try:
        cluster_script("status")
    except RuntimeError:
        return False
    return True


def stop_cluster() -> None:
    """`deploy/kafka.sh cluster stop` (idempotent)."""
    cluster_script("stop")


def grant_environment(prefix: str) -> None:
    """Topics and the ACL table for another topic prefix on the running cluster (~3 s)."""
    cluster_script("grant", prefix)


def documented_acls(prefix: str) -> dict[tuple[str, str, str], set[tuple[str, str, str]]]:
    """docs/security.md's ACL table for the topics of `prefix`, written out here (not read from
    `session_contracts.kafka_acls`, which grants it)."""

    def topic(name: str) -> tuple[str, str, str]:
        return ("TOPIC", f"{prefix}sessions.{name}", "LITERAL")

    def grants(**by_user: str) -> set[tuple[str, str, str]]:
        return {
            (f"User:{user.replace('_', '-')}", operation, "ALLOW")
            for user, operations in by_user.items()
            for operation in operations.split()
        }

    return {
        topic("events"): grants(
            registry="READ DESCRIBE WRITE", admin_api="DESCRIBE", gateway="WRITE DESCRIBE"
        ),
        topic("commands"): grants(registry="READ DESCRIBE", admin_api="WRITE DESCRIBE"),
        topic("revocations"): grants(
            registry="READ DESCRIBE WRITE", admin_api="DESCRIBE", gateway="READ DESCRIBE"
        ),
        topic("events.dlq"): grants(registry="WRITE DESCRIBE", admin_api="DESCRIBE"),
        topic("settings"): grants(admin_api="WRITE DESCRIBE", gateway="READ DESCRIBE"),
        ("GROUP", f"{prefix}session-registry", "LITERAL"): grants(registry="READ"),
    }
