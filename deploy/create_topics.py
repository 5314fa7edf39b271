"""Create the contract's topics on the cluster named by the environment (KafkaSettings).

python deploy/create_topics.py           create every missing topic
python deploy/create_topics.py --print   print the exact kafka-topics.sh lines instead, for
                                         a platform that creates topics itself
"""

from __future__ import annotations

import asyncio
import sys

from session_contracts.kafka_admin import ensure_topics, topic_commands
from session_contracts.settings import KafkaSettings


async def main() -> None:
    """Create every missing topic and say which ones were created."""
    settings = KafkaSettings()
    created = await ensure_topics(settings)
    names = ", ".join(created) if created else "none (all present)"
    print(f"topics on {settings.kafka_bootstrap_servers}: created {names}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--print"]:
        kafka = KafkaSettings()
        for line in topic_commands(kafka, kafka.kafka_replication_factor or 3):
            print(line)
    else:
        asyncio.run(main())
