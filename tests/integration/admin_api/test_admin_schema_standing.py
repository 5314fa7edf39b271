"""The admin API against a schema of another release: `/readyz` says when the database is
behind this release (not ready, naming both revisions and what to run), and a search that calls
what a missing revision creates answers 503 `schema_behind`, not a bare 500.

An admin API upgraded before its registry has migrated (operations.md, "Upgrade order") must
not be sent traffic it cannot serve; one on a newer schema (the registry upgraded first, the
supported order) stays ready.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import httpx
import pytest
from admin_api_support import NOW, RecordingBus, insert, make_settings, session_row
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

from admin_api.app import create_app
from admin_api.settings import AdminApiSettings
from asgi_served import served
from read_model.database import make_engine, upgrade_schema
from read_model.polite_ddl import POLITE_REVISIONS
from read_model.revisions import alembic_config, release_revisions
from schema_steps import downgrade_schema

BEFORE_TERM_KEYS = "1101_activity_keys"
"""The revision before 1201, which creates `session_id_term_keys` (PostgreSQL's id search)."""
BEFORE_DEFERRED_TERMINATIONS = "0801_session_id_keys"
"""The revision before 0901, which creates `deferred_terminations` (both backends)."""
WATCH_LOG = "admin_api.service_layer.schema_watch"


@pytest.fixture
def settings(db_url: str) -> AdminApiSettings:
    """Only /readyz reads the standing here (no periodic read), so what it logs is its own."""
    return make_settings(db_url, schema_check_seconds=0)


async def _ready(client: httpx.AsyncClient) -> tuple[int, dict[str, object]]:
    answer = await client.get("/readyz")
    return answer.status_code, answer.json()


async def test_readyz_is_503_while_the_schema_is_behind_and_ready_once_migrated(
    engine: AsyncEngine, db_url: str, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    head, _ = release_revisions()
    assert head != BEFORE_TERM_KEYS
    code, body = await _ready(client)
    assert (code, body) == (
        200,
        {"status": "ready", "checks": {"database": "ok", "schema": "ok", "kafka": "ok"}},
    )

    caplog.clear()
    with caplog.at_level(logging.INFO, logger=WATCH_LOG):
        await downgrade_schema(engine, BEFORE_TERM_KEYS)
        code, body = await _ready(client)
        assert code == 503 and body["status"] == "not ready"
        checks = body["checks"]
        assert isinstance(checks, dict) and checks["database"] == "ok"
        # anyone who reaches the port reads /readyz: no revision (they date the release) ...
        assert checks["schema"] == (
            "behind this release: run `session-registry migrate` (or start this release's "
            "registry, which migrates); `session-registry status` names the revisions"
        )
        assert BEFORE_TERM_KEYS not in str(body) and head not in str(body)
        for _ in range(3):  # still behind: said once
            assert (await _ready(client))[0] == 503

        await upgrade_schema(db_url)
        assert await _ready(client) == (
            200,
            {"status": "ready", "checks": {"database": "ok", "schema": "ok", "kafka": "ok"}},
        )
    # ... the log names both revisions, once each time the standing changes
    behind = (
        f"schema behind: the database is at revision {BEFORE_TERM_KEYS}, this release needs "
        f"{head}; run `session-registry migrate` (or start this release's registry, which "
        "migrates)"
    )
    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == WATCH_LOG]
    assert said == [
        (logging.WARNING, behind),
        (logging.INFO, "schema ok"),
    ]


async def test_an_unmigrated_database_is_not_ready(db_url: str) -> None:
    engine = make_engine(db_url)  # a new, empty database: no revision at all
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))  # it answers
        app = create_app(make_settings(db_url), bus=RecordingBus(), clock=lambda: NOW)
        async with served(app) as client:
            code, body = await _ready(client)
    finally:
        await engine.dispose()
    assert code == 503 and body["status"] == "not ready"
    checks = body["checks"]
    assert isinstance(checks, dict) and checks["database"] == "ok"
    assert str(checks["schema"]).startswith("behind this release: run `session-registry migrate`")


