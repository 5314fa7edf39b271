"""The ACLs each service principal holds on one environment's topics, granted and removed.

The table is docs/security.md's ("ACLs: least privilege per service principal"): every ACL a
literal topic or group name, ALLOW, from any host. `deploy/create_acls.py` grants it (or prints
the `kafka-acls.sh` lines, for a platform that manages its ACLs itself) as a super user.

aiokafka's admin client has no ACL methods; its protocol module has the requests
(`CreateAcls`, `DeleteAcls` v1, which Kafka 4 still serves), sent here one per ACL on one
connection. `kafka-acls.sh` started a JVM for each principal and resource set: nine of them,
about 20 s of a loaded machine per environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import for_code
from aiokafka.protocol.admin import CreateAclsRequest, DeleteAclsRequest

from session_contracts.kafka_clients import new_admin
from session_contracts.settings import KafkaSettings

# Kafka's codes: common.resource.ResourceType, PatternType; common.acl.AclOperation,
# AclPermissionType
_RESOURCE_TYPES = {"topic": 2, "group": 3}
_LITERAL = 3
_OPERATIONS = {"ANY": 1, "READ": 3, "WRITE": 4, "DESCRIBE": 8}
_ANY_PERMISSION, _ALLOW = 1, 3


@dataclass(frozen=True)
class Grant:
    """`operations` on each of `resources` (all of one `kind`: topic or group) to the user
    `principal`."""

    principal: str
    kind: str
    resources: tuple[str, ...]
    operations: tuple[str, ...]

    def command(self, bootstrap: str, tool: str = "kafka-acls.sh") -> str:
        """The `kafka-acls.sh` line that grants it (a super user's `--command-config` to be
        added)."""
        operations = " ".join(f"--operation {op.title()}" for op in self.operations)
        resources = " ".join(f"--{self.kind} {name}" for name in self.resources)
        return (
            f"{tool} --bootstrap-server {bootstrap} --add --allow-principal "
            f"User:{self.principal} {operations} {resources}"
        )


def acl_table(kafka: KafkaSettings, registry_group: str) -> list[Grant]:
    """The grants on the environment's topics (`kafka.topics`) and the registry's consumer
    group."""
    t = kafka.topics
    return [
        # registry: reads events and commands in its group; the only writer of revocations and
        # dead letters
        Grant("registry", "topic", (t.events, t.commands), ("READ", "DESCRIBE")),
        Grant("registry", "group", (registry_group,), ("READ",)),
        # and reads revocations back, as gateways do, to write its own again under a key whose
        # last record would un-revoke a session (session_registry.service_layer.
        # revocation_guard)
        Grant("registry", "topic", (t.revocations,), ("READ", "DESCRIBE")),
        # (and the session.terminated events of admin terminations, through its outbox)
        Grant(
            "registry", "topic", (t.revocations, t.dead_letters, t.events), ("WRITE", "DESCRIBE")
        ),
        # admin-api: the only writer of commands and settings; sees that the other topics exist
        Grant("admin-api", "topic", (t.commands, t.settings), ("WRITE", "DESCRIBE")),
        Grant("admin-api", "topic", (t.events, t.revocations, t.dead_letters), ("DESCRIBE",)),
        # gateway (and the platform service it runs in): reads revocations and, as the login
        # service, the tenants' settings its new sessions take; writes events
        Grant("gateway", "topic", (t.revocations, t.settings), ("READ", "DESCRIBE")),
        Grant("gateway", "topic", (t.events,), ("WRITE", "DESCRIBE")),
    ]


async def grant_acls(kafka: KafkaSettings, registry_group: str) -> int:
    """Grant every ACL of the table (one already there stays as it is); raise the broker's
    error, naming the ACL, at the first it refuses. The number of ACLs sent."""
    admin = new_admin(kafka)
    await admin.start()
    sent = 0
    try:
        for row in acl_table(kafka, registry_group):
            for name in row.resources:
                for operation in row.operations:
                    what = f"{operation} on {row.kind} {name} to User:{row.principal}"
                    request = CreateAclsRequest(
                        _RESOURCE_TYPES[row.kind],
                        name,
                        _LITERAL,
                        f"User:{row.principal}",
                        "*",
                        _OPERATIONS[operation],
                        _ALLOW,
                    )
                    for code, message in (await _sent(admin, request)).creation_responses:
                        _raise_for(code, message, f"granting {what}")
                    sent += 1
    finally:
        await admin.close()
    return sent


async def remove_acls(kafka: KafkaSettings, registry_group: str) -> int:
    """Remove every ACL, of any principal, on the environment's topics and the registry's
    group (literal names: a prefixed or `*` pattern is not touched). The number removed."""
    resources = {
        (row.kind, name) for row in acl_table(kafka, registry_group) for name in row.resources
    }
    admin = new_admin(kafka)
    await admin.start()
    removed = 0
    try:
        for kind, name in sorted(resources):
            request = DeleteAclsRequest(
                _RESOURCE_TYPES[kind],
                name,
                _LITERAL,
                None,
                None,
                _OPERATIONS["ANY"],
                _ANY_PERMISSION,
            )
            for code, message, matching in (await _sent(admin, request)).filter_responses:
                _raise_for(code, message, f"removing the ACLs on {kind} {name}")
                for acl_code, acl_message, *_ in matching:
                    _raise_for(acl_code, acl_message, f"removing an ACL on {kind} {name}")
                removed += len(matching)
    finally:
        await admin.close()
    return removed


async def _sent(admin: AIOKafkaAdminClient, request: CreateAclsRequest | DeleteAclsRequest) -> Any:
    return await admin._send_request(request)


def _raise_for(code: int, message: str | None, doing: str) -> None:
    if code:
        raise for_code(code)(f"{doing}: {message or 'refused'}")
