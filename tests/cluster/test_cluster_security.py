"""Authentication, encryption and authorization on the secured cluster, each tried to be broken.

A wrong password and an untrusted broker certificate leave the service not ready with one log
line naming the cause (never the password); a principal without an ACL gets an error naming
the topic and the operation; the gateway's principal cannot write commands or revocations; a
password changed in its file, or rotated, is the one the cluster takes and the old one is refused.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import os
import re
import secrets
import signal
import subprocess
import time

import pytest
from aiokafka.errors import TopicAuthorizationFailedError
from pydantic import SecretStr

from admin_api.adapters.bus import KafkaBus
from admin_api.settings import AdminApiSettings
from auth_gateway.revocations import RevocationTable
from auth_gateway.settings import GatewaySettings
from auth_gateway.watcher import RevocationWatcher
from cluster_support import Cluster, documented_acls, grant_environment, start_cluster
from devstack.deploy_scripts import REPO
from devstack.secured_cluster import cluster_script
from session_contracts.kafka_acls import remove_acls
from session_contracts.kafka_admin import delete_topics
from session_contracts.kafka_clients import (
    connection_failure,
    describe_kafka_error,
    new_producer,
)
from session_contracts.settings import KafkaSettings
from session_contracts.topics import Topics
from session_registry.settings import DEFAULT_CONSUMER_GROUP

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("cluster")]

WRONG = "not-the-password-" + "x" * 12
JWT = "cluster-" + "j" * 40


async def until(condition: object, within: float = 60.0) -> None:
    """Wait until `condition()` holds (a test fails on the timeout, not on speed)."""
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


def warnings_of(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger and r.levelno >= 30]


async def _bus_failure(settings: AdminApiSettings) -> tuple[KafkaBus, str]:
    bus = KafkaBus(settings)
    bus.start()
    try:
        await until(lambda: bus.failure is not None)
        await asyncio.sleep(3)  # a few retries: still one line
        assert not bus.ready
        assert bus.failure is not None
        return bus, bus.failure
    finally:
        await bus.stop()


async def test_a_wrong_password_is_not_ready_with_one_line_naming_it(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    settings = AdminApiSettings(
        **cluster.as_user(
            "admin-api",
            kafka_sasl_password_file=None,
            kafka_sasl_password=SecretStr(WRONG),
            environment="development",
            jwt_secret=JWT,
        )
    )
    _, failure = await _bus_failure(settings)
    assert "SASL authentication failed for admin-api (SCRAM-SHA-512)" in failure
    lines = warnings_of(caplog, "admin_api.adapters.bus")
    assert len(lines) == 1, lines
    assert "SASL authentication failed for admin-api" in lines[0]
    assert not any(WRONG in (r.getMessage() + str(r.exc_info)) for r in caplog.records)


async def test_an_untrusted_broker_certificate_is_not_ready_with_one_line_naming_it(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    # No CA given: the system's CAs, which never signed the cluster's certificate.
    settings = AdminApiSettings(
        **cluster.as_user(
            "admin-api", kafka_ssl_cafile=None, environment="development", jwt_secret=JWT
        )
    )
    _, failure = await _bus_failure(settings)
    assert "TLS handshake failed" in failure and "CERTIFICATE_VERIFY_FAILED" in failure
    lines = warnings_of(caplog, "admin_api.adapters.bus")
    assert len(lines) == 1, lines
    assert "CERTIFICATE_VERIFY_FAILED" in lines[0]


async def test_a_gateway_with_a_wrong_password_says_why_it_is_not_ready(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    settings = GatewaySettings(
        **cluster.as_user(
            "gateway", kafka_sasl_password_file=None, kafka_sasl_password=SecretStr(WRONG)
        )
    )
    watcher = RevocationWatcher(settings, settings.topics.revocations, ["acme"], RevocationTable())
    task = asyncio.create_task(watcher.run())
    try:
        await until(lambda: watcher.failure is not None)
        await asyncio.sleep(3)
        assert not watcher.ready
        assert "SASL authentication failed for gateway" in (watcher.failure or "")
        lines = warnings_of(caplog, "auth_gateway.follower")
        assert len(lines) == 1, lines
        assert not any(WRONG in (r.getMessage() + str(r.exc_info)) for r in caplog.records)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_principal_without_the_acl_gets_the_topic_and_operation_named(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    outsider = KafkaSettings(**cluster.as_user("outsider"))
    topic = outsider.topics.revocations
    watcher = RevocationWatcher(outsider, topic, ["acme"], RevocationTable())
    task = asyncio.create_task(watcher.run())
    try:
        await until(lambda: watcher.failure is not None)
        assert watcher.failure == (
            f"not authorized to read topic {topic} "
            "(the broker's ACLs deny READ on it to this principal)"
        )
        assert not watcher.ready
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # Idempotence off: with it, the broker refuses InitProducerId before any topic is named.
    producer = new_producer(outsider, request_timeout_ms=15_000, enable_idempotence=False)
    await producer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError) as refused:
            await producer.send_and_wait(outsider.topics.events, b"{}", key=b"acme/x")
    finally:
        await producer.stop()
    assert describe_kafka_error(refused.value, "write", outsider.topics.events) == (
        f"not authorized to write topic {outsider.topics.events} "
        "(the broker's ACLs deny WRITE on it to this principal)"
    )


@pytest.mark.parametrize("topic", ["commands", "revocations", "dead_letters", "settings"])
async def test_the_gateway_principal_cannot_write_what_only_others_may(
    cluster: Cluster, topic: str
) -> None:
    gateway = GatewaySettings(**cluster.as_user("gateway"))
    producer = new_producer(gateway, request_timeout_ms=15_000)
    await producer.start()
    try:
        # it may write activity to the events topic...
        await producer.send_and_wait(gateway.topics.events, b"not even an event", key=b"z/x")
        # ...and the broker refuses the rest
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(getattr(gateway.topics, topic), b"{}", key=b"acme/x")
    finally:
        await producer.stop()


async def test_only_the_admin_api_writes_commands_and_only_the_registry_revocations(
    cluster: Cluster,
) -> None:
    allowed = {("admin-api", "commands"), ("registry", "revocations"), ("registry", "dead_letters")}
    for user in ("registry", "admin-api"):
        kafka = KafkaSettings(**cluster.as_user(user))
        producer = new_producer(kafka, request_timeout_ms=15_000)
        await producer.start()
        try:
            for topic in ("commands", "revocations", "dead_letters"):
                name = getattr(kafka.topics, topic)
                if (user, topic) in allowed:
                    continue  # writing a junk record there would reach the registry
                with pytest.raises(TopicAuthorizationFailedError):
                    await producer.send_and_wait(name, b"{}", key=b"acme/x")
        finally:
            await producer.stop()


ACL_LINE = re.compile(r"\(principal=(\S+), host=\S+, operation=(\w+), permissionType=(\w+)\)")
RESOURCE = re.compile(r"ResourcePattern\(resourceType=(\w+), name=(\S+), patternType=(\w+)\)")


def the_acls() -> dict[tuple[str, str, str], set[tuple[str, str, str]]]:
    """Every ACL of the running cluster (`deploy/kafka.sh cluster acls`), by resource."""
    listed: dict[tuple[str, str, str], set[tuple[str, str, str]]] = {}
    resource: tuple[str, str, str] | None = None
    for line in cluster_script("acls").splitlines():
        if (found := RESOURCE.search(line)) is not None:
            kind, name, pattern = found.groups()
            resource = (kind, name, pattern)
            listed.setdefault(resource, set())
        elif (grant := ACL_LINE.search(line)) is not None:
            assert resource is not None, line
            principal, operation, permission = grant.groups()
            listed[resource].add((principal, operation, permission))
    return listed


def of_prefix(
    listed: dict[tuple[str, str, str], set[tuple[str, str, str]]], prefix: str
) -> dict[tuple[str, str, str], set[tuple[str, str, str]]]:
    return {resource: held for resource, held in listed.items() if resource[1].startswith(prefix)}


def test_the_acls_are_the_table_and_nothing_more(cluster: Cluster) -> None:
    """Each principal holds exactly the rights docs/security.md lists, literal topic and group
    names only: a later grant of `All`, a prefixed or `*` pattern, a cluster or transactional id
    right would pass every test that only tries what must be refused (a review)."""
    listed = the_acls()
    assert {(kind, pattern) for kind, _, pattern in listed} <= {
        ("TOPIC", "LITERAL"),
        ("GROUP", "LITERAL"),
    }
    assert all(name != "*" for _, name, _ in listed)
    assert all(p == "ALLOW" for grants in listed.values() for _, _, p in grants)
    assert of_prefix(listed, cluster.prefix) == documented_acls(cluster.prefix)


async def test_another_environment_is_granted_the_table_and_its_acls_removed_with_it(
    cluster: Cluster,
) -> None:
    """`cluster grant PREFIX` (deploy/create_acls.py, one process where kafka-acls.sh took nine
    JVMs) grants a fresh prefix exactly the table, again without a second copy; `remove_acls`
    takes them all and nothing of another environment."""
    prefix = f"acl{secrets.token_hex(4)}."
    await asyncio.to_thread(grant_environment, prefix)
    await asyncio.to_thread(grant_environment, prefix)  # once more: the same ACLs, once each
    listed = the_acls()
    assert of_prefix(listed, prefix) == documented_acls(prefix)

    admin = KafkaSettings(**dataclasses.replace(cluster, prefix=prefix).as_user("admin"))
    await delete_topics(admin, Topics(prefix=prefix))
    assert await remove_acls(admin, admin.group_id(DEFAULT_CONSUMER_GROUP)) == 24
    after = the_acls()
    assert of_prefix(after, prefix) == {}
    assert {r: h for r, h in after.items() if not r[1].startswith(prefix)} == {
        r: h for r, h in listed.items() if not r[1].startswith(prefix)
    }


async def test_a_password_written_again_or_rotated_is_the_one_the_cluster_takes(
    cluster: Cluster,
) -> None:
    """An operator who writes a user's password file again and runs `start` (idempotent) has
    the new password set and the old one refused; `rotate USER` does both in one step. Before
    2026-12-06 `start` recorded only which users it had set, so a password written again was
    never set: the old one stayed valid and the new one was refused."""
    file = cluster.password_file("outsider")  # no ACL: no other test's client is disturbed
    first = file.read_text().strip()
    assert await _per_node(cluster, "outsider", first) == [True, True, True]
    second = secrets.token_hex(18)
    file.write_text(second + "\n")
    start_cluster()  # returns once every node takes it
    assert await _per_node(cluster, "outsider", second) == [True, True, True]
    assert await _per_node(cluster, "outsider", first) == [False, False, False]

    # traced (bash prints every assignment), with settings of the caller's own that the check of
    # every node must not take (they made it fail after the credential was set)
    caller = {"SESSIONS_KAFKA_SASL_MECHANISM": "PLAIN", "SESSIONS_KAFKA_SASL_PASSWORD": WRONG}
    rotated = await _rotate("outsider", "-x", **caller)
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    third = file.read_text().strip()
    assert third not in (first, second) and len(third) == 36
    assert "+ c_set_credential outsider " in rotated.stderr
    digest = hashlib.sha256(f"{third}\n".encode()).hexdigest()  # users.applied's
    for secret in (third, digest):
        assert secret not in rotated.stdout + rotated.stderr  # never printed, nor traced
    assert "rotated the password of outsider" in rotated.stderr
    # taken at every node by the time `rotate` returns (it waits for each), the old refused
    assert await _per_node(cluster, "outsider", third) == [True, True, True]
    assert await _per_node(cluster, "outsider", second) == [False, False, False]


async def _rotate(user: str, *bash: str, **env: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        ["bash", *bash, str(REPO / "deploy" / "kafka.sh"), "cluster", "rotate", user],
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def _per_node(cluster: Cluster, user: str, password: str) -> list[bool]:
    """Whether each node, asked on its own, lets `user` in with `password` (True) or refuses
    the password (False); any other failure (a node away) fails the test."""
    kafka = KafkaSettings(
        **cluster.as_user(
            user, kafka_sasl_password_file=None, kafka_sasl_password=SecretStr(password)
        )
    )
    answers = []
    for node in cluster.bootstrap.split(","):
        failure = await connection_failure(
            kafka.model_copy(update={"kafka_bootstrap_servers": node})
        )
        assert failure is None or "SASL authentication failed" in failure, failure
        answers.append(failure is None)
    return answers


async def test_a_rotation_a_node_does_not_take_in_time_fails_and_keeps_the_old_password(
    cluster: Cluster,
) -> None:
    """`rotate` returns only once every node takes the new password. With node 3 stopped
    (SIGSTOP) it cannot, so `rotate` fails naming it and the file keeps the old password, which
    the next `start` sets again on every node. Before stop 65 (2026-12-06) `rotate` returned
    once the credential was set, and a service restarted with the new file could be refused by
    a node that had not taken it yet."""
    file = cluster.password_file("outsider")  # no ACL: no other test's client is disturbed
    before = file.read_text().strip()
    node3, pid = cluster.bootstrap.split(",")[2], cluster.node_pid(3)
    try:
        os.kill(pid, signal.SIGSTOP)
        try:
            rotated = await _rotate("outsider", KAFKA_CLUSTER_CREDENTIAL_WAIT="2")
        finally:
            os.kill(pid, signal.SIGCONT)
        said = rotated.stdout + rotated.stderr
        assert rotated.returncode != 0, said
        assert f"not taken within 2 s: {node3}: " in said
        assert "a node has not taken the new SCRAM credential of user outsider" in said
        assert file.read_text().strip() == before
        assert not file.with_name("outsider.password.new").exists()
    finally:
        start_cluster()  # sets the file's password again (for the tests after this one too)
    assert await _per_node(cluster, "outsider", before) == [True, True, True]


async def test_rotating_the_admin_keeps_its_tools_working(cluster: Cluster) -> None:
    """`rotate admin` rewrites the client configuration `grant` and `acls` read: they go on
    working as `admin` with its new password, and the old one is refused."""
    file = cluster.password_file("admin")
    before = file.read_text().strip()
    await asyncio.to_thread(cluster_script, "rotate", "admin")
    after = file.read_text().strip()
    assert after != before
    assert await _per_node(cluster, "admin", after) == [True, True, True]
    assert await _per_node(cluster, "admin", before) == [False, False, False]
    config = (cluster.directory / "users" / "admin.properties").read_text()
    assert f'password="{after}"' in config and before not in config
    assert "ResourcePattern(resourceType=TOPIC" in await asyncio.to_thread(cluster_script, "acls")
