"""Topic names (prefixable per environment) and the settings each topic is created with."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field

DAY_MS = 86_400_000
COMMANDS_RETENTION_DAYS = 7
"""How long `sessions.commands` keeps a command (the registry's audit retention outlives it)."""


class Topics(BaseModel):
    """The topics of the contract; `prefix` separates environments sharing a cluster."""

    prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")
    partitions: int = Field(default=6, ge=1, le=1000)

    @property
    def events(self) -> str:
        return f"{self.prefix}sessions.events"

    @property
    def commands(self) -> str:
        return f"{self.prefix}sessions.commands"

    @property
    def revocations(self) -> str:
        return f"{self.prefix}sessions.revocations"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}sessions.events.dlq"

    @property
    def settings(self) -> str:
        """Compacted, keyed by tenant id: the latest `session_settings.changed` of each tenant."""
        return f"{self.prefix}sessions.settings"

    def specs(self) -> list[TopicSpec]:
        """How each topic is created: retention per the contract, events dated by the broker,
        revocations compacted."""
        return [
            TopicSpec(
                self.events,
                self.partitions,
                # the broker dates each record: a creation is never taken as later than this
                # (session_registry.service_layer.ingest.created_by_append_time)
                {"retention.ms": "-1", "message.timestamp.type": "LogAppendTime"},
            ),
            TopicSpec(
                self.commands,
                self.partitions,
                {"retention.ms": str(COMMANDS_RETENTION_DAYS * DAY_MS)},
            ),
            TopicSpec(
                self.revocations,
                self.partitions,
                {
                    "cleanup.policy": "compact",
                    "min.cleanable.dirty.ratio": "0.1",
                    "delete.retention.ms": str(DAY_MS),
                    "segment.ms": str(DAY_MS),
                },
            ),
            TopicSpec(self.dead_letters, 1, {"retention.ms": "-1"}),
            TopicSpec(
                self.settings,
                self.partitions,
                {"cleanup.policy": "compact", "delete.retention.ms": str(DAY_MS)},
            ),
        ]


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]
