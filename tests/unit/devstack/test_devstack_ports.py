"""`session-control dev` binds its ports itself, and says plainly when it cannot (a review,
stop 72). The real main job with a squatter on its ports: tests/integration/deploy/
test_devstack_signals.py."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from devstack.cli import Listeners, PortTaken, Stack, app, listening_socket
from session_contracts.settings import KafkaSettings


def _stack(tmp_path: Path, admin: int, demo: int, registry: int = 9180) -> Stack:
    return Stack(
        state_dir=tmp_path,
        database_url="sqlite+aiosqlite:///unused.db",
        tenant_id="demo",
        admin_port=admin,
        demo_port=demo,
        kafka=KafkaSettings(_env_file=None),
        registry_port=registry,
    )


def test_a_port_another_socket_listens_on_is_said_to_be_in_use() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        said = f"127.0.0.1:{port} is in use: stop what listens there, or choose another with "
        with pytest.raises(PortTaken, match=said + "--demo-port"):
            listening_socket(port, "--demo-port")


def test_a_port_that_cannot_be_bound_otherwise_is_not_said_to_be_in_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a port below 1024 without the right to it, say: "in use" sent the user after a process
    # that is not there
    def refused(self: socket.socket, address: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(socket.socket, "bind", refused)
    with pytest.raises(PortTaken, match=r"127.0.0.1:80 cannot be bound \(Permission denied\)"):
        listening_socket(80, "--admin-port")


@pytest.mark.parametrize(("admin", "demo", "registry"), [(8000, 8000, 9180), (8000, 8001, 8001)])
def test_two_services_on_one_port_are_refused_before_anything_is_bound(
    tmp_path: Path, admin: int, demo: int, registry: int
) -> None:
    # "stop what listens there" named devstack's own socket as the culprit
    with pytest.raises(PortTaken, match="must differ"):
        Listeners.bound(_stack(tmp_path, admin, demo, registry))


def test_a_port_out_of_range_is_a_usage_error_not_a_traceback(tmp_path: Path) -> None:
    # bind() raised OverflowError, which is no OSError
    result = CliRunner().invoke(app, ["dev", "--state-dir", str(tmp_path), "--admin-port", "70000"])
    assert result.exit_code == 2, result.output
    assert "--admin-port" in result.output and "Traceback" not in result.output
