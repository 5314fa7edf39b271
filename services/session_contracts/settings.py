"""Settings every service shares: where Kafka is and which topics to use."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from session_contracts.topics import Topics

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./.state/sessions.db"
"""The read model when none is configured: the registry and the admin API find the same file."""


class KafkaSettings(BaseSettings):
    """Base of each service's settings class (env prefix `SESSIONS_`)."""

    model_config = SettingsConfigDict(env_prefix="SESSIONS_", extra="ignore", validate_by_name=True)

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices(
            "KAFKA_BOOTSTRAP_SERVERS", "SESSIONS_KAFKA_BOOTSTRAP_SERVERS"
        ),
        description="Broker list; an explicit KAFKA_BOOTSTRAP_SERVERS wins over SESSIONS_*.",
    )
    topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")
    topic_partitions: int = Field(default=6, ge=1, le=1000)

    @property
    def topics(self) -> Topics:
        return Topics(prefix=self.topic_prefix, partitions=self.topic_partitions)
