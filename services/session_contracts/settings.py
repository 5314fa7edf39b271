"""Settings every service shares: where Kafka is, how to reach it safely, which topics to use.

`KafkaSettings` is the one description of a Kafka connection; `session_contracts.kafka_clients`
builds every producer, consumer and admin client from it. Secrets are `SecretStr` (never in a
repr, a log line or a dump) or a path to a mounted file read when a client is built.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Self

from pydantic import AliasChoices, Field, FilePath, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from session_contracts.topics import Topics

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./.state/sessions.db"
"""The read model when none is configured: the registry and the admin API find the same file."""

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]


def _environ(name: str) -> str:
    """An environment variable as pydantic-settings reads it: its name in any case, the last
    spelling found when there are several (as it keeps the last)."""
    found = ""
    for key, value in os.environ.items():
        if key.upper() == name:
            found = value
    return found


def _brokers(listed: str) -> frozenset[str]:
    """A bootstrap list's brokers, spaces around each left out."""
    return frozenset(broker.strip() for broker in listed.split(",") if broker.strip())


class KafkaSettings(BaseSettings):
    """Base of each service's settings class (env prefix `SESSIONS_`)."""

    # hide_input_in_errors: a refusal echoed the values read (a model validator's error carries
    # every setting read, cut to its ends: the last one, a password or a key, showed whole;
    # found by a review, 2026-12-06)
    model_config = SettingsConfigDict(
        env_prefix="SESSIONS_", extra="ignore", validate_by_name=True, hide_input_in_errors=True
    )

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices(
            "KAFKA_BOOTSTRAP_SERVERS", "SESSIONS_KAFKA_BOOTSTRAP_SERVERS"
        ),
        description="Broker list: KAFKA_BOOTSTRAP_SERVERS or SESSIONS_KAFKA_BOOTSTRAP_SERVERS; "
        "both set to different lists is refused (`_one_broker_list`).",
    )
    kafka_security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT", description="How clients talk to the brokers."
    )
    kafka_sasl_mechanism: SaslMechanism = Field(
        default="SCRAM-SHA-512", description="SASL mechanism (SASL_* protocols only)."
    )
    kafka_sasl_username: str | None = Field(default=None, max_length=256)
    kafka_sasl_password: SecretStr | None = Field(
        default=None, description="SASL password; or kafka_sasl_password_file."
    )
    kafka_sasl_password_file: FilePath | None = Field(
        default=None, description="A mounted file holding the SASL password (read per client)."
    )
    kafka_sasl_oauth_token_file: FilePath | None = Field(
        default=None,
        description="OAUTHBEARER: a file holding the current access token, read at each "
        "authentication (a token a sidecar or projected volume keeps fresh).",
    )
    kafka_ssl_cafile: FilePath | None = Field(
        default=None,
        description="CA bundle the brokers' certificates are checked against "
        "(default: the system's).",
    )
    kafka_ssl_certfile: FilePath | None = Field(
        default=None, description="Client certificate (mutual TLS)."
    )
    kafka_ssl_keyfile: FilePath | None = Field(default=None, description="Its private key.")
    kafka_ssl_key_password: SecretStr | None = Field(default=None)
    kafka_ssl_key_password_file: FilePath | None = Field(default=None)
    kafka_client_id: str = Field(
        default="session-control",
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Client id the brokers log and quota by; each service sets its own.",
    )
    kafka_group_prefix: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._-]*$",
        description="Prefix of consumer group ids; default: the topic prefix, so environments "
        "sharing a cluster never share a group.",
    )
    kafka_replication_factor: int | None = Field(
        default=None, ge=1, le=32, description="Replicas of created topics (default: broker's)."
    )
    kafka_min_insync_replicas: int | None = Field(
        default=None,
        ge=1,
        le=32,
        description="min.insync.replicas of created topics (default: broker's).",
    )
    kafka_request_timeout_ms: int = Field(default=30_000, ge=1_000, le=600_000)
    topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")
    topic_partitions: int = Field(default=6, ge=1, le=1000)

    @model_validator(mode="after")
    def _one_broker_list(self) -> Self:
        """Refuse KAFKA_BOOTSTRAP_SERVERS and SESSIONS_KAFKA_BOOTSTRAP_SERVERS set to different
        lists (when the list came from the environment, not a keyword). The generic name won:
        a platform service mounting the gateway often exports it for its own cluster, and the
        gateway then followed a revocations topic there, empty, and called itself current
        while every revoked session passed (a review, stop 70)."""
        generic = _brokers(_environ("KAFKA_BOOTSTRAP_SERVERS"))
        ours = _brokers(_environ("SESSIONS_KAFKA_BOOTSTRAP_SERVERS"))
        chosen = _brokers(self.kafka_bootstrap_servers)
        # as the settings read them: names in any case, values with spaces or a newline
        # around (a YAML block), the same brokers in any order (a review of the first version)
        if generic and ours and generic != ours and chosen == generic:
            raise ValueError(
                f"KAFKA_BOOTSTRAP_SERVERS ({','.join(sorted(generic))}) and "
                f"SESSIONS_KAFKA_BOOTSTRAP_SERVERS ({','.join(sorted(ours))}) name different "
                "brokers: unset the one that is not the cluster holding the sessions topics"
            )
        return self

    @model_validator(mode="after")
    def _consistent_security(self) -> Self:
        if self.kafka_sasl_password is not None and self.kafka_sasl_password_file is not None:
            raise ValueError("give one of kafka_sasl_password and kafka_sasl_password_file")
        if self.kafka_ssl_key_password and self.kafka_ssl_key_password_file:
            raise ValueError("give one of kafka_ssl_key_password and kafka_ssl_key_password_file")
        if self.kafka_security_protocol.startswith("SASL_"):
            if self.kafka_sasl_mechanism == "OAUTHBEARER":
                if self.kafka_sasl_oauth_token_file is None:
                    raise ValueError("OAUTHBEARER needs kafka_sasl_oauth_token_file")
            elif self.kafka_sasl_username is None or (
                self.kafka_sasl_password is None and self.kafka_sasl_password_file is None
            ):
                raise ValueError(
                    f"{self.kafka_security_protocol} with {self.kafka_sasl_mechanism} needs "
                    "kafka_sasl_username and kafka_sasl_password (or kafka_sasl_password_file)"
                )
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            raise ValueError("kafka_ssl_certfile and kafka_ssl_keyfile go together")
        if (
            self.kafka_replication_factor is not None
            and self.kafka_min_insync_replicas is not None
            and self.kafka_min_insync_replicas > self.kafka_replication_factor
        ):
            raise ValueError("kafka_min_insync_replicas exceeds kafka_replication_factor")
        return self

    @property
    def topics(self) -> Topics:
        return Topics(prefix=self.topic_prefix, partitions=self.topic_partitions)

    def group_id(self, name: str) -> str:
        """A consumer group id for `name` in this environment (`<group prefix><name>`)."""
        prefix = self.topic_prefix if self.kafka_group_prefix is None else self.kafka_group_prefix
        return f"{prefix}{name}"

    def sasl_password(self) -> str | None:
        """The SASL password, from the setting or read from its file now."""
        return _secret(self.kafka_sasl_password, self.kafka_sasl_password_file)

    def ssl_key_password(self) -> str | None:
        """The private key's password, from the setting or read from its file now."""
        return _secret(self.kafka_ssl_key_password, self.kafka_ssl_key_password_file)

    def describe(self) -> str:
        """The connection in one loggable line: no secret in it."""
        who = ""
        if self.kafka_security_protocol.startswith("SASL_"):
            who = f" as {self.kafka_sasl_username or 'token'} ({self.kafka_sasl_mechanism})"
        return (
            f"{self.kafka_bootstrap_servers} over {self.kafka_security_protocol}{who}, "
            f"client id {self.kafka_client_id}"
        )


def _secret(value: SecretStr | None, path: Path | None) -> str | None:
    if value is not None:
        return value.get_secret_value()
    if path is not None:
        return path.read_text(encoding="utf-8").strip()
    return None


def comma_secrets(name: str, value: SecretStr) -> tuple[str, ...]:
    """The secrets of a comma-separated setting `name` (several, for rotation: the first signs,
    every one verifies); ValueError naming the setting for an empty or repeated one."""
    keys = tuple(key.strip() for key in value.get_secret_value().split(","))
    if empty := [str(n) for n, key in enumerate(keys, 1) if not key]:
        raise ValueError(f"{name}: key {', '.join(empty)} is empty (keys are separated by commas)")
    if len(set(keys)) != len(keys):
        raise ValueError(f"{name}: a key is listed twice")
    return keys
