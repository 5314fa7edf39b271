"""Create the contract's topics on the cluster named by the environment (KafkaSettings).

python deploy/create_topics.py           create every missing topic, then check the settings
                                         of those already there
python deploy/create_topics.py --check   only check: exit 1 if an existing topic's setting is
                                         not the contract's (each printed with the
                                         kafka-configs.sh line that changes it)
python deploy/create_topics.py --print   print the exact kafka-topics.sh lines instead, for
                                         a platform that creates topics itself
"""

from __future__ import annotations

import asyncio
import sys

from session_contracts.kafka_admin import config_drift, ensure_topics, topic_commands
from session_contracts.settings import KafkaSettings


async def main(create: bool) -> int:
    """Create every missing topic (unless only checking) and say which; then say which setting
    of an existing topic is not the contract's, and how to change it. Only checking, 1 if
    any is not."""
    settings = KafkaSettings()
    if create:
        created = await ensure_topics(settings)
        names = ", ".join(created) if created else "none (all present)"
        print(f"topics on {settings.kafka_bootstrap_servers}: created {names}")
    drift = await config_drift(settings)
    for found in drift:
        print(f"{found}; to change it:\n  {found.command(settings.kafka_bootstrap_servers)}")
    if not drift:
        print("every existing topic has the contract's settings")
    return 1 if drift and not create else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--print"]:
        kafka = KafkaSettings()
        for line in topic_commands(kafka, kafka.kafka_replication_factor or 3):
            print(line)
    elif sys.argv[1:] in ([], ["--check"]):
        sys.exit(asyncio.run(main(create=not sys.argv[1:])))
    else:
        sys.exit(f"usage: {sys.argv[0]} [--check | --print]")
