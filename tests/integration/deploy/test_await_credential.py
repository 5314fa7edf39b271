"""`deploy/await_credential.py`: what `deploy/kafka.sh cluster start` and `rotate` wait on after
setting a credential. Each broker is asked on its own, and the wait is bounded as a whole: a
broker that accepts a connection and never answers is named when the time is up, as is one that
refuses connections, and one that lets the user in is not."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from devstack.deploy_scripts import REPO
from private_services import free_port

pytestmark = pytest.mark.kafka

SCRIPT = str(REPO / "deploy" / "await_credential.py")


@pytest.fixture
def silent() -> Iterator[str]:
    """An address whose listener takes connections and never answers."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield f"127.0.0.1:{server.getsockname()[1]}"


def await_credential(brokers: str, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("SESSIONS_KAFKA_")
    }
    return subprocess.run(
        [sys.executable, SCRIPT, *args],
        env={**environment, "KAFKA_BOOTSTRAP_SERVERS": brokers},
        capture_output=True,
        text=True,
        timeout=120,  # a hang, not a measure
        check=False,
    )


def test_a_broker_that_never_answers_or_refuses_is_named_and_one_that_answers_is_not(
    kafka_bootstrap: str, silent: str
) -> None:
    closed = f"127.0.0.1:{free_port()}"
    done = await_credential(f"{kafka_bootstrap},{silent},{closed}", "2")
    assert done.returncode == 1, done.stderr
    said = done.stderr.splitlines()
    assert f"not taken within 2 s: {silent}: no answer" in said
    assert [line for line in said if line.startswith(f"not taken within 2 s: {closed}: ")]
    assert len(said) == 2 and kafka_bootstrap not in done.stderr

    assert await_credential(kafka_bootstrap, "2").returncode == 0


@pytest.mark.parametrize(
    ("brokers", "seconds", "said"),
    [
        ("127.0.0.1:1,", "2", "an empty broker address"),
        ("127.0.0.1:1", "nan", "SECONDS must be a number above 0, not 'nan'"),
        ("127.0.0.1:1", "0", "SECONDS must be a number above 0"),
        ("127.0.0.1:1", "1e999", "SECONDS must be a number above 0"),
    ],
)
def test_what_it_cannot_wait_on_is_refused_in_one_line(
    brokers: str, seconds: str, said: str
) -> None:
    done = await_credential(brokers, seconds)
    assert done.returncode == 1 and said in done.stderr and "Traceback" not in done.stderr
