"""Who is in a Kafka consumer group right now: how the CLI knows a registry is running.

Every registry of a group is a member of its Kafka consumer group while it runs (it
subscribes with `group_id = SESSIONS_CONSUMER_GROUP`); a stopped one leaves the group, and a
killed one (or a static member, `SESSIONS_GROUP_INSTANCE_ID`, which does not leave on stop)
stays a member until its session times out (`SESSIONS_SESSION_TIMEOUT_MS`). The group
coordinator is the one place every instance reports to, on any host, so asking it needs no
table, lease or heartbeat of our own.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.errors import for_code

from session_contracts.kafka_clients import new_admin
from session_contracts.settings import KafkaSettings


@dataclass(frozen=True)
class GroupMember:
    """One member of a consumer group: its ids and where it connects from."""

    member_id: str
    client_id: str
    client_host: str


async def group_members(connection: KafkaSettings, group: str) -> list[GroupMember]:
    """The members of consumer group `group` (none when it is empty or unknown)."""
    admin = new_admin(connection)
    await admin.start()
    try:
        responses = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    members: list[GroupMember] = []
    for response in responses:
        for described in response.to_object()["groups"]:
            if described["group"] != group:
                continue
            if described["error_code"]:
                raise for_code(described["error_code"])(f"describing consumer group {group}")
            members.extend(
                GroupMember(m["member_id"], m.get("client_id", ""), m.get("client_host", ""))
                for m in described["members"]
            )
    return members
