"""The SRE commands of `session-registry`: one session's records, the dead-letter topic, the
stored positions, and comparing two read models (docs/operations.md, the SRE runbook).

Kafka and database settings come from the environment, as for every command
(`RegistrySettings`), built when a command starts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer
from aiokafka.errors import KafkaError
from sqlalchemy.exc import DBAPIError

from session_contracts.redaction import redact_url
from session_registry.entrypoints.cli_options import JSON_HELP, line, moment, refuse
from session_registry.entrypoints.progress import progress, shows_progress
from session_registry.service_layer.dead_letter_tools import (
    LetterFilter,
    dead_letters,
    redrive,
)
from session_registry.service_layer.position_tools import (
    RegistryRunning,
    Target,
    set_positions,
    show_positions,
)
from session_registry.service_layer.read_model_diff import diff_read_models
from session_registry.service_layer.session_log import check_session, session_records
from session_registry.settings import RegistrySettings

T = TypeVar("T")
Json = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


async def _drain(items: AsyncIterator[T], each: Callable[[T], None]) -> int:
    count = 0
    async for item in items:
        each(item)
        count += 1
    return count


def run_cleanly(work: Any) -> Any:
    """Run a coroutine; Kafka or database trouble is a clear error, not a traceback."""
    try:
        return asyncio.run(work)
    except KafkaError as exc:
        refuse(f"kafka: {type(exc).__name__}: {exc}", 1)
    except LookupError as exc:  # a topic the broker does not have, a database with no read model
        if isinstance(exc, KeyError | IndexError):
            raise  # a bug, not the broker's answer
        refuse(str(exc), 1)
    except (OSError, DBAPIError) as exc:  # the database cannot be reached or refused us
        first = str(exc).splitlines()[0] if str(exc) else ""
        refuse(f"database: {type(exc).__name__}: {first}", 1)


def events(
    tenant: Annotated[str, typer.Option(help="Tenant id.")],
    session: Annotated[str, typer.Option(help="Session handle (as in the admin list).")],
    since: Annotated[
        str | None, typer.Option(help="Only records stamped at or after this ISO 8601 time.")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new records (Ctrl-C stops).")
    ] = False,
    revocations: Annotated[
        bool, typer.Option("--revocations", help="Also the session's revocation records.")
    ] = False,
    json_output: Json = False,
) -> None:
    """One session's records as JSON lines (partition, offset, timestamp, record), read from
    the one partition its key maps to; a session.expired says whether the registry signed it
    (`registry_signature`)."""
    try:
        check_session(tenant, session)
    except ValueError as exc:
        refuse(str(exc))
    start = moment(since, "--since")
    settings = RegistrySettings()

    async def work() -> int:
        with progress("reading", enabled=shows_progress(json_output) and not follow) as report:
            records = session_records(
                settings,
                settings.topics,
                tenant,
                session,
                since=start,
                follow=follow,
                revocations=revocations,
                report=report,
                expiries=settings.signed_expiries,
            )
            return await _drain(records, lambda r: line(r.as_json()))

    with contextlib.suppress(KeyboardInterrupt):  # --follow ends so
        run_cleanly(work())


dlq_app = typer.Typer(help="The dead-letter topic: list, show and redrive refused records.")


def _filter(
    reason: str | None,
    event_type: str | None,
    tenant: str | None,
    since: str | None,
    until: str | None,
) -> LetterFilter:
    return LetterFilter(
        reason=reason,
        type=event_type,
        tenant_id=tenant,
        since=moment(since, "--since"),
        until=moment(until, "--until"),
    )


Reason = Annotated[str | None, typer.Option(help="Substring of the reason (any case).")]
EventType = Annotated[str | None, typer.Option("--type", help="Record type, e.g. session.created.")]
Tenant = Annotated[str | None, typer.Option(help="Tenant id.")]
Since = Annotated[str | None, typer.Option(help="Dead-lettered at or after (ISO 8601).")]
Until = Annotated[str | None, typer.Option(help="Dead-lettered at or before (ISO 8601).")]


@dlq_app.command("list")
def dlq_list(
    reason: Reason = None,
    event_type: EventType = None,
    tenant: Tenant = None,
    since: Since = None,
    until: Until = None,
    json_output: Json = False,
) -> None:
    """The dead letters passing the filters, one JSON line each (offset, time, reason, type,
    tenant, source); not their bodies (see `show`)."""
    chosen = _filter(reason, event_type, tenant, since, until)
    settings = RegistrySettings()

    async def work() -> int:
        with progress("scanning", enabled=shows_progress(json_output)) as report:
            letters = dead_letters(settings, settings.topics, chosen, report=report)
            return await _drain(letters, lambda letter: line(letter.summary()))

    count = run_cleanly(work())
    if not json_output:
        typer.echo(f"{count} dead letters", err=True)


@dlq_app.command("show")
def dlq_show(
    offset: Annotated[int, typer.Argument(min=0, help="Offset in the dead-letter topic.")],
    raw: Annotated[
        bool,
        typer.Option(
            "--raw",
            help="Also the key and value as refused (a v1 record's session id is a "
            "credential: handle the output as a secret).",
        ),
    ] = False,
) -> None:
    """One dead letter in full: headers, the reason, and the record decoded now (upcast)."""
    settings = RegistrySettings()

    async def work() -> dict[str, Any] | None:
        letters = dead_letters(settings, settings.topics, LetterFilter(), offset=offset)
        async for letter in letters:
            await letters.aclose()
            return letter.detail(settings.topics, raw=raw) if letter.offset == offset else None
        return None

    found = run_cleanly(work())
    if found is None:
        refuse(f"no dead letter at offset {offset} of {settings.topics.dead_letters}", 1)
    line(found)


@dlq_app.command("redrive")
def dlq_redrive(
    reason: Reason = None,
    event_type: EventType = None,
    tenant: Tenant = None,
    since: Since = None,
    until: Until = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be redriven; send nothing.")
    ] = False,
    include_copies: Annotated[
        bool,
        typer.Option(
            "--include-copies",
            help="Send too the copies a registry dead-lettered again after an earlier redrive "
            "(skipped by default: their letters are redriven themselves).",
        ),
    ] = False,
    json_output: Json = False,
) -> None:
    """Put the dead letters passing the filters back on their source topic, decoded again
    (upcast) and re-keyed; skip what the read model shows applied, what is still refused, a
    record planned already in the same chunk, and the copies of letters redriven before."""
    chosen = _filter(reason, event_type, tenant, since, until)
    settings = RegistrySettings()

    async def work() -> Counter[str]:
        with progress("scanning", enabled=shows_progress(json_output)) as report:
            return await redrive(
                settings,
                settings.topics,
                settings.database_url,
                chosen,
                lambda plan: line(plan.as_json()),  # as each chunk is sent, then dropped
                dry_run=dry_run,
                report=report,
                copies=include_copies,
            )

    counts = run_cleanly(work())
    verb = "would redrive" if dry_run else "redrove"
    summary = (
        f"{verb} {counts['redrive']}, skipped {counts['skip']} (applied already, repeated, or "
        f"copies of letters redriven before), {counts['refused']} still refused"
    )
    if not json_output:
        typer.echo(summary, err=True)


positions_app = typer.Typer(
    help="The registry's stored positions (in its database: Kafka's group offsets are not read)."
)
Consumer = Annotated[
    str | None,
    typer.Option(help="Consumer name (default SESSIONS_CONSUMER_GROUP; a rebuild's name too)."),
]
TopicChoice = Annotated[str, typer.Option(help="events, commands or all.", case_sensitive=False)]


def _topic_names(settings: RegistrySettings, which: str) -> list[str]:
    topics = settings.topics
    choices = {"events": [topics.events], "commands": [topics.commands]}
    choices["all"] = choices["events"] + choices["commands"]
    if which.lower() not in choices:
        raise typer.BadParameter(f"{which!r}: choose events, commands or all", param_hint="--topic")
    return choices[which.lower()]


@positions_app.command("show")
def positions_show(
    consumer: Consumer = None, topic: TopicChoice = "all", json_output: Json = False
) -> None:
    """Per partition: stored position, log start and end, lag, and Kafka's committed offset
    (informational: the registry never reads it)."""
    settings = RegistrySettings()
    name = consumer or settings.consumer_group
    rows = run_cleanly(
        show_positions(
            settings,
            settings.database_url,
            name,
            _topic_names(settings, topic),
        )
    )
    if json_output:
        for row in rows:
            line(row.as_json())
        return
    typer.echo(f"consumer {name} on {redact_url(settings.database_url)}")
    typer.echo(
        f"{'topic':<40} {'part':>4} {'stored':>10} {'earliest':>10} {'end':>10} "
        f"{'lag':>8} {'kafka':>10}"
    )
    for row in rows:
        stored = "-" if row.stored is None else str(row.stored)
        committed = "-" if row.committed is None else str(row.committed)
        lag = "PAST END" if row.past_end else str(row.lag)
        typer.echo(
            f"{row.topic:<40} {row.partition:>4} {stored:>10} {row.earliest:>10} "
            f"{row.end:>10} {lag:>8} {committed:>10}"
        )


@positions_app.command("set")
def positions_set(
    to_datetime: Annotated[
        str | None,
        typer.Option(help="The first record stamped at or after this ISO 8601 time."),
    ] = None,
    to_offset: Annotated[int | None, typer.Option(min=0, help="This offset.")] = None,
    to_latest: Annotated[
        bool, typer.Option("--to-latest", help="The end: skip everything not read yet.")
    ] = False,
    to_earliest: Annotated[
        bool, typer.Option("--to-earliest", help="The beginning: read everything again.")
    ] = False,
    consumer: Consumer = None,
    topic: TopicChoice = "events",
    partition: Annotated[
        list[int] | None, typer.Option(min=0, help="Only this partition (repeatable).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would move.")] = False,
    json_output: Json = False,
) -> None:
    """Move the stored positions; refused while any registry of the group is running."""
    try:
        target = Target(
            moment=moment(to_datetime, "--to-datetime"),
            offset=to_offset,
            latest=to_latest,
            earliest=to_earliest,
        )
    except ValueError as exc:
        refuse(str(exc))
    settings = RegistrySettings()
    name = consumer or settings.consumer_group
    try:
        moves = run_cleanly(
            set_positions(
                settings,
                settings.database_url,
                name,
                _topic_names(settings, topic),
                target,
                partitions=partition,
                dry_run=dry_run,
            )
        )
    except RegistryRunning as exc:
        refuse(f"refused: {exc}", 3)
    except ValueError as exc:
        refuse(str(exc))
    for move in moves:
        if json_output:
            line(move.as_json())
        else:
            before = "-" if move.before is None else str(move.before)
            typer.echo(f"{move.topic} {move.partition}: {before} -> {move.after}")
    if not json_output:
        typer.echo(
            f"{'would set' if dry_run else 'set'} {len(moves)} positions of {name}", err=True
        )


def diff(
    other: Annotated[str, typer.Option(help="URL of the read model to compare (a rebuild).")],
    live: Annotated[
        str | None, typer.Option(help="URL of the live read model (SESSIONS_DATABASE_URL).")
    ] = None,
    ignore: Annotated[
        list[str] | None, typer.Option(help="A column of sessions not to compare (repeatable).")
    ] = None,
    all_sessions: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Compare ended sessions past the retention too (SESSIONS_ENDED_RETENTION_DAYS: "
            "the live registry deletes them, a rebuild keeps them until its first sweep).",
        ),
    ] = False,
    json_output: Json = False,
) -> None:
    """Compare two read models; print each session that differs (JSON lines) and exit 1 when
    any does, 0 when they are equal."""
    settings = RegistrySettings()
    left = live or settings.database_url
    retention = settings.ended_retention
    before = None if all_sessions or retention is None else datetime.now(UTC) - retention

    async def work() -> int:
        with progress("comparing", enabled=shows_progress(json_output)) as report:
            found = diff_read_models(
                left, other, ignore=ignore or (), past_retention_before=before, report=report
            )
            return await _drain(found, lambda d: line(d.as_json()))

    try:
        count = run_cleanly(work())
    except ValueError as exc:
        refuse(str(exc))
    if not json_output:
        typer.echo(
            f"{count} sessions differ between {redact_url(left)} (left) and "
            f"{redact_url(other)} (right)",
            err=True,
        )
    raise typer.Exit(1 if count else 0)
