"""The admin API process is killed with terminations in flight; every accepted one is applied.

The admin API runs as `uvicorn --factory admin_api.app:app_from_env` while four clients keep
requesting terminations (disjoint sessions each). It is SIGKILLed mid-stream, with requests on
the wire and accepted commands not yet applied, and started again on the same port; the clients
go on (a refused connection is retried, a cut request is not). Afterwards the status endpoint of
the new process reports `applied` for every accepted command with the number it asked for; no
request stays `pending`; every applied command has its request on record (the audit trail);
every session got at most one `session.terminated`; and a request cut by the kill either ended
its sessions once or not at all. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest
from fault_support import (
    SECRET,
    admin_headers,
    admin_settings,
    applied,
    event_log,
    handle,
    producer_on,
    running_registry,
    send_models,
    terminations_by_command,
    until,
)
from registry_helpers import created, table_rows

from private_services import free_port
from read_model.tables import termination_requests
from session_contracts.topics import Topics

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
CHUNK, CHUNKS, CLIENTS = 4, 40, 4


def start_admin_api(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """The admin API as its own process, configured from the environment."""
    command = [sys.executable, "-m", "uvicorn", "--factory", "admin_api.app:app_from_env"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    command += ["--no-proxy-headers"]
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=out)


async def test_admin_api_killed_with_terminations_in_flight_applies_every_accepted_one(
    kafka_bootstrap: str, topics: Topics, db_url: str, tmp_path: Path
) -> None:
    settings = admin_settings(kafka_bootstrap, topics, db_url)
    headers = admin_headers(settings)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SESSIONS_TOPIC_PREFIX": topics.prefix,
        "SESSIONS_TOPIC_PARTITIONS": str(topics.partitions),
        "SESSIONS_DATABASE_URL": db_url,
        "SESSIONS_ENVIRONMENT": "development",
        "SESSIONS_JWT_SECRET": SECRET,
    }
    credentials = [f"a-{n:03d}" for n in range(CHUNK * CHUNKS)]
    ids = [handle(c) for c in credentials]  # what the admin API and the events name
    todo = [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]
    accepted: dict[str, list[str]] = {}
    cut: list[list[str]] = []
    retried = Counter[str]()
    port, log = free_port(), tmp_path / "admin-api.log"
    no_keepalive = httpx.Limits(max_keepalive_connections=0)  # a refused connect sent nothing

    async with (
        producer_on(kafka_bootstrap) as producer,
        running_registry(kafka_bootstrap, topics, db_url) as registry,
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=headers, limits=no_keepalive, timeout=60
        ) as http,
    ):
        await send_models(producer, topics, *[created(c) for c in credentials])
        await registry.wait_until_idle(60)

        async def ready() -> bool:
            try:
                return bool((await http.get("/readyz")).json()["status"] == "ready")
            except httpx.TransportError:
                return False

        async def client() -> None:
            while todo:
                part = todo.pop(0)
                while True:
                    try:
                        response = await http.post(
                            "/api/v1/sessions/terminations", json={"session_ids": part}
                        )
                    except httpx.ConnectError:  # the process is down: nothing was sent
                        retried["refused connection"] += 1
                        await asyncio.sleep(0.05)
                        continue
                    except httpx.TransportError:  # on the wire when the process died
                        cut.append(part)
                        break
                    if response.status_code == 503:  # restarted, Kafka not connected yet
                        retried["503"] += 1
                        await asyncio.sleep(0.05)
                        continue
                    assert response.status_code == 202, response.text
                    accepted[response.json()["command_id"]] = part
                    break

        process = start_admin_api(env, port, log)
        try:
            await until(ready, 60, "admin API ready")
            clients = [asyncio.create_task(client()) for _ in range(CLIENTS)]
            await until(lambda: _at_least(len(accepted), CHUNKS // 4), 60, "first commands")
            process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(process.wait)
            at_kill = set(accepted)
            pending_at_kill = len(at_kill - set(await applied(db_url)))
            process = start_admin_api(env, port, log)
            await asyncio.wait_for(asyncio.gather(*clients), 120)

            async def all_applied() -> bool:
                for command_id in accepted:
                    body = (await http.get(f"/api/v1/sessions/terminations/{command_id}")).json()
                    if body["status"] != "applied":
                        return False
                return True

            await until(all_applied, 60, "every accepted command applied")
            statuses = {
                c: (await http.get(f"/api/v1/sessions/terminations/{c}")).json() for c in accepted
            }
            await registry.wait_until_idle(60)
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(process.wait, 30)

    assert cut or pending_at_kill, "nothing was in flight when the admin API was killed"
    assert len(accepted) + len(cut) == CHUNKS and len(accepted) > len(at_kill)
    assert {c: s["terminated"] for c, s in statuses.items()} == dict.fromkeys(accepted, CHUNK)
    done = await applied(db_url)
    requests = await table_rows(db_url, termination_requests, [termination_requests.c.command_id])
    # nothing left pending, and no applied command without its request (the audit trail)
    assert {r["command_id"] for r in requests} == set(done)
    assert set(accepted) <= set(done)
    by_command = terminations_by_command(await event_log(kafka_bootstrap, topics))
    for command_id, part in accepted.items():
        assert by_command[command_id] == dict.fromkeys(part, 1)
    ended = Counter(sid for sessions in by_command.values() for sid in sessions.elements())
    assert max(ended.values()) == 1  # no session ended twice
    # a cut request ended its sessions once (it reached Kafka) or not at all
    unanswered = set(done) - set(accepted)
    assert len(unanswered) <= len(cut)
    for part in cut:
        assert sum(ended[sid] for sid in part) in (0, CHUNK)
    print(
        f"accepted {len(accepted)} ({len(at_kill)} before the kill, {pending_at_kill} of them "
        f"not yet applied at the kill); cut in flight {len(cut)}; retried {dict(retried)}; "
        f"cut but applied (request recorded by the registry) {len(unanswered)}"
    )


async def _at_least(value: int, floor: int) -> bool:
    return value >= floor
