"""`session-control dev`: the whole system on local defaults, as real processes.

Kafka must already run (`deploy/run.sh` starts it). This creates the topics, brings the
SQLite read model to the current schema, starts the registry, the admin API and the demo
platform service (behind the auth gateway) as child processes, publishes demo sessions
through the real event path, and prints the admin URL with a development admin token. It binds
the admin API's and the demo service's ports itself, first, and hands the sockets over, so the
printed link is answered by the stack or not printed at all.

SIGTERM, SIGINT (Ctrl-C) and SIGHUP (unless ignored from the start, as under `nohup`) stop it
the same way: every child gets SIGTERM, what is left after `STOP_GRACE_SECONDS` gets SIGKILL,
then devstack ends by the signal it received. If devstack itself is killed outright (SIGKILL),
the kernel sends each child SIGTERM (`devstack.parent_death`). What it creates under the state
directory is private to the user (directories 0700, files 0600).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import grp
import os
import pwd
import secrets
import signal
import socket
import sys
import tempfile
import time
from asyncio.subprocess import Process
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import httpx
import typer

from admin_api.auth import issue_dev_token
from admin_api.settings import AdminApiSettings
from devstack.demo_traffic import run_demo_traffic
from read_model.database import upgrade_schema
from session_contracts.http_limits import HEAD_LIMITED_HTTP
from session_contracts.kafka_admin import config_drift, ensure_topics
from session_contracts.publisher import SessionEventPublisher
from session_contracts.redaction import redact_url
from session_contracts.settings import KafkaSettings

app = typer.Typer(add_completion=False, help="Session Control on this machine.")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
STOP_GRACE_SECONDS = 10.0
"""How long the children get to stop after SIGTERM before they are killed."""


@dataclass(frozen=True)
class Stack:
    """Where the pieces live and how they are reached."""

    state_dir: Path
    database_url: str
    tenant_id: str
    admin_port: int
    demo_port: int
    kafka: KafkaSettings
    registry_port: int = 9180
    """The registry's operations port (/healthz, /readyz, /metrics)."""

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def demo_url(self) -> str:
        return f"http://127.0.0.1:{self.demo_port}"

    def environment(self, jwt_secret: str) -> dict[str, str]:
        """The environment every child process is configured by (settings classes read it)."""
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.kafka_bootstrap_servers,
            "SESSIONS_TOPIC_PREFIX": self.kafka.topic_prefix,
            "SESSIONS_DATABASE_URL": self.database_url,
            "SESSIONS_ENVIRONMENT": "development",
            "SESSIONS_JWT_SECRET": jwt_secret,
            "SESSIONS_GATEWAY_TENANT_ID": self.tenant_id,
            "SESSIONS_GATEWAY_SIGN_IN_URL": "/signin",
            "SESSIONS_REGISTRY_HTTP_PORT": str(self.registry_port),
        }


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) readable by its owner only; leave existing ones be."""
    # an existing directory may be shared: deploy/postgres.sh's cluster lives under .state/ and
    # its `postgres` user must still traverse it, so only directories made here are 0700
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for made in missing:
        made.chmod(0o700)


def untrusted(state_dir: Path) -> str | None:
    """Why `state_dir` cannot hold the stack's secrets and read model, or None: owned by another
    user, writable by every user, or writable by a group other than the user's own private
    group (a `.state` made beforehand in a shared directory such as /tmp, or in a checkout
    shared by a group, whose members could swap the files in it: reviews, stop 71).
    Traversable by others is fine: deploy/postgres.sh's cluster lives under .state, and its
    `postgres` user must pass; so is writable by the user's private group (a umask of 002).
    Only the folder itself is checked, not its parents."""
    status = state_dir.stat()
    if status.st_uid != os.getuid():
        return f"{state_dir} belongs to another user (uid {status.st_uid}): choose --state-dir"
    mode = status.st_mode & 0o777
    if mode & 0o002:
        return f"{state_dir} is writable by every user (mode {mode:o}): chmod o-w it"
    if mode & 0o020 and not _private_group(status.st_gid):
        return (
            f"{state_dir} is writable by its group, which others share (mode {mode:o}): "
            "chmod g-w it"
        )
    return None


def _private_group(gid: int) -> bool:
    """Whether `gid` is the user's own group: named as the user, no other member listed."""
    try:
        group = grp.getgrgid(gid)
        user = pwd.getpwuid(os.getuid())
    except KeyError:  # a group or user without a name
        return False
    return group.gr_name == user.pw_name and not set(group.gr_mem) - {user.pw_name}


