"""`session-registry`: run the registry, migrate, show its lag, rebuild the read model from the log,
and the SRE tools (`sre_cli`: events, dlq, positions, diff).

Settings come from the environment (`SESSIONS_*`, see `RegistrySettings`), built when a
command starts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import datetime
from typing import Annotated

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from read_model.database import open_store, schema_of, standing_at, upgrade_schema
from read_model.revisions import SchemaBehind
from read_model.sqlite import SwapNotUndone
from session_contracts.logs import LogSettings, quiet_kafka_reconnects
from session_contracts.redaction import redact_url
from session_contracts.tracing import configure_tracing
from session_registry.adapters.signing_standing import SigningStanding, read_signing
from session_registry.bootstrap import Registry
from session_registry.entrypoints import sre_cli
from session_registry.entrypoints.cli_options import JSON_HELP, Cli, moment, refuse
from session_registry.entrypoints.progress import progress, shows_progress
from session_registry.runtime import tune_gc
from session_registry.service_layer.position_tools import RegistryRunning, refuse_while_running
from session_registry.service_layer.rebuild import RebuildReport
from session_registry.service_layer.rebuild import rebuild as rebuild_log
from session_registry.service_layer.status import (
    budgets_in_use,
    consumer_status,
    waiting_terminations,
)
from session_registry.service_layer.swap import carry_over, swap, swap_refusal
from session_registry.settings import RegistrySettings

app = Cli(help="The session registry: the read model of the session event log.")


def _logging(verbose: bool, *, quiet: bool = False) -> None:
    settings = LogSettings()  # SESSIONS_LOG_FORMAT=json: one JSON object a line
    if verbose:
        settings.log_level = "DEBUG"
    elif quiet:
        settings.log_level = "WARNING"
    settings.apply()
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    quiet_kafka_reconnects()


@app.command()
def run(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    """Consume events and commands, relay the outbox, sweep expiries (until SIGTERM)."""
    _logging(verbose)
    tune_gc()
    configure_tracing("session-registry")  # SESSIONS_OTLP_ENDPOINT; unset: off
    try:
        asyncio.run(_run(RegistrySettings()))
    except SchemaBehind as exc:  # the operator's to fix: the problem named, no traceback
        typer.echo(f"session-registry: {exc}", err=True)
        raise typer.Exit(2) from exc


async def _run(settings: RegistrySettings) -> None:
    # built inside the event loop: the Kafka clients bind to the running loop
    await Registry.from_settings(settings).run_forever()


@app.command()
def migrate(
    database_url: Annotated[
        str | None, typer.Option(help="Database to migrate (default: SESSIONS_DATABASE_URL).")
    ] = None,
) -> None:
    """Bring the database to the current schema (Alembic)."""
    url = database_url or RegistrySettings().database_url
    asyncio.run(upgrade_schema(url))
    typer.echo(f"schema current: {redact_url(url)}")


@app.command()
def status() -> None:
    """Where the database's schema stands against this release (behind: `migrate`); per
    partition: the stored position, the end offset and the lag; then the terminations
    by a text filter taken and not applied yet; then the tenants whose searches are spending
    their shared budget (refused with 429 while they owe time)."""
    settings = RegistrySettings()
    topics = settings.topics
    rows = sre_cli.run_cleanly(
        consumer_status(
            settings,
            settings.database_url,
            settings.consumer_group,
            [topics.events, topics.commands],
        )
    )
    typer.echo(f"consumer {settings.consumer_group} on {redact_url(settings.database_url)}")
    standing = sre_cli.run_cleanly(standing_at(settings.database_url))
    if standing.state == "current":
        typer.echo(f"schema ok: at this release's head, {standing.head}")
    else:
        typer.echo(f"schema {standing.describe()}")
    typer.echo(f"{'topic':<40} {'part':>4} {'stored':>12} {'end':>12} {'lag':>10}")
    for row in rows:
        stored = "-" if row.stored is None else str(row.stored)
        lag = "PAST END" if row.past_end else str(row.lag)
        typer.echo(f"{row.topic:<40} {row.partition:>4} {stored:>12} {row.end:>12} {lag:>10}")
    typer.echo(f"total lag {sum(r.lag for r in rows)}")
    for row in rows:
        if row.past_end:
            typer.echo(
                f"{row.topic} partition {row.partition}: the stored position is past the "
                "partition's end: its records up to it are skipped as applied already "
                "(docs/operations.md#registrypositionpastend)"
            )
    waiting = sre_cli.run_cleanly(waiting_terminations(settings.database_url))
    typer.echo(f"terminations by a text filter not applied yet: {len(waiting)}")
    for kept in waiting:
        tenant_id, command_id = kept.key
        part = "-" if kept.partition is None else str(kept.partition)
        typer.echo(
            f"  {tenant_id} {command_id} partition {part} "
            f"taken {kept.deferred_at.isoformat()} ended so far {kept.terminated}"
        )
    spending = sre_cli.run_cleanly(budgets_in_use(settings.database_url))
    typer.echo(f"search budgets in use: {len(spending)}")
    for used in spending:
        refused = f"refused for {used.refused_for:.0f} s" if used.left <= 0 else "searches served"
        typer.echo(
            f"  {used.tenant_id} {used.budget} {used.left:.1f} of {used.size:g} s a minute "
            f"left: {refused}"
        )


@app.command()
def rebuild(
    into: Annotated[str, typer.Option(help="URL of the fresh database to build.")],
    swap_in: Annotated[
        bool,
        typer.Option(
            "--swap",
            help="Then carry over what the log does not hold and put it in place of the live "
            "database (stop the registry first).",
        ),
    ] = False,
    consumer: Annotated[
        str | None, typer.Option(help="Consumer name the rebuild stores its positions under.")
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Processes sharing the partitions.")
    ] = 1,
    until: Annotated[
        str | None,
        typer.Option(
            help="The read model as of this ISO 8601 time: each partition up to its first "
            "record stamped later."
        ),
    ] = None,
    unsigned_expiries: Annotated[
        bool,
        typer.Option(
            "--unsigned-expiries",
            help="Swap in a rebuild made without SESSIONS_RECORD_SIGNING_KEYS (every "
            "session.expired applied: a deployment that never set the keys).",
        ),
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Replay the event log from the beginning into a fresh database; report counts and speed."""
    _logging(False, quiet=json_output)
    tune_gc()
    cut = moment(until, "--until")
    if cut is not None and swap_in:
        refuse(
            "--until builds a past read model for inspection (a scratch database); it cannot "
            "be swapped in (--swap): the live registry would resume from past positions"
        )
    settings = RegistrySettings()
    if asyncio.run(_same_database(into, settings.database_url)):
        # the replay takes the PostgreSQL listing indexes off the database it fills
        refuse(
            f"--into {redact_url(into)} is the live database (SESSIONS_DATABASE_URL): a rebuild "
            "fills a fresh one"
        )
    if swap_in and asyncio.run(schema_of(settings.database_url)) is None:
        typer.echo(
            f"--swap: the live database {redact_url(settings.database_url)} has no read model "
            "to replace (SESSIONS_DATABASE_URL); rebuild without --swap and point the services "
            "at it",
            err=True,
        )
        raise typer.Exit(2)
    if swap_in:
        standing = asyncio.run(standing_at(settings.database_url))
        if standing.state == "newer":
            # the carry-over copies the tables and columns this release knows: a newer
            # release's were dropped by the swap (revocation records, say: a review, stop 70)
            refuse(
                f"--swap refused: the live database is at revision {standing.database}, newer "
                f"than this release's {standing.head}: a swap would drop what that release "
                "added. Rebuild with the release that migrated it"
            )
        _refuse_other_signing(settings)
    if settings.record_signing_keys is None:
        # the registry warns at each start; a shell an SRE rebuilds from may lack the keys the
        # registry has, and the rebuild would take in every forged expiry (a review, stop 68)
        unsigned = (
            "SESSIONS_RECORD_SIGNING_KEYS is not set: this rebuild applies every "
            "session.expired on the log, those the registry dead-lettered as unsigned or forged "
            "too (their sessions expired, beyond a termination's reach)"
        )
        if swap_in and not unsigned_expiries:
            refuse(
                f"--swap refused: {unsigned}. Rebuild with the registry's keys, or, for a "
                "registry that has none, add --unsigned-expiries (docs/security.md)"
            )
        typer.echo(f"warning: {unsigned}", err=True)
    if swap_in:
        _refuse_while_running(settings, "are connected")
    name = consumer or f"rebuild-{time.strftime('%Y%m%d%H%M%S')}"

    async def replaying() -> RebuildReport:
        shown = shows_progress(json_output) and workers == 1
        with progress("replaying", enabled=shown) as progress_report:
            return await rebuild_log(
                settings,
                settings.topics,
                into,
                name,
                workers=workers,
                max_records=settings.batch_max_records,
                max_partition_fetch_bytes=settings.max_partition_fetch_bytes,
                until=cut,
                report=progress_report,
                expiries=settings.signed_expiries,
            )

    report = asyncio.run(replaying())
    if json_output:
        typer.echo(
            json.dumps(
                {
                    "into": redact_url(into),
                    "consumer": report.consumer,
                    "until": None if cut is None else cut.isoformat(),
                    "events": report.events,
                    "dead_letters": report.dead_letters,
                    "sessions": report.sessions,
                    "history": report.history,
                    "seconds": round(report.seconds, 3),
                    "positions": [
                        {"topic": t, "partition": p, "next_offset": o}
                        for (t, p), o in sorted(report.positions.items())
                    ],
                }
            )
        )
    else:
        typer.echo(
            f"rebuilt {redact_url(into)} as {report.consumer}: {report.events} events, "
            f"{report.dead_letters} dead letters, {report.sessions} sessions, "
            f"{report.history} history rows in {report.seconds:.1f} s "
            f"({report.events_per_second:,.0f} events/s)"
            + ("" if cut is None else f", as of {cut.isoformat()}")
        )
    if swap_in:
        # a registry started during the replay would write on after the carry-over's copy
        _refuse_while_running(settings, "joined during the replay; nothing was swapped")
        if (refusal := asyncio.run(swap_refusal(settings.database_url, into))) is not None:
            refuse(f"--swap refused: {refusal}; nothing was swapped")
        copied = asyncio.run(
            carry_over(
                settings.database_url, into, settings.topics, settings.consumer_group, report
            )
        )
        typer.echo("carried over: " + ", ".join(f"{k} {v}" for k, v in sorted(copied.items())))
        # and one started during the carry-over wrote to the live database after its copy
        _refuse_while_running(settings, "joined during the carry-over; nothing was swapped")
        try:
            backup = asyncio.run(swap(settings.database_url, into))
        except SwapNotUndone as exc:
            refuse(f"swap failed midway and could not be undone: {exc}", 1)
        except (OSError, DBAPIError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            refuse(
                f"swap refused, the live database {redact_url(settings.database_url)} is "
                f"unchanged and the rebuilt one is at {redact_url(into)}: {first}",
                1,
            )
        typer.echo(f"swapped in; the previous database is now {backup}")


def _refuse_other_signing(settings: RegistrySettings) -> None:
    """Exit 2 when this shell reads `session.expired` records otherwise than the live registry
    (`registry_signing`, written at its start): other keys, or another "since". A later one
    took in every unsigned expiry appended between the two, the forged ones the registry had
    dead-lettered too, and the swap put their sessions expired, beyond a termination's reach
    (a review, stop 70). A database no registry of this release has started on: a warning."""
    found = asyncio.run(_live_signing(settings.database_url))
    mine = settings.signing_standing
    if found is None:
        typer.echo(
            "warning: no registry of this release has started on the live database: this "
            "shell's record signing settings cannot be compared with the registry's",
            err=True,
        )
        return
    theirs, written_at = found
    if theirs != mine:
        refuse(
            f"--swap refused: the registry reads session.expired records with "
            f"{theirs.describe()} (as it started, {written_at.isoformat()}), this shell with "
            f"{mine.describe()}: the rebuild would apply or refuse other expiries than it did. "
            "Set SESSIONS_RECORD_SIGNING_KEYS and SESSIONS_RECORD_SIGNING_SINCE as the "
            "registry has them (docs/operations.md, Before a swap)"
        )


async def _live_signing(url: str) -> tuple[SigningStanding, datetime] | None:
    store = open_store(url)
    try:
        async with store.engine.connect() as conn:
            return await read_signing(conn)
    finally:
        await store.dispose()


def _refuse_while_running(settings: RegistrySettings, when: str) -> None:
    """Exit 3 while a member of the live registry's consumer group is connected: a running
    registry (and the admin API beside it) writes on to the database the swap moves away, and
    what it writes after the carry-over's copy is lost (found by a review, 2026-12-06)."""
    try:
        asyncio.run(refuse_while_running(settings, settings.consumer_group, when))
    except RegistryRunning as exc:
        refuse(f"--swap refused: {exc}", 3)


# the SRE tools (docs/operations.md, the SRE runbook)
app.command()(sre_cli.events)
app.add_typer(sre_cli.dlq_app, name="dlq")
app.add_typer(sre_cli.positions_app, name="positions")
app.command()(sre_cli.diff)


async def _same_database(a: str, b: str) -> bool:
    """Whether two URLs name one database: spelled alike (driver and password aside), or
    reaching the same file or the same database of the same server. Until 2026-12-06 only
    the spelling was compared: `localhost` for `127.0.0.1`, a port written out, or a path
    through `..` let a rebuild write into the live database (a review)."""
    first, second = make_url(a), make_url(b)
    spelled = (first.get_backend_name(), first.host, first.port, first.database)
    if spelled == (second.get_backend_name(), second.host, second.port, second.database):
        return True
    if first.get_backend_name() != second.get_backend_name():
        return False
    stores = open_store(a), open_store(b)
    try:
        one, other = [await store.identity() for store in stores]
    finally:
        for store in stores:
            await store.dispose()
    return one is not None and one == other
