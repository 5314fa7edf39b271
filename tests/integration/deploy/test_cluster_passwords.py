"""The secured cluster's password files (`deploy/kafka.sh cluster`), read as the services read them.

A service reads its password file and strips the whitespace around it; the script sets the SCRAM
credential through a Java properties file (where a backslash is an escape) and writes the admin's
into a JAAS string (where a double quote ends it). A password those would read otherwise was set as
another password than the one the services send, and a NUL byte was dropped by bash alone. Such a
file is refused, naming it, before any node starts. Each case runs `cluster start` on a state
directory of the test's own, so the shared cluster's files are never touched.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from devstack.deploy_scripts import REPO
from private_services import free_port

REFUSED = [
    pytest.param(b"  two words 0123456789abcdef\n", id="a space inside"),
    pytest.param(b"back\\slash-0123456789abcdef", id="a backslash"),
    pytest.param(b'quote"inside-0123456789abcdef', id="a double quote"),
    pytest.param(b"comma,inside-0123456789abcdef", id="a comma"),
    pytest.param(b"0123456789abcde", id="fewer than 16"),
    pytest.param(b"nul\x00inside-0123456789abcdef", id="a NUL byte"),
    pytest.param(b"\n", id="empty"),
]


@pytest.mark.parametrize("written", REFUSED)
def test_a_password_the_services_would_read_otherwise_is_refused_naming_its_file(
    tmp_path: Path, written: bytes
) -> None:
    port = free_port()
    users = tmp_path / f"kafka-cluster-{port}" / "users"
    users.mkdir(parents=True)
    user = "gateway"  # any user's file: each is read before a node starts
    (users / f"{user}.password").write_bytes(written)
    env = {**os.environ, "SESSIONS_STATE_DIR": str(tmp_path), "KAFKA_CLUSTER_PORT": str(port)}

    def cluster(command: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["bash", str(REPO / "deploy" / "kafka.sh"), "cluster", command],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=300,
            check=False,
        )

    try:
        done = cluster("start")
    finally:
        cluster("stop")  # nodes a regression let start are not left running
    said = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode != 0, said
    assert f"{users / f'{user}.password'}: the password of {user}" in said
    assert written.strip() not in said.encode() or not written.strip()  # never echoed
    assert not list(tmp_path.glob(f"kafka-cluster-{port}/node*/kafka.pid"))  # no node started


@pytest.mark.parametrize("user", ["../admin", "admin api", "Admin", "", "admin\nregistry"])
def test_rotate_refuses_a_user_not_in_the_clusters_list_and_writes_nothing(
    tmp_path: Path, user: str
) -> None:
    """`rotate USER` takes one of the cluster's own users by name, nothing built from it: a
    path, a second name or an empty one is refused before anything is read or written."""
    done = subprocess.run(
        ["bash", str(REPO / "deploy" / "kafka.sh"), "cluster", "rotate", user],
        env={**os.environ, "SESSIONS_STATE_DIR": str(tmp_path / "state")},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )
    said = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode != 0, said
    assert ("no such cluster user" in said) or ("usage:" in said and not user), said
    assert not list((tmp_path / "state").rglob("*.password*"))


def test_a_trace_of_the_cluster_script_prints_no_password(tmp_path: Path) -> None:
    """`bash -x deploy/kafka.sh cluster start` traces every assignment, and the script holds
    each password in a variable while it checks it: the functions that do turn the trace off.
    The last user's file is refused, so the others are made and read, and no node starts."""
    port = free_port()
    users = tmp_path / f"kafka-cluster-{port}" / "users"
    users.mkdir(parents=True)
    (users / "outsider.password").write_text("too short\n")  # the last user read
    env = {**os.environ, "SESSIONS_STATE_DIR": str(tmp_path), "KAFKA_CLUSTER_PORT": str(port)}

    def cluster(*bash: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "bash",
                *bash,
                str(REPO / "deploy" / "kafka.sh"),
                "cluster",
                "start" if bash else "stop",
            ],
            env={**env, "PS4": "+ "},  # bash's own prefix of a traced line
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    try:
        done = cluster("-x")
    finally:
        cluster()  # nodes a regression let start are not left running
    said = done.stdout + done.stderr
    assert done.returncode != 0 and "the password of outsider" in said, said
    assert not list(tmp_path.glob(f"kafka-cluster-{port}/node*/kafka.pid"))
    assert "+ c_password gateway " in said  # traced, up to the functions holding passwords
    read = [users / f"{user}.password" for user in ("admin", "registry", "admin-api", "gateway")]
    for file in read:
        assert file.read_text().strip() not in said, f"{file.name} traced"


@pytest.mark.parametrize("wait", ["30s", "0", "1e3", "99999", "-5"])
def test_a_credential_wait_not_in_whole_seconds_is_refused_before_anything(
    tmp_path: Path, wait: str
) -> None:
    """`KAFKA_CLUSTER_CREDENTIAL_WAIT` is checked before a credential is set: read after, it
    failed the wait with the credential set and the file still on the old password."""
    for command in (["start"], ["rotate", "outsider"]):
        done = subprocess.run(
            ["bash", str(REPO / "deploy" / "kafka.sh"), "cluster", *command],
            env={
                **os.environ,
                "SESSIONS_STATE_DIR": str(tmp_path),
                "KAFKA_CLUSTER_PORT": str(free_port()),
                "KAFKA_CLUSTER_CREDENTIAL_WAIT": wait,
            },
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode != 0, done.stdout + done.stderr
        assert f"KAFKA_CLUSTER_CREDENTIAL_WAIT is whole seconds, 1 to 9999: '{wait}'" in done.stderr
        assert not list(tmp_path.iterdir())  # nothing made