def keep_private(database: Path) -> None:
    """The SQLite read model and its journal files readable by their owner only: one a command
    made before with a laxer umask (`session-registry migrate`) was left readable by others."""
    for path in (
        database,
        database.with_name(f"{database.name}-wal"),
        database.with_name(f"{database.name}-shm"),
    ):
        with contextlib.suppress(FileNotFoundError):
            _owner_only(path)


def _owner_only(path: Path) -> None:
    """`path` made 0600 if others may read it; said, not a traceback, when it is another
    user's (a `sudo ... migrate`) and so not this one's to change."""
    if path.stat().st_mode & 0o077:
        try:
            path.chmod(0o600)
        except PermissionError:
            typer.echo(
                f"session-control dev: {path} is readable by more than its owner, and not "
                "yours to change: chmod 600 it",
                err=True,
            )


def dev_secret(state_dir: Path, name: str = "dev-jwt-secret") -> str:
    """A development secret kept in `state_dir` under `name` (the JWT secret; the registry's
    record signing key): created once (mode 0600), then reused."""
    # kept across restarts so a printed token stays valid while the stack is restarted, and
    # the registry's signed records stay verifiable
    path = state_dir / name
    if not path.exists():
        private_dir(state_dir)
        # written whole into a file that is 0600 from its creation (mkstemp), then linked into
        # place: never readable by others, never seen half-written, and if another start won
        # the race its secret is the one kept
        fd, temporary = tempfile.mkstemp(dir=state_dir, prefix=f".{name}.")
        try:
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_urlsafe(48))
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    else:
        _owner_only(path)  # from an older devstack, which created it readable, then chmod-ed
    return path.read_text().strip()


class PortTaken(Exception):
    """A port the stack serves on is held by another process."""


def listening_socket(port: int, option: str) -> socket.socket:
    """A socket bound to 127.0.0.1:`port` and listening, for a uvicorn child to serve on
    (`--fd`): devstack holds the port before it prints a link with a token, so no other
    process can answer that link. Had the child bound it, a process already listening there
    would have answered the readiness check and the printed link (a review, stop 71: the
    admin page reads the token from the link). `option` is the flag that moves the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # as uvicorn binds: a connection in TIME_WAIT does not keep the next start out, and a
        # process listening on the port does (Linux refuses a second listener either way)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # inherited by the connections accepted on it (Linux), as uvicorn sets on each
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            cause = "is in use: stop what listens there, or choose another"
        else:  # a port below 1024 without the right to it, say
            cause = f"cannot be bound ({exc.strerror}): choose another"
        raise PortTaken(f"127.0.0.1:{port} {cause} with {option}") from None
    return sock


def _open_log(path: Path) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)  # a log an older devstack left readable by others
    return fd


async def _spawn(
    name: str,
    args: list[str],
    env: dict[str, str],
    logs: Path,
    serving_on: socket.socket | None = None,
) -> Process:
    """Start `python ARGS` as `name`, its output into its log; `serving_on` is passed to it
    as the same descriptor number (uvicorn's `--fd`)."""
    log = _open_log(logs / f"{name}.log")
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            # the wrapper has the kernel SIGTERM the child should devstack die without stopping it
            *["-m", "devstack.parent_death", str(os.getpid())],
            *args,
            env=env,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            # Ctrl-C in the terminal reaches devstack only, which stops the children in order
            start_new_session=True,
            pass_fds=() if serving_on is None else (serving_on.fileno(),),
        )
    finally:
        os.close(log)