async def test_a_newer_schema_than_this_release_is_ready(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    head, known = release_revisions()
    newer = "9901_from_a_newer_release"
    assert newer not in known
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": newer})
    code, body = await _ready(client)
    assert code == 200 and body["status"] == "ready"
    checks = body["checks"]
    assert isinstance(checks, dict)
    assert checks["schema"] == "ok: newer than this release (a later release migrated it)"
    assert newer not in str(body) and head not in str(body)


async def test_a_search_on_a_schema_behind_answers_503_schema_behind(
    engine: AsyncEngine, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    row = session_row()
    await insert(engine, [row])
    fragment = row["session_id"][4:12]  # a piece of an id: the ids' keys on PostgreSQL
    found = await client.get("/api/v1/sessions", params={"q": fragment}, headers=auth)
    assert [i["session_id"] for i in found.json()["items"]] == [row["session_id"]]

    await downgrade_schema(engine, BEFORE_TERM_KEYS)
    answer = await client.get("/api/v1/sessions", params={"q": fragment}, headers=auth)
    if engine.dialect.name != "postgresql":
        # SQLite's search calls nothing a revision creates: it still answers, while /readyz
        # says the schema is behind (the previous test)
        assert [i["session_id"] for i in answer.json()["items"]] == [row["session_id"]]
        return
    assert answer.status_code == 503, answer.text
    assert answer.json() == {
        "detail": "the session database's schema is older than this release of the admin "
        "API; nothing was changed: retry once it is migrated (`session-registry migrate`)",
        "reason": "schema_behind",
    }
    assert answer.headers["Retry-After"] == "30"


async def test_a_table_a_schema_behind_lacks_answers_503_schema_behind_on_both_backends(
    engine: AsyncEngine, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    # a termination's status reads `deferred_terminations`, which revision 0901 creates. On
    # SQLite the missing table is an OperationalError, answered as "database unavailable"
    # until 2026-12-05: the page then said to retry in 5 s, for good
    await downgrade_schema(engine, BEFORE_DEFERRED_TERMINATIONS)
    answer = await client.get(f"/api/v1/sessions/terminations/{uuid.uuid4()}", headers=auth)
    assert answer.status_code == 503, answer.text
    assert answer.json()["reason"] == "schema_behind"
    assert answer.headers["Retry-After"] == "30"


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)  # SQLite's calls none
async def test_a_missing_function_on_a_current_schema_is_still_the_servers_fault(
    engine: AsyncEngine, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    # the same error with the schema at this release's head is not `schema_behind`: the
    # server's own fault, raised (a 500), as any other database error of a statement
    row = session_row()
    await insert(engine, [row])
    async with engine.begin() as conn:
        await conn.execute(text("DROP FUNCTION session_id_term_keys(text, text)"))
    fragment = row["session_id"][4:12]
    with pytest.raises(ProgrammingError, match="function session_id_term_keys"):
        await client.get("/api/v1/sessions", params={"q": fragment}, headers=auth)


async def test_the_standing_is_read_at_start_and_every_interval_without_readyz(
    engine: AsyncEngine, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # no load balancer polls /readyz: the process itself says so, in its log and a gauge
    await downgrade_schema(engine, BEFORE_TERM_KEYS)
    settings = make_settings(db_url, schema_check_seconds=0.05)
    app = create_app(settings, bus=RecordingBus(), clock=lambda: NOW)
    with caplog.at_level(logging.INFO, logger=WATCH_LOG):
        async with served(app) as client:
            await _gauge_reads(client, 1.0)
            await upgrade_schema(db_url)
            await _gauge_reads(client, 0.0)
    head, _ = release_revisions()
    # the watch's own records: a client another test left on its worker may log here too
    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == WATCH_LOG]

    def behind(revision: str) -> tuple[int, str]:
        return (
            logging.WARNING,
            f"schema behind: the database is at revision {revision}, this release "
            f"needs {head}; run `session-registry migrate` (or start this release's "
            "registry, which migrates)",
        )

    assert said[0] == behind(BEFORE_TERM_KEYS)
    assert said[-1] == (logging.INFO, "schema ok")
    # an upgrade commits a polite revision in a transaction of its own, after those before it
    # and before those after it (`read_model.database._steps`): a check between two steps
    # says the step it found, once, in the order they came
    stepped = [
        behind(revision)
        for polite in POLITE_REVISIONS
        for revision in (_parent(polite), polite)
        if revision != head
    ]
    between = iter(stepped)
    assert all(line in between for line in said[1:-1]), said


async def _gauge_reads(client: httpx.AsyncClient, value: float) -> None:
    """Until /metrics shows `admin_api_schema_behind` at `value`."""
    async with asyncio.timeout(30):  # a bound on a hang, not a speed claim
        while True:
            families = text_string_to_metric_families((await client.get("/metrics")).text)
            found = [
                sample.value
                for family in families
                for sample in family.samples
                if sample.name == "admin_api_schema_behind"
            ]
            if found == [value]:
                return
            await asyncio.sleep(0.02)


def _parent(revision: str) -> str:
    """The revision `revision` follows."""
    from alembic.script import ScriptDirectory

    parent = ScriptDirectory.from_config(alembic_config()).get_revision(revision).down_revision
    assert isinstance(parent, str)
    return parent
