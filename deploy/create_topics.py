"""Create the contract's topics on the broker named by the environment (KafkaSettings)."""

from __future__ import annotations

import asyncio

from session_contracts.kafka_admin import ensure_topics
from session_contracts.settings import KafkaSettings


async def main() -> None:
    """Create every missing topic and say which ones were created."""
    settings = KafkaSettings()
    created = await ensure_topics(settings)
    names = ", ".join(created) if created else "none (all present)"
    print(f"topics on {settings.kafka_bootstrap_servers}: created {names}")


if __name__ == "__main__":
    asyncio.run(main())
