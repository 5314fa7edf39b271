"""Progress of the CLI's long operations: rich's progress bar on a terminal, nothing elsewhere.

Shown on stderr only when stderr is a terminal and the command was not asked for `--json`, so
piped or scripted runs print nothing but their results. The service layer reports through a
plain callback (`Report`: records done, records in all) and never sees rich.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from session_registry.service_layer.reporting import Report


class RateColumn(ProgressColumn):
    """Records per second, as rich measures it over the last seconds."""

    def render(self, task: Task) -> Text:
        """`12,345 records/s`, or `- records/s` before there is a speed."""
        speed = task.finished_speed or task.speed
        return Text(f"{'-' if speed is None else f'{speed:,.0f}'} records/s")


def shows_progress(json_output: bool) -> bool:
    """Whether to draw a bar: on a terminal, and not when machine-readable output was asked."""
    return not json_output and sys.stderr.isatty()


@contextmanager
def progress(description: str, *, enabled: bool) -> Iterator[Report | None]:
    """A `Report` drawing a bar on stderr (records/s, ETA) while the block runs; None when
    not `enabled`."""
    if not enabled:
        yield None
        return
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    task = bar.add_task(description, total=None)

    def report(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total or None)

    with bar:
        yield report
