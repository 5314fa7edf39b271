"""Wait until the environment's Kafka user authenticates at every broker, each on its own.

python deploy/await_credential.py SECONDS

The user, its password (SESSIONS_KAFKA_SASL_PASSWORD_FILE) and the brokers
(KAFKA_BOOTSTRAP_SERVERS) are KafkaSettings', as the services read them. `deploy/kafka.sh cluster
rotate` runs it after setting a credential: a node takes it as the cluster's metadata reaches it,
and until then it refuses the new password (and takes the old). Exit 0 once every broker has
taken it; exit 1 after SECONDS, naming each broker that has not and why. Nothing printed holds
the password.
"""

from __future__ import annotations

import asyncio
import sys
import time

from session_contracts.kafka_clients import connection_failure
from session_contracts.settings import KafkaSettings


async def refusing(kafka: KafkaSettings, within: float) -> dict[str, str]:
    """Each broker of `kafka` that has not let its user in within `within` seconds, with why
    (empty: every one has)."""
    deadline = time.monotonic() + within
    waiting = [address.strip() for address in kafka.kafka_bootstrap_servers.split(",")]
    causes: dict[str, str] = {}
    while True:
        for address in list(waiting):
            # a node that accepts connections and never answers is given what is left, 1 s at least
            left = max(1_000, int((deadline - time.monotonic()) * 1000))
            alone = {"kafka_bootstrap_servers": address, "kafka_request_timeout_ms": left}
            failure = await connection_failure(kafka.model_copy(update=alone))
            if failure is None:
                waiting.remove(address)
                causes.pop(address, None)
            else:
                causes[address] = failure
        if not waiting or time.monotonic() >= deadline:
            return causes
        await asyncio.sleep(0.2)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.exit(f"usage: {sys.argv[0]} SECONDS")
    try:
        within = float(argv[0])
    except ValueError:
        sys.exit(f"{sys.argv[0]}: SECONDS must be a number, not {argv[0]!r}")
    kafka = KafkaSettings()
    causes = asyncio.run(refusing(kafka, within))
    for failure in causes.values():
        print(f"not taken within {within:g} s: {failure}", file=sys.stderr)
    return 1 if causes else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
