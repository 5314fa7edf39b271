"""A registry told not to migrate (`SESSIONS_MIGRATE_ON_START=false`, the schema migrated by
a step of its own) refuses to start on a schema behind its release, naming both revisions and
what to do, instead of failing every batch it folds; on a newer schema (a later release
migrated first) it runs."""

from __future__ import annotations

import os

import pytest
from registry_helpers import registry_cli, registry_settings
from sqlalchemy import text

from migrated import MigratedCopies
from read_model.database import make_engine, schema_of
from read_model.revisions import SchemaBehind, release_revisions
from schema_steps import downgrade_schema
from session_contracts.topics import Topics
from session_registry.bootstrap import Registry
from unclosed_clients import no_kafka_client_left_unclosed

pytestmark = pytest.mark.kafka

BEFORE = "1101_activity_keys"
BEHIND = (
    f"schema behind: the database is at revision {BEFORE}, this release needs {{head}}; run "
    "`session-registry migrate` (or start this release's registry, which migrates); or set "
    "SESSIONS_MIGRATE_ON_START=true"
)


async def _at(db_url: str, revision: str) -> None:
    engine = make_engine(db_url)
    try:
        await downgrade_schema(engine, revision)
    finally:
        await engine.dispose()


async def test_a_registry_that_may_not_migrate_refuses_a_schema_behind_its_release(
    db_url: str, migrated: MigratedCopies, topics: Topics, kafka_bootstrap: str
) -> None:
    await migrated.migrate(db_url)
    await _at(db_url, BEFORE)
    head, _ = release_revisions()
    # the clients a start refused before it reached them are closed by its stop too: they
    # warned when collected, inside whichever test ran then (stop 73)
    with no_kafka_client_left_unclosed():
        registry = Registry.from_settings(
            registry_settings(kafka_bootstrap, topics, db_url, migrate_on_start=False)
        )
        try:
            with pytest.raises(SchemaBehind) as refused:
                await registry.start()
        finally:
            await registry.stop()
        reason = str(refused.value)
        del registry, refused  # its traceback holds the registry
    assert reason == BEHIND.format(head=head)
    assert await schema_of(db_url) == BEFORE  # left as it was

    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SESSIONS_TOPIC_PREFIX": topics.prefix,
        "SESSIONS_DATABASE_URL": db_url,
        "SESSIONS_MIGRATE_ON_START": "false",
        "SESSIONS_REGISTRY_HTTP_PORT": "0",
    }
    run = await registry_cli(env, "run", status=2)
    assert f"session-registry: {BEHIND.format(head=head)}" in run.stderr
    assert "Traceback" not in run.output
    assert await schema_of(db_url) == BEFORE


async def test_a_registry_that_may_not_migrate_runs_on_a_newer_schema(
    db_url: str, migrated: MigratedCopies, topics: Topics, kafka_bootstrap: str
) -> None:
    await migrated.migrate(db_url)
    engine = make_engine(db_url)
    try:
        async with engine.begin() as conn:  # as a later release's migration leaves it
            await conn.execute(text("UPDATE alembic_version SET version_num = '9901_later'"))
    finally:
        await engine.dispose()
    registry = Registry.from_settings(
        registry_settings(kafka_bootstrap, topics, db_url, migrate_on_start=False)
    )
    try:
        await registry.start()
        await registry.wait_until_idle(30)
    finally:
        await registry.stop()
    assert await schema_of(db_url) == "9901_later"