async def wait_http_ok(
    url: str, what: str, exited: Callable[[], str | None], within: float = 60.0
) -> None:
    """Poll `url` until it answers 200; raise naming `what` if `exited()` reports a dead child
    process (its description) or after `within` seconds."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if (dead := exited()) is not None:
                raise RuntimeError(f"{what}: {dead} exited early; see the logs")
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{what} did not become ready at {url} within {within:.0f} s")


def _first_exited(children: list[Process]) -> str | None:
    return next((f"process {c.pid}" for c in children if c.returncode is not None), None)


@dataclass(frozen=True)
class Listeners:
    """The sockets devstack bound for the admin API and the demo service to serve on."""

    admin: socket.socket
    demo: socket.socket

    @classmethod
    def bound(cls, stack: Stack) -> Listeners:
        """Both ports held, or `PortTaken` naming the first held by another process."""
        ports = [stack.admin_port, stack.demo_port, stack.registry_port]
        if len(set(ports)) < len(ports):
            raise PortTaken(
                f"--admin-port {ports[0]}, --demo-port {ports[1]} and --registry-port "
                f"{ports[2]} must differ"
            )
        admin = listening_socket(stack.admin_port, "--admin-port")
        try:
            return cls(admin, listening_socket(stack.demo_port, "--demo-port"))
        except PortTaken:
            admin.close()
            raise

    def close(self) -> None:
        self.admin.close()
        self.demo.close()


async def _run(stack: Stack, demo_sessions: int, listeners: Listeners) -> int | None:
    """Serve until a child exits or a stop signal comes, then stop every child; the signal."""
    loop = asyncio.get_running_loop()
    children: list[Process] = []
    serving = asyncio.create_task(_serve(stack, demo_sessions, children, listeners))
    received: list[int] = []

    def on_signal(signum: int) -> None:
        if not received:
            serving.cancel()
        else:
            # asked again while stopping: do not wait out the grace period
            _signal_groups(children, signal.SIGKILL)
        received.append(signum)

    # one ignored from the start stays ignored: `nohup` asks that a hang-up not stop the stack
    handled = [s for s in STOP_SIGNALS if signal.getsignal(s) is not signal.SIG_IGN]
    for signum in handled:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await serving
    except asyncio.CancelledError:
        if not received:
            raise
    finally:
        try:
            await _stop(children)
        finally:
            for signum in handled:
                loop.remove_signal_handler(signum)
    return received[0] if received else None


async def _serve(
    stack: Stack, demo_sessions: int, children: list[Process], listeners: Listeners
) -> None:
    """Start the children (into `children`, which the caller stops) and run until one exits."""
    jwt_secret = dev_secret(stack.state_dir)
    env = stack.environment(jwt_secret)
    logs = stack.state_dir / "logs"
    await ensure_topics(stack.kafka)
    await _say_topic_drift(stack.kafka)
    await upgrade_schema(stack.database_url)
    # --no-proxy-headers: the client address is the peer's (docs/gateway.md, trusted proxies);
    # --http: a request head past 64 KiB is refused (431), not gathered without bound
    # --fd: the socket devstack bound on 127.0.0.1 (`listening_socket`)
    serve = [
        "--log-level",
        "warning",
        "--factory",
        "--no-proxy-headers",
        "--http",
        HEAD_LIMITED_HTTP,
    ]
    # the record signing key to the registry alone: the demo service is a producer whose
    # expiries the registry refuses, and the admin API has no use for it
    signing = {
        "SESSIONS_RECORD_SIGNING_KEYS": dev_secret(stack.state_dir, "dev-record-signing-key")
    }
    children.append(
        await _spawn("registry", ["-m", "session_registry", "run"], env | signing, logs)
    )
    for name, sock, factory in (
        ("admin-api", listeners.admin, "admin_api.app:app_from_env"),
        ("demo-service", listeners.demo, "demo_service.app:app_from_env"),
    ):
        fd = ["--fd", str(sock.fileno())]
        children.append(
            await _spawn(name, ["-m", "uvicorn", *serve, *fd, factory], env, logs, serving_on=sock)
        )
    exited = functools.partial(_first_exited, children)
    await wait_http_ok(f"{stack.admin_url}/readyz", "admin API", exited)
    await wait_http_ok(f"{stack.demo_url}/healthz", "demo service", exited)
    settings = AdminApiSettings(_env_file=None, environment="development", jwt_secret=jwt_secret)
    token = issue_dev_token(
        settings,
        sub="dev-admin",
        tenant=stack.tenant_id,
        grants=["edit_user_sessions"],
        ttl=timedelta(hours=12),
    )
    print(banner(stack, token, logs), flush=True)
    async with SessionEventPublisher(stack.kafka) as publisher:
        traffic = asyncio.create_task(
            run_demo_traffic(publisher, stack.tenant_id, count=demo_sessions)
        )
        try:
            await _until_a_child_exits(children)
        finally:
            traffic.cancel()
            # the publisher closes next; the traffic must not be sending through it then
            await asyncio.wait([traffic])


async def _say_topic_drift(kafka: KafkaSettings) -> None:
    """Say which setting of an existing topic is not the contract's, with the line that changes
    it here: a broker kept from before a contract change keeps its topics as they were."""
    try:
        drift = await config_drift(kafka)
    except Exception as exc:  # a principal without DESCRIBE_CONFIGS: the stack runs all the same
        _say(f"warning: the topics' settings were not checked ({type(exc).__name__}: {exc})")
        return
    for found in drift:
        command = found.command(kafka.kafka_bootstrap_servers, tool="bash deploy/kafka.sh configs")
        _say(f"warning: {found}; to change it:\n  {command}")


def _signal_groups(children: list[Process], signum: int) -> None:
    # each child leads its own process group (start_new_session): a process it started goes too
    for child in children:
        if child.returncode is None:  # not yet reaped, so its pid is not anyone else's
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signum)


async def _stop(children: list[Process], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM every child; SIGKILL those still running after `grace` seconds; reap them all."""
    if not children:
        return
    _signal_groups(children, signal.SIGTERM)
    waits = [asyncio.ensure_future(child.wait()) for child in children]
    _, pending = await asyncio.wait(waits, timeout=grace)
    if pending:
        _signal_groups(children, signal.SIGKILL)
        await asyncio.wait(pending)


