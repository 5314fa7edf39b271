"""Grant each service principal the ACLs of docs/security.md on one environment's topics (the
topic prefix `SESSIONS_TOPIC_PREFIX`), on the cluster named by the environment (KafkaSettings:
a super user's connection). The table is `session_contracts.kafka_acls.acl_table`.

python deploy/create_acls.py           grant them (one already there stays as it is)
python deploy/create_acls.py --print   print the exact kafka-acls.sh lines instead, for a
                                       platform that manages its ACLs itself
python deploy/create_acls.py --remove  remove every ACL on the environment's topics and the
                                       registry's group (an environment taken down)
"""

from __future__ import annotations

import asyncio
import sys

from session_contracts.kafka_acls import acl_table, grant_acls, remove_acls
from session_contracts.settings import KafkaSettings
from session_registry.settings import DEFAULT_CONSUMER_GROUP


def main(argv: list[str]) -> int | str:
    kafka = KafkaSettings()
    group = kafka.group_id(DEFAULT_CONSUMER_GROUP)
    where = f"ACLs on {kafka.kafka_bootstrap_servers}, topic prefix '{kafka.topic_prefix}'"
    if argv == ["--print"]:
        for row in acl_table(kafka, group):
            print(row.command(kafka.kafka_bootstrap_servers))
    elif argv == []:
        print(f"{where}: {asyncio.run(grant_acls(kafka, group))} granted")
    elif argv == ["--remove"]:
        print(f"{where}: {asyncio.run(remove_acls(kafka, group))} removed")
    else:
        return f"usage: {sys.argv[0]} [--print | --remove]"
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
