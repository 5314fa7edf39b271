"""What the CLI's commands share: parsing times, printing JSON lines, reporting refusals."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, NoReturn

import typer

JSON_HELP = "Machine-readable output (JSON), and no progress bar."


def moment(text: str | None, option: str) -> datetime | None:
    """An ISO 8601 time with its zone (`2026-11-30T09:14:00Z`), or a usage error naming it."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-11-30T09:14:00Z)", param_hint=option
        ) from None
    if value.tzinfo is None:
        raise typer.BadParameter(
            f"{text!r} has no time zone: add Z or an offset such as +01:00", param_hint=option
        )
    return value


def line(value: Any) -> None:
    """Print one JSON line (and flush: `--follow` output reaches a pipe at once)."""
    typer.echo(json.dumps(value, default=str))


def refuse(message: str, code: int = 2) -> NoReturn:
    """Print why on stderr and exit with `code`."""
    typer.echo(message, err=True)
    raise typer.Exit(code)
