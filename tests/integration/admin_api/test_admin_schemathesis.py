"""Schemathesis, every check, against the app served by uvicorn over real HTTP.

Two runs, on the app's own OpenAPI document (`app.openapi()`, so it does not matter whether
the running app serves `/openapi.json`):

- the command `docs/admin-api.md` gives (`schemathesis run --checks all` with
  `deploy/schemathesis.toml`): examples, coverage, fuzzing and stateful phases;
- the Python API on positive and negative cases of every operation, where a schema-valid
  request may be refused only for the reasons no JSON Schema can state (a `cursor` this API
  did not sign; an idle timeout above the maximum length; an `If-Match` naming settings that
  are not the tenant's), checked by the answer's content.

`SESSIONS_SCHEMATHESIS_EXAMPLES` sets the examples per operation (and mode): the default keeps
CI time moderate, `1000` makes a soak; `SESSIONS_SCHEMATHESIS_SEED` draws the Python API's
cases from another seed (unset, they are the same on every run).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import schemathesis
import uvicorn
from admin_api_support import NOW, RecordingBus, insert, session_row
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.failures import AcceptedNegativeData, FailureGroup
from schemathesis.core.result import Ok
from schemathesis.openapi.checks import RejectedPositiveData
from sqlalchemy.ext.asyncio import AsyncEngine

from admin_api.app import create_app
from admin_api.settings import AdminApiSettings

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("SESSIONS_SCHEMATHESIS_EXAMPLES", "15"))
SEED = os.environ.get("SESSIONS_SCHEMATHESIS_SEED")
"""Another seed for the generated cases (a soak); unset, they are derandomized (CI's)."""
ROOT = Path(__file__).resolve().parents[3]
CONFIG = ROOT / "deploy" / "schemathesis.toml"
CLI = Path(sys.executable).parent / "schemathesis"


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """The app under uvicorn on a free port of 127.0.0.1, on this event loop."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def app(engine: AsyncEngine, settings: AdminApiSettings) -> FastAPI:
    """The admin API at NOW, over a read model with sessions to list, sort and page."""
    await insert(engine, [session_row() for _ in range(12)])
    await insert(engine, [session_row(session_type="mobile", device=None) for _ in range(4)])
    return create_app(settings, bus=RecordingBus(), clock=lambda: NOW)


async def test_the_documented_schemathesis_run_with_every_check_finds_nothing(
    app: FastAPI, auth: dict[str, str], tmp_path: Path
) -> None:
    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(app.openapi()))
    async with serving(app) as base_url:
        process = await asyncio.create_subprocess_exec(
            str(CLI),
            "--config-file",
            str(CONFIG),
            "run",
            str(document),
            "--url",
            base_url,
            "--checks",
            "all",
            "--header",
            f"Authorization: {auth['Authorization']}",
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            "1",
            "--workers",
            "1",
            "--no-color",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,
        )
        output, _ = await process.communicate()
    report = output.decode(errors="replace")
    summary = report[report.rfind("SUMMARY") :]
    assert process.returncode == 0, report[-20000:]
    assert "No issues found" in summary and "Tested: 11" in summary, summary
    print(summary)


def generated_cases(spec: dict[str, Any]) -> list[Any]:
    schema = schemathesis.openapi.from_dict(spec)
    cases: list[Any] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok)  # every operation of the spec loads
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                database=None,
                deadline=None,
                derandomize=SEED is None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(operation.as_strategy(generation_mode=mode))
            def collect(case: Any) -> None:
                cases.append(case)

            if SEED is not None:
                collect = seed(int(SEED))(collect)

            try:
                collect()
            except Unsatisfiable:  # nothing to make invalid (an operation without parameters)
                assert mode is GenerationMode.NEGATIVE
    return cases


def refused_only_for_what_no_schema_states(response: Any) -> bool:
    """A schema-valid request refused for a reason JSON Schema cannot express, and no other:
    a 422 for the two above, or a settings change whose `If-Match` names settings that are
    not the tenant's (412: a tag is any string to a schema)."""
    if response.status_code == 412:
        return "If-Match names others" in response.json()["detail"]
    if response.status_code != 422:
        return False
    for error in response.json()["detail"]:
        where, message = tuple(error["loc"]), error["msg"]
        unsigned_cursor = where == ("query", "cursor") and "not a cursor this API issued" in message
        idle_above_max = where == ("body",) and "must not exceed max_session_seconds" in message
        if not (unsigned_cursor or idle_above_max):
            return False
    return True


LIST_FOR_ONE = re.compile(
    r"query: violates `type` at /properties/(\w+)/anyOf/\d+ \(was null, became array\)"
)
"""A list drawn for a parameter of one string value (sent as the parameter repeated)."""


def invalid_only_as_generated(
    failure: AcceptedNegativeData, response: Any, spec: dict[str, Any], path: str, method: str
) -> bool:
    """A negative case whose every invalid part never reached the server as invalid, so that
    accepting what it got was right:
    - the missing `Authorization` header: the harness sends it with every case;
    - a query property the schema does not declare but the URL does not carry (an empty name
      with an empty list: nothing to send);
    - a list drawn for a parameter of one string value that went out as that parameter once
      (a list of one), its value valid for the parameter's string schema. Given more than once
      it is refused (`test_a_parameter_of_one_value_given_twice_is_422_naming_it`), so an
      acceptance then is still a failure."""
    parameters = {
        parameter["name"]: parameter["schema"]
        for parameter in spec["paths"][path][method.lower()].get("parameters", [])
        if parameter["in"] == "query"
    }
    sent = parse_qs(urlsplit(response.request.url).query, keep_blank_values=True)
    parts = [
        line.strip()[2:] for line in failure.message.splitlines() if line.strip().startswith("- ")
    ]
    for part in parts:
        if part == "header: violates `required` (was Authorization)":
            continue
        if part == "query: violates `additionalProperties`" and set(sent) <= set(parameters):
            continue
        listed = LIST_FOR_ONE.fullmatch(part)
        if listed and _one_valid_string(sent.get(listed[1], []), parameters[listed[1]]):
            continue
        return False
    return bool(parts)


def _one_valid_string(values: list[str], schema: dict[str, Any]) -> bool:
    """Whether `values` is one value valid for the string branch of `schema` (its length and
    pattern: what this API's string parameters constrain)."""
    strings = [branch for branch in schema.get("anyOf", [schema]) if branch.get("type") == "string"]
    if len(values) != 1 or len(strings) != 1:
        return False
    (value,), (string,) = values, strings
    if len(value) < string.get("minLength", 0) or len(value) > string.get("maxLength", len(value)):
        return False
    return "pattern" not in string or re.search(string["pattern"], value) is not None


def exercise(base_url: str, auth: dict[str, str], spec: dict[str, Any]) -> dict[str, Any]:
    """Send every generated case, run every check; what failed, what was explained."""
    load_all_checks()
    checks = list(CHECKS.get_all())
    failures: list[str] = []
    explained = 0
    statuses: dict[int, int] = {}
    for case in generated_cases(spec):
        response = case.call(base_url=base_url, headers=auth)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        try:
            case.validate_response(
                response,
                checks=checks,
                headers=auth,
                transport_kwargs={"base_url": base_url, "headers": auth},
            )
        except FailureGroup as group:
            rest = [
                failure
                for failure in group.exceptions
                if not (
                    isinstance(failure, RejectedPositiveData)
                    and refused_only_for_what_no_schema_states(response)
                )
                # a refusal Schemathesis does not count as one unless told (as the CLI's
                # deploy/schemathesis.toml does): the size limits' 413 and 414
                and not (
                    isinstance(failure, AcceptedNegativeData) and response.status_code in (413, 414)
                )
                and not (
                    isinstance(failure, AcceptedNegativeData)
                    and invalid_only_as_generated(
                        failure, response, spec, case.operation.path, case.method
                    )
                )
            ]
            explained += len(rest) < len(group.exceptions)
            if rest:
                request = response.request
                failures.append(
                    f"{request.method} {request.url} {request.body!r} (query {case.query!r}, "
                    f"headers {sorted(case.headers or {})}): "
                    + "; ".join(f"{type(f).__name__}: {f.title} {f.message}" for f in rest)
                    + f" -> {response.status_code} {response.text[:500]}"
                )
    return {"failures": failures, "explained": explained, "statuses": statuses}


async def test_every_check_passes_on_generated_requests_save_what_no_schema_states(
    app: FastAPI, auth: dict[str, str]
) -> None:
    async with serving(app) as base_url:
        outcome = await asyncio.to_thread(exercise, base_url, auth, app.openapi())
    assert not outcome["failures"], "\n\n".join(outcome["failures"][:10])
    statuses = outcome["statuses"]
    # the generated input got past authentication to the handlers, valid and invalid alike
    enough = EXAMPLES * 5 // 3
    assert statuses.get(200, 0) > enough and statuses.get(422, 0) > enough, statuses
    print(outcome["statuses"], "explained:", outcome["explained"])
