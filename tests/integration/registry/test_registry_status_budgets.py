"""`session-registry status` names the tenants whose searches are spending their shared budget
(the admin API's, table `search_budgets`), so on-call can answer "why does this tenant get
429?" from the database every admin API process shares, whichever process refused it."""

from __future__ import annotations

import os

import pytest
from registry_helpers import registry_cli

from admin_api.service_layer.shared_budgets import BudgetSync
from admin_api.service_layer.tenant_slots import SearchBudget
from migrated import MigratedCopies
from read_model.database import make_engine, open_store
from read_model.revisions import release_revisions
from schema_steps import downgrade_schema
from session_contracts.topics import Topics
from session_registry.service_layer.status import budgets_in_use

pytestmark = pytest.mark.kafka


async def test_status_names_the_tenants_spending_their_search_budgets(
    db_url: str, migrated: MigratedCopies, topics: Topics, kafka_bootstrap: str
) -> None:
    await migrated.migrate(db_url)
    searches = SearchBudget(6.0)  # a tenth of a second back every second
    terminations = SearchBudget(5.0, name="filter_terminations")
    store = open_store(db_url)
    try:
        sync = BudgetSync(store, [searches, terminations])
        searches.charge("acme", 8.0)  # 2 s owed: refused for about 20 s
        searches.charge("globex", 1.0)
        terminations.charge("acme", 1.0)
        await sync.sync_once()
    finally:
        await store.dispose()

    in_use = await budgets_in_use(db_url)
    assert [(b.tenant_id, b.budget, b.size) for b in in_use] == [
        ("acme", "searches", 6.0),  # the most spent first
        ("acme", "filter_terminations", 5.0),
        ("globex", "searches", 6.0),
    ]
    owing, *served = in_use
    assert -2.0 <= owing.left < -1.0 and 10 < owing.refused_for <= 20
    assert all(b.left > 0 and b.refused_for == 0 for b in served)

    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SESSIONS_TOPIC_PREFIX": topics.prefix,
        "SESSIONS_DATABASE_URL": db_url,
    }
    printed = (await registry_cli(env, "status")).stdout.splitlines()
    head, _ = release_revisions()
    assert f"schema ok: at this release's head, {head}" in printed
    assert "search budgets in use: 3" in printed
    acme, acme_terminations, globex = printed[printed.index("search budgets in use: 3") + 1 :]
    assert acme.startswith("  acme searches -") and "refused for" in acme, acme
    assert acme_terminations.startswith("  acme filter_terminations 4.")
    assert globex.startswith("  globex searches 5.") and globex.endswith("searches served")

    # a database behind this release (the admin API's /readyz says not ready): status says
    # which revision it is at and what to run
    engine = make_engine(db_url)
    try:
        await downgrade_schema(engine, "1101_activity_keys")
    finally:
        await engine.dispose()
    printed = (await registry_cli(env, "status")).stdout.splitlines()
    assert (
        "schema behind: the database is at revision 1101_activity_keys, this release needs "
        f"{head}; run `session-registry migrate` (or start this release's registry, which "
        "migrates)"
    ) in printed
    # the rest is read as before (how many budgets are still in use depends on the time)
    assert any(line.startswith("search budgets in use: ") for line in printed)


async def test_status_against_a_database_without_a_read_model_says_so_without_a_traceback(
    db_url: str, topics: Topics, kafka_bootstrap: str
) -> None:
    """It ran outside the command line's error handling: a database with no read model (or
    away) printed a traceback instead of the reason."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SESSIONS_TOPIC_PREFIX": topics.prefix,
        "SESSIONS_DATABASE_URL": db_url,  # created, never migrated
    }
    run = await registry_cli(env, "status", status=1)
    assert "database: " in run.output and "Traceback" not in run.output, run.output
