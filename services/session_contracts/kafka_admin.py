"""Creating the contract's topics on a cluster, idempotently.

Replication is a setting (`kafka_replication_factor`, `kafka_min_insync_replicas`); unset, a
topic gets the broker's `default.replication.factor` and `min.insync.replicas`. A platform
that creates topics itself sets `SESSIONS_CREATE_TOPICS=false` and uses `topic_commands` (the
exact `kafka-topics.sh` lines, printed by `deploy/create_topics.py --print`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError, for_code

from session_contracts.kafka_clients import new_admin
from session_contracts.settings import KafkaSettings
from session_contracts.topics import Topics, TopicSpec

log = logging.getLogger(__name__)


def topic_config(kafka: KafkaSettings, spec: TopicSpec) -> dict[str, str]:
    """The configs a topic is created with: the contract's, and min.insync.replicas if set."""
    config = dict(spec.config)
    if kafka.kafka_min_insync_replicas is not None:
        config["min.insync.replicas"] = str(kafka.kafka_min_insync_replicas)
    return config


def topic_commands(kafka: KafkaSettings, replication_factor: int) -> list[str]:
    """`kafka-topics.sh --create` lines for every topic, for platforms that pre-create them."""
    lines = []
    for spec in kafka.topics.specs():
        configs = " ".join(f"--config {k}={v}" for k, v in topic_config(kafka, spec).items())
        lines.append(
            f"kafka-topics.sh --bootstrap-server {kafka.kafka_bootstrap_servers} --create "
            f"--if-not-exists --topic {spec.name} --partitions {spec.partitions} "
            f"--replication-factor {replication_factor} {configs}"
        )
    return lines


async def ensure_topics(kafka: KafkaSettings, topics: Topics | None = None) -> list[str]:
    """Create every missing topic of `topics` (default: the settings') with its contract
    settings and the configured replication; return the names of those created."""
    topics = topics or kafka.topics
    admin = new_admin(kafka)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in topics.specs() if spec.name not in existing]
        if not missing:
            return []
        replicas = kafka.kafka_replication_factor or await _default_replication(admin)
        response = await admin.create_topics(
            [
                NewTopic(s.name, s.partitions, replicas, topic_configs=topic_config(kafka, s))
                for s in missing
            ]
        )
        for name, code, *_ in response.topic_errors:
            error = for_code(code)
            if code and error is not TopicAlreadyExistsError:
                raise error(f"creating topic {name}")
        log.info("created topics %s with %d replicas", [s.name for s in missing], replicas)
        return [s.name for s in missing]
    finally:
        await admin.close()


@dataclass(frozen=True)
class ConfigDrift:
    """A setting of an existing topic that is not the contract's (`ensure_topics` creates
    missing topics only, and never alters one)."""

    topic: str
    name: str
    actual: str | None
    wanted: str

    def __str__(self) -> str:
        return f"{self.topic}: {self.name} is {self.actual}, the contract's is {self.wanted}"

    def command(self, bootstrap: str, tool: str = "kafka-configs.sh") -> str:
        """The `kafka-configs.sh` line that changes it (and only it); `tool`: how to run it."""
        return (
            f"{tool} --bootstrap-server {bootstrap} --alter --entity-type topics "
            f"--entity-name {self.topic} --add-config {self.name}={self.wanted}"
        )


async def delete_topics(kafka: KafkaSettings, topics: Topics) -> None:
    """Delete every topic of `topics` that exists (the broker removes their logs in the
    background)."""
    admin = new_admin(kafka)
    await admin.start()
    try:
        await admin.delete_topics([spec.name for spec in topics.specs()])
    finally:
        await admin.close()


async def config_drift(kafka: KafkaSettings, topics: Topics | None = None) -> list[ConfigDrift]:
    """Every setting of the contract's existing topics that differs from what `ensure_topics`
    would create them with (topics not on the cluster are left out). Needs DESCRIBE_CONFIGS on
    the topics, which the services' principals do not hold: an operator's tool."""
    topics = topics or kafka.topics
    admin = new_admin(kafka)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        specs = [spec for spec in topics.specs() if spec.name in existing]
        if not specs:
            return []
        wanted = {spec.name: topic_config(kafka, spec) for spec in specs}
        resources = [
            ConfigResource(ConfigResourceType.TOPIC, name, dict.fromkeys(configs))
            for name, configs in wanted.items()
        ]
        actual = await _described(admin, resources)
        return [
            ConfigDrift(topic, key, actual.get(topic, {}).get(key), value)
            for topic, configs in wanted.items()
            for key, value in configs.items()
            if actual.get(topic, {}).get(key) != value
        ]
    finally:
        await admin.close()


async def _default_replication(admin: AIOKafkaAdminClient) -> int:
    """The broker's default.replication.factor (aiokafka's CreateTopics cannot ask for it)."""
    cluster = await admin.describe_cluster()
    broker = str(cluster["brokers"][0]["node_id"])
    resource = ConfigResource(
        ConfigResourceType.BROKER, broker, {"default.replication.factor": None}
    )
    try:
        value = (
            (await _described(admin, [resource])).get(broker, {}).get("default.replication.factor")
        )
        if value is not None:
            return int(value)
    except Exception as exc:
        raise RuntimeError(
            "cannot read the broker's default.replication.factor "
            f"({type(exc).__name__}: {exc}); set SESSIONS_KAFKA_REPLICATION_FACTOR"
        ) from exc
    raise RuntimeError(
        "the broker did not report default.replication.factor; "
        "set SESSIONS_KAFKA_REPLICATION_FACTOR"
    )


async def _described(
    admin: AIOKafkaAdminClient, resources: list[ConfigResource]
) -> dict[str, dict[str, str | None]]:
    """The configs `resources` name, as the cluster reports them, by resource name; the error
    of a resource the cluster would not describe is raised."""
    found: dict[str, dict[str, str | None]] = {}
    for response in await admin.describe_configs(resources):
        for code, message, _, name, entries in response.resources:
            if code:
                raise for_code(code)(f"describing the configs of {name}: {message}")
            found[name] = {entry[0]: entry[1] for entry in entries}
    return found
