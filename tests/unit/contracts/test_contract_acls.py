"""`deploy/create_acls.py --print`: the `kafka-acls.sh` lines a platform that grants its ACLs
itself runs are docs/security.md's table, no more (the cluster tests grant the same table and
list what the brokers hold)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from cluster_support import documented_acls
from devstack.deploy_scripts import REPO

LINE = re.compile(
    r"^kafka-acls\.sh --bootstrap-server 127\.0\.0\.1:9092 --add --allow-principal (User:\S+)"
    r"((?: --operation \w+)+)((?: --(?:topic|group) \S+)+)$"
)


def _printed(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SESSIONS_", "KAFKA_"))}
    return subprocess.run(
        [sys.executable, str(REPO / "deploy" / "create_acls.py"), *args],
        env={**env, "SESSIONS_TOPIC_PREFIX": "prod."},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_printed_lines_grant_the_documented_table() -> None:
    run = _printed("--print")
    assert run.returncode == 0, run.stderr
    granted: dict[tuple[str, str, str], set[tuple[str, str, str]]] = {}
    for line in run.stdout.splitlines():
        found = LINE.match(line)
        assert found is not None, line
        principal, operations, resources = found.groups()
        for kind, name in re.findall(r"--(topic|group) (\S+)", resources):
            held = granted.setdefault((kind.upper(), name, "LITERAL"), set())
            for operation in operations.split()[1::2]:
                held.add((principal, operation.upper(), "ALLOW"))
    assert granted == documented_acls("prod.")


def test_an_unknown_argument_is_refused_naming_the_usage() -> None:
    run = _printed("--grant-all")
    assert run.returncode == 1
    assert "usage:" in run.stderr and "--print" in run.stderr
    assert run.stdout == ""
