"""The main job leaves nothing behind however it is stopped.

`deploy/run.sh` execs `python -m devstack dev`, so a signal to run.sh is a signal to devstack.
Each test starts the real devstack (free ports, its own state directory and topic prefix,
SQLite, three demo sessions) against the real broker, signals it, and checks that its three
children are gone and both ports can be bound again. SIGKILL cannot be handled: there the
kernel's parent-death signal (devstack.parent_death) stops the children.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import uuid
from pathlib import Path

import pytest

import fresh_topics
from devstack.cli import STOP_GRACE_SECONDS
from polling import until
from private_services import free_port
from session_contracts.topics import Topics

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

START_WITHIN = 180.0  # a bound on a hang: three services start on a shared 2-core machine
STOP_WITHIN = STOP_GRACE_SECONDS + 20.0  # the grace period, the SIGKILL, and the reaping


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), None if no such pid."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2 :].split()


def _children_of(parent: int) -> dict[int, str]:
    """Pid -> start time (which tells a reused pid apart) of every process whose parent is it."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        fields = _stat(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None and int(fields[1]) == parent:
            found[int(entry.name)] = fields[19]
    return found


def _running(pid: int, started: str) -> bool:
    # a zombie has released its ports and waits only for whoever reaps it
    fields = _stat(pid)
    return fields is not None and fields[19] == started and fields[0] != "Z"


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        # as uvicorn binds: a connection in TIME_WAIT does not keep the next start out
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _modes(state_dir: Path) -> tuple[set[str], dict[str, str]]:
    """Names of what is in `state_dir`, and the modes of those others may read or enter."""
    made = [state_dir, *state_dir.rglob("*")]
    loose = {str(p): oct(p.stat().st_mode & 0o777) for p in made if p.stat().st_mode & 0o077}
    return {p.name for p in made}, loose


async def _read_until_running(devstack: asyncio.subprocess.Process) -> str:
    assert devstack.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(START_WITHIN):
        while not any("Admin page" in line for line in lines):
            line = (await devstack.stdout.readline()).decode()
            if not line:
                raise AssertionError("devstack ended before it was running:\n" + "".join(lines))
            lines.append(line)
    return "".join(lines)


