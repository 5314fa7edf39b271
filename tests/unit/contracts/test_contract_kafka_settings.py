"""KafkaSettings and the client factory: every option reaches the client, no secret leaks."""

from __future__ import annotations

import logging
import os
import ssl
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from admin_api.settings import AdminApiSettings
from auth_gateway.settings import GatewaySettings
from session_contracts.kafka_admin import topic_commands, topic_config
from session_contracts.kafka_clients import (
    FileTokenProvider,
    client_options,
    connection_failure,
    new_admin,
    new_consumer,
    new_producer,
    security_options,
)
from session_contracts.settings import KafkaSettings
from session_registry.settings import RegistrySettings

SECRET = "hunter2-" + "p" * 20


def test_plaintext_by_default_with_nothing_secret() -> None:
    kafka = KafkaSettings(_env_file=None)
    assert security_options(kafka) == {"security_protocol": "PLAINTEXT"}
    assert client_options(kafka)["client_id"] == "session-control"


def test_each_service_has_its_own_client_id() -> None:
    assert RegistrySettings().kafka_client_id == "session-registry"
    assert GatewaySettings().kafka_client_id == "session-gateway"
    admin = AdminApiSettings(environment="development", jwt_secret="x" * 40)
    assert admin.kafka_client_id == "session-admin-api"


def test_sasl_ssl_from_the_environment_with_a_password_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    password = tmp_path / "password"
    password.write_text(SECRET + "\n")
    monkeypatch.setenv("SESSIONS_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("SESSIONS_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("SESSIONS_KAFKA_SASL_USERNAME", "registry")
    monkeypatch.setenv("SESSIONS_KAFKA_SASL_PASSWORD_FILE", str(password))
    options = security_options(KafkaSettings())
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert options["sasl_plain_username"] == "registry"
    assert options["sasl_plain_password"] == SECRET  # read from the file, newline stripped
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert options["ssl_context"].check_hostname


async def test_producers_are_idempotent_with_acks_all_and_carry_the_security() -> None:
    kafka = KafkaSettings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="gateway",
        kafka_sasl_password=SECRET,
        kafka_client_id="svc-a",
    )
    producer = new_producer(kafka)
    assert producer._txn_manager is not None  # idempotence on
    assert producer.client._client_id == "svc-a"
    assert producer.client._sasl_mechanism == "PLAIN"
    assert producer.client._security_protocol == "SASL_PLAINTEXT"
    assert producer._sender._acks == -1  # all
    consumer = new_consumer(kafka, "t", group_id=kafka.group_id("g"))
    assert isinstance(consumer, AIOKafkaConsumer)
    assert consumer._client._sasl_plain_username == "gateway"
    admin = new_admin(kafka)
    assert admin._client._security_protocol == "SASL_PLAINTEXT"
    await admin.close()
    await consumer.stop()
    await producer.stop()


def test_oauthbearer_reads_the_token_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("eyJ.token.value")
    kafka = KafkaSettings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="OAUTHBEARER",
        kafka_sasl_oauth_token_file=token,
    )
    provider = security_options(kafka)["sasl_oauth_token_provider"]
    assert isinstance(provider, FileTokenProvider)


async def test_the_token_provider_reads_the_current_token(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    provider = FileTokenProvider(str(token))
    assert await provider.token() == "first"
    token.write_text("second")  # rotated by whoever keeps it fresh
    assert await provider.token() == "second"
    assert "second" not in repr(provider)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "kafka_sasl_username"),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "OAUTHBEARER"},
            "kafka_sasl_oauth_token_file",
        ),
        ({"kafka_sasl_password": "a", "kafka_sasl_password_file": "/etc/hostname"}, "one of"),
        ({"kafka_ssl_certfile": "/etc/hostname"}, "go together"),
        ({"kafka_replication_factor": 2, "kafka_min_insync_replicas": 3}, "exceeds"),
        ({"kafka_security_protocol": "SASL_SCRAM"}, "security_protocol"),
        ({"kafka_sasl_mechanism": "GSSAPI"}, "sasl_mechanism"),
        ({"kafka_sasl_password_file": "/no/such/file"}, "kafka_sasl_password_file"),
    ],
)
def test_inconsistent_security_is_refused_naming_the_setting(
    fields: dict[str, object], named: str
) -> None:
    with pytest.raises(ValidationError, match=named):
        KafkaSettings(**fields)  # type: ignore[arg-type]


def test_groups_follow_the_topic_prefix_or_their_own_setting() -> None:
    assert RegistrySettings().consumer_group == "session-registry"
    assert RegistrySettings(topic_prefix="staging.").consumer_group == "staging.session-registry"
    own = RegistrySettings(topic_prefix="staging.", kafka_group_prefix="blue-")
    assert own.consumer_group == "blue-session-registry"
    explicit = RegistrySettings(topic_prefix="staging.", consumer_group="legacy")
    assert explicit.consumer_group == "legacy"


def test_replication_settings_reach_the_topic_configs() -> None:
    kafka = KafkaSettings(
        topic_prefix="p.", kafka_replication_factor=3, kafka_min_insync_replicas=2
    )
    for spec in kafka.topics.specs():
        assert topic_config(kafka, spec)["min.insync.replicas"] == "2"
        assert topic_config(kafka, spec) == {**spec.config, "min.insync.replicas": "2"}
    lines = topic_commands(kafka, 3)
    assert len(lines) == len(kafka.topics.specs())
    assert all("--replication-factor 3" in line for line in lines)
    assert "--topic p.sessions.revocations" in lines[2] and "cleanup.policy=compact" in lines[2]
    assert "min.insync.replicas" not in str(topic_config(KafkaSettings(), kafka.topics.specs()[0]))


