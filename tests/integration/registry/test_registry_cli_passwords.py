"""`session-registry` prints database URLs without their password: migrate, status, rebuild."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from registry_helpers import registry_cli, sibling_database
from sqlalchemy.engine import make_url

from session_contracts.topics import Topics


def _spelled_out(url: str) -> tuple[str, list[str]]:
    """`url` with its password percent-encoded char by char, and the forms a leak would show."""
    password = make_url(url).password
    assert password, "the test needs a PostgreSQL URL with a password"
    encoded = "".join(f"%{ord(char):02X}" for char in password)
    # the URL as given (encoded) is a marker no other text carries; re-rendered it is `:pw@`
    return url.replace(f":{password}@", f":{encoded}@", 1), [encoded, f":{password}@"]


@pytest.mark.postgres
@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_no_command_prints_the_database_password(
    db_url: str, topics: Topics, kafka_bootstrap: str, tmp_path: Path
) -> None:
    live, leaks = _spelled_out(db_url)
    rebuilt, drop = await sibling_database(db_url, tmp_path)
    into, _ = _spelled_out(rebuilt)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SESSIONS_TOPIC_PREFIX": topics.prefix,
        "SESSIONS_DATABASE_URL": live,
    }
    try:
        outputs = {
            # refused before migrating: the live database has no read model yet
            "rebuild --swap": await registry_cli(
                env, "rebuild", "--into", into, "--swap", status=2
            ),
            "migrate": await registry_cli(env, "migrate", "--database-url", live),
            "status": await registry_cli(env, "status"),
            "rebuild": await registry_cli(env, "rebuild", "--into", into),
        }
    finally:
        await drop()
    for command, run in outputs.items():
        output = run.output
        assert not [leak for leak in leaks if leak in output], f"{command}: {output}"
        assert f"{make_url(live).username}:***@" in output, f"{command}: {output}"


@pytest.mark.parametrize(
    ("setting", "value", "rule"),
    [
        (
            "SESSIONS_SWEEP_INTERVAL_SECONDS",
            "five",
            "sweep_interval_seconds: Input should be a valid number",
        ),
        # alone: the key length is checked once every field is read, and pydantic skips that
        # check when a field is refused, so beside "five" a short key was never looked at
        (
            "SESSIONS_RECORD_SIGNING_KEYS",
            "a-short-signing-key",  # under 32 characters: refused
            "record_signing_keys: key 1 is shorter than 32 characters",
        ),
    ],
    ids=["mistyped_number", "short_key"],
)
@pytest.mark.parametrize(
    "command",
    [("status",), ("positions", "show"), ("rebuild", "--into", "sqlite+aiosqlite:////tmp/x.db")],
)
async def test_a_refused_setting_ends_a_command_with_one_line_naming_it(
    command: tuple[str, ...], setting: str, value: str, rule: str
) -> None:
    """A mistyped `SESSIONS_*` variable printed forty lines of traceback (noticed at stop 70):
    one line now, naming the setting and the rule, never the value, exit 2."""
    env = {**os.environ, setting: value}
    done = await registry_cli(env, *command, status=2)
    said = done.stderr.strip()
    assert said.startswith("session-registry: settings refused: ")
    assert rule in said, said
    assert "Traceback" not in said and "\n" not in said
    assert value not in done.output
