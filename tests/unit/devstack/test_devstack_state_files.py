"""What devstack writes is private: the development secret, its directories, its banner."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import cli as devstack_cli
from devstack.cli import Stack, banner, dev_secret, keep_private, private_dir, untrusted
from session_contracts.settings import KafkaSettings


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """Umask 0, so only the modes devstack asks for explicitly can make anything private."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("permissive_umask")
def test_a_new_secret_is_0600_in_new_0700_directories_and_reused_afterwards(
    tmp_path: Path,
) -> None:
    state = tmp_path / "fresh" / "state"
    secret = dev_secret(state)
    assert len(secret) >= 48
    assert _mode(state / "dev-jwt-secret") == 0o600
    assert _mode(state) == 0o700 and _mode(tmp_path / "fresh") == 0o700
    assert os.listdir(state) == ["dev-jwt-secret"]  # no temporary file left behind
    assert dev_secret(state) == secret


def test_an_existing_secret_is_reused_and_made_private(tmp_path: Path) -> None:
    (tmp_path / "dev-jwt-secret").write_text("kept-from-an-earlier-run\n")
    (tmp_path / "dev-jwt-secret").chmod(0o644)
    assert dev_secret(tmp_path) == "kept-from-an-earlier-run"
    assert _mode(tmp_path / "dev-jwt-secret") == 0o600


@pytest.mark.usefixtures("permissive_umask")
def test_an_existing_directory_keeps_its_mode(tmp_path: Path) -> None:
    # .state/ is shared with deploy/postgres.sh, whose `postgres` user must still traverse it
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    private_dir(shared / "logs")
    assert _mode(shared) == 0o755 and _mode(shared / "logs") == 0o700


def test_a_state_directory_others_can_write_or_own_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a `.state` made beforehand in a shared directory (run from /tmp): its owner, or anyone
    # who can write it, could swap the read model or race the secret (a review, stop 71)
    state = tmp_path / ".state"
    state.mkdir(mode=0o700)
    assert untrusted(state) is None
    state.chmod(0o711)  # traversable, as deploy/postgres.sh's cluster needs: fine
    assert untrusted(state) is None
    state.chmod(0o777)
    assert "writable by every user (mode 777)" in (untrusted(state) or "")
    # writable by its group: taken when that is the user's own private group (a umask of 002),
    # refused when others share it
    state.chmod(0o775)
    monkeypatch.setattr(devstack_cli, "_private_group", lambda gid: True)
    assert untrusted(state) is None
    monkeypatch.setattr(devstack_cli, "_private_group", lambda gid: False)
    assert "writable by its group, which others share (mode 775)" in (untrusted(state) or "")
    state.chmod(0o700)
    monkeypatch.setattr(os, "getuid", lambda: state.stat().st_uid + 1)
    assert "belongs to another user" in (untrusted(state) or "")


@pytest.mark.usefixtures("permissive_umask")
def test_an_existing_sqlite_read_model_and_its_journals_are_made_private(tmp_path: Path) -> None:
    # one `session-registry migrate` made with a laxer umask stayed readable by every user
    database = tmp_path / "sessions.db"
    for name in ("sessions.db", "sessions.db-wal", "sessions.db-shm"):
        (tmp_path / name).write_bytes(b"")
        (tmp_path / name).chmod(0o644)
    keep_private(database)
    assert {p.name: _mode(p) for p in tmp_path.iterdir()} == {
        "sessions.db": 0o600,
        "sessions.db-wal": 0o600,
        "sessions.db-shm": 0o600,
    }
    keep_private(tmp_path / "absent.db")  # nothing there: nothing to do


def test_the_banner_shows_the_read_model_without_its_password(tmp_path: Path) -> None:
    stack = Stack(
        state_dir=tmp_path,
        database_url="postgresql+asyncpg://sessions:s3cr%65t-pw@127.0.0.1:55432/sessions",
        tenant_id="demo",
        admin_port=8000,
        demo_port=8001,
        kafka=KafkaSettings(_env_file=None),
    )
    text = banner(stack, "a-token", tmp_path / "logs")
    assert "postgresql+asyncpg://sessions:***@127.0.0.1:55432/sessions" in text
    assert "s3cr" not in text and "secret-pw" not in text
    assert "http://127.0.0.1:8000/admin#token=a-token" in text