async def _until_a_child_exits(children: list[Process]) -> None:
    waits = [asyncio.ensure_future(child.wait()) for child in children]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
    raise RuntimeError("stopping: a process of the stack exited; see the logs")


def banner(stack: Stack, token: str, logs: Path) -> str:
    """What devstack prints once the stack is up (the read model URL without its password)."""
    read_model = redact_url(stack.database_url)
    return f"""
Session Control is running (tenant {stack.tenant_id!r}, read model {read_model}).

  Admin page         {stack.admin_url}/admin#token={token}
  Admin API          {stack.admin_url}/api/v1/sessions   (OpenAPI: {stack.admin_url}/openapi.json)
  Demo service       {stack.demo_url}/signin   (sign in, then terminate yourself as admin)

Development admin token (tenant {stack.tenant_id!r}, grant edit_user_sessions, 12 hours):
{token}

  curl -H "Authorization: Bearer $TOKEN" {stack.admin_url}/api/v1/sessions

Logs: {logs}/. Stop with Ctrl-C (or SIGTERM, SIGHUP).
"""


@app.callback()
def _commands() -> None:
    """Session Control on this machine: `dev` runs the whole system on local defaults."""


@app.command()
def dev(
    state_dir: Annotated[Path, typer.Option(help="Where the SQLite file and logs go.")] = Path(
        ".state"
    ),
    database_url: Annotated[
        str | None, typer.Option(help="Read model URL (default: SQLite in the state dir).")
    ] = None,
    tenant: Annotated[str, typer.Option(help="The demo tenant.")] = "demo",
    admin_port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    demo_port: Annotated[int, typer.Option(min=1, max=65535)] = 8001,
    registry_port: Annotated[
        int,
        typer.Option(min=1, max=65535, help="The registry's /healthz, /readyz and /metrics."),
    ] = 9180,
    demo_sessions: Annotated[int, typer.Option(help="Demo sessions to publish.")] = 60,
) -> None:
    """Run the registry, admin API and demo service against the local Kafka broker."""
    # what devstack and its children create (SQLite files, logs) is the user's alone
    os.umask(0o077)
    state_dir = state_dir.resolve()
    private_dir(state_dir)
    if refused := untrusted(state_dir):
        typer.echo(f"session-control dev: {refused}", err=True)
        raise typer.Exit(2)
    if database_url is None:
        keep_private(state_dir / "sessions.db")
    logs = state_dir / "logs"
    private_dir(logs)
    logs.chmod(0o700)  # devstack's own folder, perhaps left readable by an older devstack
    stack = Stack(
        state_dir=state_dir,
        database_url=database_url or f"sqlite+aiosqlite:///{state_dir / 'sessions.db'}",
        tenant_id=tenant,
        admin_port=admin_port,
        demo_port=demo_port,
        kafka=KafkaSettings(),
        registry_port=registry_port,
    )
    try:
        listeners = Listeners.bound(stack)
    except PortTaken as refused:
        typer.echo(f"session-control dev: {refused}", err=True)
        raise typer.Exit(2) from None
    try:
        received = asyncio.run(_run(stack, demo_sessions, listeners))
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were in place
        _say("stopped")
        raise SystemExit(128 + signal.SIGINT) from None
    finally:
        listeners.close()
    if received is not None:
        _say(f"stopped ({signal.Signals(received).name})")
        # end the way the signal ends a process (status 128+n to a shell; a clean stop to a
        # service manager), now that the children are gone
        signal.signal(received, signal.SIG_DFL)
        signal.raise_signal(received)


def _say(line: str) -> None:
    # after SIGHUP the terminal may be gone; a message must not turn a clean stop into an error
    with contextlib.suppress(OSError):
        print(line, flush=True)


def main() -> None:
    """Console script entry point."""
    app()


if __name__ == "__main__":
    main()
