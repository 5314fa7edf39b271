"""Wait until the environment's Kafka user authenticates at every broker, each on its own.

python deploy/await_credential.py SECONDS

The user, its password (SESSIONS_KAFKA_SASL_PASSWORD_FILE) and the brokers
(KAFKA_BOOTSTRAP_SERVERS) are KafkaSettings', as the services read them. `deploy/kafka.sh cluster
start` and `rotate` run it after setting a credential: a node takes it as the cluster's metadata
reaches it, and until then it refuses the new password (and takes the old). Exit 0 once every
broker has taken it; exit 1 after SECONDS at most, naming each broker that has not and why.
Nothing printed holds the password.
"""

from __future__ import annotations

import asyncio
import math
import sys

from pydantic import ValidationError

from session_contracts.kafka_clients import connection_failure
from session_contracts.settings import KafkaSettings


async def refusing(kafka: KafkaSettings, within: float) -> dict[str, str]:
    """Each broker of `kafka` that has not let its user in within `within` seconds, with why
    (empty: every one has). A broker that accepts a connection and never answers is asked no
    longer than what is left of `within` (aiokafka's own bound is per step of the handshake)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    waiting = [address.strip() for address in kafka.kafka_bootstrap_servers.split(",")]
    causes: dict[str, str] = {}
    while True:
        for address in list(waiting):
            alone = kafka.model_copy(update={"kafka_bootstrap_servers": address})
            try:
                async with asyncio.timeout_at(deadline):
                    failure = await connection_failure(alone)
            except TimeoutError:
                failure = f"{address}: no answer"
            if failure is None:
                waiting.remove(address)
                causes.pop(address, None)
            else:
                causes[address] = failure
        if not waiting or loop.time() >= deadline:
            return causes
        await asyncio.sleep(0.2)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.exit(f"usage: {sys.argv[0]} SECONDS")
    try:
        within = float(argv[0])
    except ValueError:
        within = math.nan
    if not (math.isfinite(within) and within > 0):
        sys.exit(f"{sys.argv[0]}: SECONDS must be a number above 0, not {argv[0]!r}")
    try:
        kafka = KafkaSettings()
    except ValidationError as exc:  # the values are hidden (hide_input_in_errors)
        sys.exit(f"{sys.argv[0]}: the Kafka settings are not valid: {exc}")
    if not all(address.strip() for address in kafka.kafka_bootstrap_servers.split(",")):
        sys.exit(f"{sys.argv[0]}: an empty broker address in KAFKA_BOOTSTRAP_SERVERS")
    causes = asyncio.run(refusing(kafka, within))
    for failure in causes.values():
        print(f"not taken within {within:g} s: {failure}", file=sys.stderr)
    return 1 if causes else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
