"""What the CLI's commands share: parsing times, printing JSON lines, reporting refusals."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, NoReturn

import typer
from pydantic import ValidationError

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


def settings_problems(error: ValidationError) -> str:
    """What a refused setting says, one clause each: the setting and the rule, never a value
    (every settings class hides the input from its errors)."""
    clauses = []
    for problem in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in problem["loc"])
        clauses.append(f"{where}: {problem['msg']}" if where else problem["msg"])
    return "; ".join(clauses)


class Cli(typer.Typer):
    """A command line whose refused settings (a `SESSIONS_*` variable of the wrong form) end
    it with one line naming them and exit code 2: each command builds its settings when it
    starts, and a mistyped variable printed forty lines of traceback (noticed at stop 70)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except ValidationError as refused:
            name = kwargs.get("prog_name") or "session-registry"
            typer.echo(f"{name}: settings refused: {settings_problems(refused)}", err=True)
            raise SystemExit(2) from None
