"""The brokers' class-data-sharing archive (deploy/kafka.sh): made once, used only whole.

A truncated archive crashes every JVM that maps it (SIGBUS in HotSpot), and a broker SIGKILLed
while it writes the archive at exit leaves one cut short. So what a broker wrote becomes the
archive only once a trial JVM has mapped it and checked the checksum of every region.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path

import pytest

from devstack.deploy_scripts import run_script
from polling import until
from private_services import PrivateKafka

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _cache_without_archive(tmp_path: Path) -> tuple[Path, Path]:
    """XDG_CACHE_HOME holding the fetched jars (a link) and no archive; its Kafka folder."""
    libs = Path(run_script("kafka.sh", "libs", dict(os.environ)).strip().splitlines()[-1])
    kafka = tmp_path / "cache" / "session-control" / libs.parent.name
    kafka.mkdir(parents=True)
    (kafka / "libs").symlink_to(libs)
    shutil.copy(libs.parent / "fetched.sha256", kafka / "fetched.sha256")
    return tmp_path / "cache", kafka


def _state(broker: PrivateKafka) -> Path:
    return broker.state_dir / f"kafka-{broker.port}"


def _command_line(broker: PrivateKafka) -> str:
    pid = (_state(broker) / "kafka.pid").read_text().strip()
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _gone(pid: int) -> bool:
    """The process has exited (a zombie until its parent, init, reaps it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _cut_short(pending: Path) -> None:
    whole = pending.read_bytes()
    assert len(whole) > 1_000_000
    pending.write_bytes(whole[: len(whole) // 2])


async def test_an_archive_cut_short_is_discarded_and_a_whole_one_becomes_the_archive(
    tmp_path: Path,
) -> None:
    cache, kafka = _cache_without_archive(tmp_path)
    crash_reports = set(Path.cwd().glob("hs_err_pid*.log"))
    broker = PrivateKafka(tmp_path / "state", env={"XDG_CACHE_HOME": str(cache)})

    # the first broker writes an archive as it exits; it is cut short before anyone judges it
    await broker.start()
    pending = Path((_state(broker) / "cds.pending").read_text().strip())
    assert f"-XX:ArchiveClassesAtExit={pending}" in _command_line(broker)
    pid = int((_state(broker) / "kafka.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    await until(lambda: asyncio.to_thread(_gone, pid), within=60, what="the broker's exit")
    await asyncio.to_thread(_cut_short, pending)
    await broker.stop()  # the broker is gone: stop judges what it left
    assert list(kafka.glob("cds-*")) == []
    assert not (_state(broker) / "cds.pending").exists()

    # the next broker writes it again, whole: a graceful stop makes it the archive (the one in
    # the real cache is what every other broker of the suite maps)
    await broker.start()
    assert "-XX:ArchiveClassesAtExit=" in _command_line(broker)
    await broker.stop()
    (archive,) = kafka.glob("cds-*")
    assert archive.name.endswith(".jsa") and archive.stat().st_size > 1_000_000
    # the trial JVM that crashed on the archive cut short left no crash report behind
    assert set(Path.cwd().glob("hs_err_pid*.log")) <= crash_reports
