"""`session-control dev`: the whole system on local defaults, as real processes.

Kafka must already run (`deploy/run.sh` starts it). This creates the topics, brings the
SQLite read model to the current schema, starts the registry, the admin API and the demo
platform service (behind the auth gateway) as child processes, publishes demo sessions
through the real event path, and prints the admin URL with a development admin token.
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import signal
import sys
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
from session_contracts.kafka_admin import ensure_topics
from session_contracts.publisher import SessionEventPublisher
from session_contracts.settings import KafkaSettings
from session_registry.adapters.database import upgrade_schema

app = typer.Typer(add_completion=False, help="Session Control on this machine.")


@dataclass(frozen=True)
class Stack:
    """Where the pieces live and how they are reached."""

    state_dir: Path
    database_url: str
    tenant_id: str
    admin_port: int
    demo_port: int
    kafka: KafkaSettings

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
        }


def _dev_secret(state_dir: Path) -> str:
    # kept across restarts so a printed token stays valid while the stack is restarted
    path = state_dir / "dev-jwt-secret"
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


async def _spawn(name: str, args: list[str], env: dict[str, str], logs: Path) -> Process:
    with (logs / f"{name}.log").open("ab") as log:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            env=env,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )


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


async def _run(stack: Stack, demo_sessions: int) -> None:
    jwt_secret = _dev_secret(stack.state_dir)
    env = stack.environment(jwt_secret)
    logs = stack.state_dir / "logs"
    await ensure_topics(stack.kafka.kafka_bootstrap_servers, stack.kafka.topics)
    await upgrade_schema(stack.database_url)
    host = ["--host", "127.0.0.1", "--log-level", "warning", "--factory"]
    children = [
        await _spawn("registry", ["-m", "session_registry", "run"], env, logs),
        await _spawn(
            "admin-api",
            ["-m", "uvicorn", *host, "--port", str(stack.admin_port), "admin_api.app:app_from_env"],
            env,
            logs,
        ),
        await _spawn(
            "demo-service",
            [
                "-m",
                "uvicorn",
                *host,
                "--port",
                str(stack.demo_port),
                "demo_service.app:app_from_env",
            ],
            env,
            logs,
        ),
    ]
    try:
        exited = functools.partial(_first_exited, children)
        await wait_http_ok(f"{stack.admin_url}/readyz", "admin API", exited)
        await wait_http_ok(f"{stack.demo_url}/healthz", "demo service", exited)
        settings = AdminApiSettings(_env_file=None, jwt_secret=jwt_secret)
        token = issue_dev_token(
            settings,
            sub="dev-admin",
            tenant=stack.tenant_id,
            grants=["edit_user_sessions"],
            ttl=timedelta(hours=12),
        )
        _announce(stack, token, logs)
        async with SessionEventPublisher(
            stack.kafka.kafka_bootstrap_servers, stack.kafka.topics
        ) as publisher:
            traffic = asyncio.create_task(
                run_demo_traffic(publisher, stack.tenant_id, count=demo_sessions)
            )
            await _until_a_child_exits(children)
            traffic.cancel()
    finally:
        await _stop(children)


async def _stop(children: list[Process]) -> None:
    for child in children:
        if child.returncode is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            await asyncio.wait_for(child.wait(), timeout=15)
        except TimeoutError:
            child.kill()


async def _until_a_child_exits(children: list[Process]) -> None:
    waits = [asyncio.ensure_future(child.wait()) for child in children]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for wait in waits:
        wait.cancel()
    raise RuntimeError("stopping: a process of the stack exited; see the logs")


def _announce(stack: Stack, token: str, logs: Path) -> None:
    print(
        f"""
Session Control is running (tenant {stack.tenant_id!r}, read model {stack.database_url}).

  Admin page         {stack.admin_url}/admin#token={token}
  Admin API          {stack.admin_url}/api/v1/sessions   (OpenAPI: {stack.admin_url}/docs)
  Demo service       {stack.demo_url}/signin   (sign in, then terminate yourself as admin)

Development admin token (tenant {stack.tenant_id!r}, grant edit_user_sessions, 12 hours):
{token}

  curl -H "Authorization: Bearer $TOKEN" {stack.admin_url}/api/v1/sessions

Logs: {logs}/. Stop with Ctrl-C.
""",
        flush=True,
    )


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
    admin_port: Annotated[int, typer.Option()] = 8000,
    demo_port: Annotated[int, typer.Option()] = 8001,
    demo_sessions: Annotated[int, typer.Option(help="Demo sessions to publish.")] = 60,
) -> None:
    """Run the registry, admin API and demo service against the local Kafka broker."""
    state_dir = state_dir.resolve()
    (state_dir / "logs").mkdir(parents=True, exist_ok=True)
    stack = Stack(
        state_dir=state_dir,
        database_url=database_url or f"sqlite+aiosqlite:///{state_dir / 'sessions.db'}",
        tenant_id=tenant,
        admin_port=admin_port,
        demo_port=demo_port,
        kafka=KafkaSettings(),
    )
    try:
        asyncio.run(_run(stack, demo_sessions))
    except KeyboardInterrupt:
        print("stopped")


def main() -> None:
    """Console script entry point."""
    app()


if __name__ == "__main__":
    main()