async def test_no_secret_in_repr_dump_description_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_password = "keypass-" + "k" * 20
    kafka = RegistrySettings(
        kafka_bootstrap_servers="127.0.0.1:1",  # nothing listens: the connection fails
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="registry",
        kafka_sasl_password=SECRET,
        kafka_ssl_key_password=key_password,
    )
    producer = new_producer(kafka)
    await producer.stop()
    caplog.set_level(logging.DEBUG)
    logging.getLogger("probe").info("settings %s %r", kafka, kafka)
    texts = [
        repr(kafka),
        str(kafka),
        kafka.model_dump_json(),
        str(kafka.model_dump()),
        kafka.describe(),
        repr(producer),
        str(await connection_failure(kafka)),
        caplog.text,
    ]
    for text in texts:
        assert SECRET not in text and key_password not in text, text
    assert "registry" in kafka.describe() and "SASL_PLAINTEXT" in kafka.describe()
    assert "ConnectionRefusedError" in str(await connection_failure(kafka))


SECRETS_READ = {
    RegistrySettings: [
        "SESSIONS_DATABASE_URL",
        "SESSIONS_RECORD_SIGNING_KEYS",
        "SESSIONS_KAFKA_SASL_PASSWORD",
        "SESSIONS_KAFKA_SSL_KEY_PASSWORD",
    ],
    AdminApiSettings: [
        "SESSIONS_DATABASE_URL",
        "SESSIONS_JWT_SECRET",
        "SESSIONS_JWT_SECRETS",
        "SESSIONS_CURSOR_SECRET",
        "SESSIONS_CURSOR_SECRETS",
        "SESSIONS_KAFKA_SASL_PASSWORD",
    ],
    GatewaySettings: ["SESSIONS_KAFKA_SASL_PASSWORD", "SESSIONS_KAFKA_SSL_KEY_PASSWORD"],
}


@pytest.mark.parametrize(
    ("settings_class", "variable"),
    [(cls, variable) for cls, variables in SECRETS_READ.items() for variable in variables],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_a_refused_setting_shows_nothing_it_read(
    settings_class: type[KafkaSettings], variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal names the setting, never a value read: a model validator's error carried
    every setting read, cut to its ends, so the last one read (a password, a signing key, a
    database URL with its password) showed whole in the CLI's and the services' output."""
    for name in list(os.environ):
        if name.startswith("SESSIONS_") or name == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(name)
    secret = "Hunter2-" + "q" * 24 + "-tail"
    value = f"postgresql+asyncpg://u:{secret}@db/sessions" if "URL" in variable else secret
    monkeypatch.setenv(variable, value)
    monkeypatch.setenv("SESSIONS_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")  # no user: refused
    with pytest.raises(ValidationError, match="needs kafka_sasl_username") as refused:
        settings_class(_env_file=None)
    shown = str(refused.value)
    # no six characters of the secret in a row (the error cut the values to their ends)
    pieces = {secret[i : i + 6] for i in range(len(secret) - 5)}
    assert not [piece for piece in pieces if piece in shown], shown


@pytest.mark.parametrize(
    ("values", "warned"),
    [
        ({"kafka_bootstrap_servers": "10.0.0.5:9092,10.0.0.6:9092"}, ["unencrypted to brokers"]),
        (
            {
                "kafka_bootstrap_servers": "127.0.0.1:9092",
                "kafka_security_protocol": "SASL_PLAINTEXT",
                "kafka_sasl_mechanism": "PLAIN",
                "kafka_sasl_username": "registry",
                "kafka_sasl_password": SECRET,
            },
            ["sends the password unencrypted"],
        ),
        ({"kafka_bootstrap_servers": "127.0.0.1:9092,localhost:9093,[::1]:9094"}, []),
        # names that began like loopback passed for it (a review, stop 70)
        (
            {"kafka_bootstrap_servers": "localhost-kafka:9092,127.0.0.1.nip.io:9092"},
            ["unencrypted to brokers not on this host (localhost-kafka, 127.0.0.1.nip.io)"],
        ),
        (
            {
                "kafka_bootstrap_servers": "127.0.0.2:9092",
                "kafka_security_protocol": "SASL_PLAINTEXT",
                "kafka_sasl_mechanism": "OAUTHBEARER",
                "kafka_sasl_oauth_token_file": "/etc/hostname",
            },
            ["sends the bearer token unencrypted"],
        ),
        (
            {
                "kafka_bootstrap_servers": "kafka.example:9093",
                "kafka_security_protocol": "SASL_SSL",
                "kafka_sasl_username": "registry",
                "kafka_sasl_password": SECRET,
            },
            [],
        ),
    ],
    ids=["plaintext elsewhere", "plain password", "loopback", "loopback-like", "oauth", "sasl_ssl"],
)
async def test_an_unencrypted_connection_off_this_host_is_warned_of_once(
    values: dict[str, Any], warned: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The services accept every protocol (the development broker is PLAINTEXT on loopback):
    a deployment that forgot one variable ran unencrypted without a word (a review)."""
    kafka = KafkaSettings(kafka_client_id=f"warned-{uuid.uuid4().hex[:8]}", **values)
    caplog.set_level(logging.WARNING, "session_contracts.kafka_clients")
    for _ in range(2):  # once per connection and process
        producer = new_producer(kafka)
        await producer.stop()
    said = [r.getMessage() for r in caplog.records if r.name == "session_contracts.kafka_clients"]
    assert len(said) == len(warned)
    for text, expected in zip(said, warned, strict=True):
        assert expected in text and SECRET not in text
