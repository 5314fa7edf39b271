"""The deploy scripts from Python (tests, benchmarks): run one, read the KEY=value it prints.

`deploy/kafka.sh start` ends with `KAFKA_BOOTSTRAP_SERVERS=...`, `deploy/postgres.sh start` with
`SESSIONS_TEST_POSTGRES_URL=...`; progress goes to stderr. Only a checkout has deploy/.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_script(
    script: str,
    command: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    args: Sequence[str] = (),
) -> str:
    """Run `bash deploy/<script> <command> [args...]`; return its stdout, or raise with both
    streams."""
    done = subprocess.run(
        ["bash", str(REPO / "deploy" / script), command, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"deploy/{script} {' '.join((command, *args))} exited {done.returncode}:\n"
            f"{done.stdout}\n{done.stderr}"
        )
    return done.stdout


def printed(output: str, key: str) -> str:
    """The value of the `KEY=value` line in a deploy script's output."""
    match = re.search(rf"^{re.escape(key)}=(\S+)$", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no {key}=... in the deploy script's output:\n{output}")
    return match.group(1)


def postgres_admin_url() -> str:
    """An asyncpg URL of a PostgreSQL role that may create databases:
    SESSIONS_TEST_POSTGRES_URL, else the local cluster's (`deploy/postgres.sh start`)."""
    explicit = os.environ.get("SESSIONS_TEST_POSTGRES_URL")
    if explicit:
        return explicit
    return printed(run_script("postgres.sh", "start"), "SESSIONS_TEST_POSTGRES_URL")