async def _start_devstack(
    kafka_bootstrap: str,
    state_dir: Path,
    ports: tuple[int, int],
    *wrapper: str,
    topics: Topics,
) -> asyncio.subprocess.Process:
    environment = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SESSIONS_TOPIC_PREFIX": topics.prefix,
        "SESSIONS_TOPIC_PARTITIONS": str(topics.partitions),
    }
    return await asyncio.create_subprocess_exec(
        *wrapper,
        sys.executable,
        "-m",
        "devstack",
        "dev",
        "--state-dir",
        str(state_dir),
        "--admin-port",
        str(ports[0]),
        "--demo-port",
        str(ports[1]),
        "--registry-port",
        str(free_port()),
        "--demo-sessions",
        "3",
        env=environment,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def _answer_to_a_big_head(port: int) -> bytes:
    """The status line answering a request whose one header passes 64 KiB (and does not end:
    the server answers before it has it all)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-padding: " + b"a" * 70_000)
        await writer.drain()
        async with asyncio.timeout(10):
            return (await reader.readline()).rstrip()
    finally:
        writer.close()


async def _stop_and_check(
    devstack: asyncio.subprocess.Process,
    state_dir: Path,
    ports: tuple[int, int],
    signals: list[signal.Signals],
    ends_by: signal.Signals,
) -> str:
    """Stop devstack by `signals` and check what it leaves; what it printed until running."""
    children: dict[int, str] = {}
    try:
        banner = await _read_until_running(devstack)
        children = _children_of(devstack.pid)
        assert len(children) == 3, f"registry, admin API, demo service: {children}"
        assert not any(_port_free(port) for port in ports), "the stack does not hold its ports"
        for port in ports:  # the admin API and the demo service bound a request's head
            assert (
                await _answer_to_a_big_head(port) == b"HTTP/1.1 431 Request Header Fields Too Large"
            )

        for signum in signals:
            devstack.send_signal(signum)

        async def all_stopped() -> bool:
            return not any(_running(pid, started) for pid, started in children.items()) and all(
                _port_free(port) for port in ports
            )

        await until(all_stopped, STOP_WITHIN, f"children and ports released after {signals}")
        async with asyncio.timeout(STOP_WITHIN):
            assert await devstack.wait() == -ends_by, banner
    finally:
        if devstack.returncode is None:
            devstack.kill()
            await devstack.wait()
        for pid, started in children.items():
            if _running(pid, started):  # a failed run must not leave them to the next test
                os.kill(pid, signal.SIGKILL)
    # what devstack made under a fresh state directory is the user's alone
    names, loose = _modes(state_dir)
    assert names >= {"dev-jwt-secret", "logs", "registry.log", "sessions.db"}
    assert loose == {}
    return banner


@pytest.mark.parametrize(
    "signum",
    [signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGKILL],
    ids=lambda s: s.name,
)
async def test_a_signal_to_devstack_stops_every_child_and_frees_the_ports(
    signum: signal.Signals, kafka_bootstrap: str, tmp_path: Path, unmade_topics: Topics
) -> None:
    if signal.getsignal(signum) is signal.SIG_IGN:
        # inherited as ignored (a background job, nohup): devstack rightly keeps ignoring it
        pytest.skip(f"{signum.name} is ignored in this test process and so in devstack")
    ports = (free_port(), free_port())
    devstack = await _start_devstack(
        kafka_bootstrap, tmp_path / "state", ports, topics=unmade_topics
    )
    # devstack ends by the signal it stopped on, as a process the signal had ended would
    await _stop_and_check(devstack, tmp_path / "state", ports, [signum], ends_by=signum)


async def test_under_nohup_a_hangup_is_ignored_and_sigterm_still_stops_everything(
    kafka_bootstrap: str, tmp_path: Path, unmade_topics: Topics
) -> None:
    ports = (free_port(), free_port())
    state = tmp_path / "state"
    devstack = await _start_devstack(kafka_bootstrap, state, ports, "nohup", topics=unmade_topics)
    # SIGHUP goes first (and, were both pending at once, the kernel delivers the lower number
    # first): had devstack handled it, it would have ended by SIGHUP
    signals = [signal.SIGHUP, signal.SIGTERM]
    await _stop_and_check(devstack, state, ports, signals, ends_by=signal.SIGTERM)


async def test_on_topics_made_before_the_broker_dated_events_devstack_says_how_to_change_them(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topics = Topics(prefix=f"t{uuid.uuid4().hex[:12]}.", partitions=1)
    made_before = {topics.events: {"message.timestamp.type": "CreateTime"}}
    await fresh_topics.create(kafka_bootstrap, topics, made_before)
    try:
        ports = (free_port(), free_port())
        state = tmp_path / "state"
        devstack = await _start_devstack(kafka_bootstrap, state, ports, topics=topics)
        banner = await _stop_and_check(devstack, state, ports, [signal.SIGTERM], signal.SIGTERM)
    finally:
        await fresh_topics.delete(kafka_bootstrap, topics)
    assert (
        f"warning: {topics.events}: message.timestamp.type is CreateTime, the contract's is "
        "LogAppendTime; to change it:\n  bash deploy/kafka.sh configs --bootstrap-server "
        f"{kafka_bootstrap} --alter --entity-type topics --entity-name {topics.events} "
        "--add-config message.timestamp.type=LogAppendTime\n"
    ) in banner
    assert banner.count("warning:") == 1, banner


@pytest.mark.parametrize("held", ["admin", "demo"])
async def test_a_port_another_process_listens_on_is_refused_before_any_token_is_printed(
    held: str, kafka_bootstrap: str, tmp_path: Path, unmade_topics: Topics
) -> None:
    # a squatter answering 200 to anything: had a child bound the port itself, the squatter
    # would have answered the readiness check, and the printed link (its `#token=`) would
    # have opened the squatter's page
    asked: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        asked.append(await reader.readline())
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    squatter = await asyncio.start_server(answer, "127.0.0.1", 0)
    taken = squatter.sockets[0].getsockname()[1]
    ports = (taken, free_port()) if held == "admin" else (free_port(), taken)
    async with squatter:
        devstack = await _start_devstack(
            kafka_bootstrap, tmp_path / "state", ports, topics=unmade_topics
        )
        try:
            async with asyncio.timeout(START_WITHIN):
                printed, _ = await devstack.communicate()
        finally:
            if devstack.returncode is None:
                devstack.kill()
                await devstack.wait()
    said = printed.decode()
    assert devstack.returncode == 2, said
    assert f"127.0.0.1:{taken} is in use" in said and f"--{held}-port" in said, said
    assert "Admin page" not in said and "token" not in said.lower(), said
    assert asked == [], "the squatter was asked"
