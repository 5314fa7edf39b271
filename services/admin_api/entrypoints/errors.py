"""The use cases' refusals (`domain.errors`) become 404, 422 and 429, errors that are not the
caller's fault 503 with a reason, never a bare 500; and the statuses every operation can
answer, declared once for the OpenAPI document."""

from __future__ import annotations

import logging
import math
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from admin_api.adapters.bus import BusUnavailable
from admin_api.domain.errors import (
    ExportsBusy,
    InvalidParameter,
    NotFound,
    OutcomeUnknown,
    SearchBudgetSpent,
    SettingsChangedMeanwhile,
)
from read_model.postgres import EXACT_COUNT_TIMEOUT, STATEMENT_TIMEOUT
from read_model.revisions import SchemaStanding, read_standing
from session_contracts.escaping import escape_reason
from session_contracts.http_answers import validation_failed

log = logging.getLogger(__name__)


async def _bus_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning(
        "Kafka unavailable for %s: %s",
        escape_reason(request.url.path),
        escape_reason(str(exc)),
    )
    if getattr(exc, "maybe_written", False):
        # a record sent and not acknowledged in time may have been written before the answer
        # was lost: "nothing was changed" would be more than is known (a review, 2026-12-06)
        return _outcome_unknown(
            "the command bus (Kafka) did not acknowledge in time; the change may still be "
            "applied: retry (with the same Idempotency-Key it is the same command; a session "
            "ended twice is ended once)"
        )
    return JSONResponse(
        {"detail": "the command bus (Kafka) is unavailable; nothing was changed, retry"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "5"},
    )


OUTCOME_UNKNOWN = "outcome_unknown"
"""`reason` of a 503 for a change Kafka took, or may have taken, while this request failed:
the admin page says the change may be applied and offers to send the same request again,
never "nothing was changed"."""


def _outcome_unknown(detail: str) -> JSONResponse:
    return JSONResponse(
        {"detail": detail, "reason": OUTCOME_UNKNOWN},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "5"},
    )


async def _unknown_outcome(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OutcomeUnknown)
    cause = exc.__cause__
    # the cause's first line only: a database error goes on to quote the statement's values
    first = str(cause).splitlines()[0] if cause is not None and str(cause) else "no detail"
    log.error(
        "%s for %s: %s: %s",
        exc.detail,
        escape_reason(request.url.path),
        type(cause).__name__,
        escape_reason(first),
        extra=exc.log_extra,
    )
    return _outcome_unknown(exc.detail)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # the path is percent-decoded: it can hold U+2028, U+202E, escape sequences (issue 12 item 9)
    log.warning(
        "database unavailable for %s: %s",
        escape_reason(request.url.path),
        escape_reason(str(exc)),
    )
    return JSONResponse(
        {"detail": "the session database is unavailable, retry"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "5"},
    )


QUERY_CANCELED = "57014"
"""PostgreSQL's SQLSTATE for a statement stopped by its `statement_timeout` (or cancelled)."""
TIME_LIMIT = "time_limit"
"""`reason` of a 503 for a statement the database stopped at its time limit: the admin page
says to narrow the search, not to wait for a service that is up."""


UNDEFINED_OBJECT = frozenset({"42883", "42P01", "42703"})
"""PostgreSQL's SQLSTATEs for a function, a table or a column that does not exist."""
SQLITE_UNDEFINED = ("no such table:", "no such column:", "no such function:")
"""How SQLite's errors for the same begin (an `OperationalError`, it has no SQLSTATE)."""
SCHEMA_BEHIND = "schema_behind"
"""`reason` of a 503 for a statement that called what a revision the database lacks creates:
the schema is older than this release (the admin API was upgraded before the registry)."""


async def _schema_behind(request: Request) -> SchemaStanding | None:
    """The database's standing when it is behind this release; None when it is not, or when
    it cannot be read (the error is then the server's own)."""
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        return None
    try:
        standing = await read_standing(runtime.engine)
    except Exception:  # unreadable: the statement's own error is the one to answer
        return None
    return standing if standing.state == "behind" else None


def _answer_schema_behind(
    request: Request, standing: SchemaStanding, exc: Exception
) -> JSONResponse:
    log.error(
        "schema %s: %s failed on %s",
        standing.describe(),
        escape_reason(request.url.path),
        escape_reason(str(exc).splitlines()[0]),
    )
    return JSONResponse(
        {
            "detail": "the session database's schema is older than this release of the "
            "admin API; nothing was changed: retry once it is migrated "
            "(`session-registry migrate`)",
            "reason": SCHEMA_BEHIND,
        },
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "30"},
    )


async def _operational(request: Request, exc: Exception) -> JSONResponse:
    """The database is unavailable for this request; but on SQLite, a statement that met a
    table, column or function a schema behind this release lacks is that schema's (the 503
    `schema_behind`, as PostgreSQL's SQLSTATEs are in `_connection_lost`)."""
    orig = getattr(exc, "orig", None)
    if (
        isinstance(exc, OperationalError)
        and not exc.connection_invalidated
        and str(orig).startswith(SQLITE_UNDEFINED)
        and (standing := await _schema_behind(request))
    ):
        return _answer_schema_behind(request, standing, exc)
    return await _database_unavailable(request, exc)


async def _connection_lost(request: Request, exc: Exception) -> JSONResponse:
    """A statement that met a connection the server had ended (asyncpg raises it as an
    InternalError): the database is unavailable for this request; one the database stopped
    at its time limit, a 503 saying so; one that called a function, table or column a schema
    behind this release lacks, a 503 saying so; any other DBAPI error is the server's own
    fault, a 500."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return await _database_unavailable(request, exc)
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if sqlstate in UNDEFINED_OBJECT and (standing := await _schema_behind(request)):
        return _answer_schema_behind(request, standing, exc)
    if sqlstate == QUERY_CANCELED:
        log.warning("a statement timed out for %s", escape_reason(request.url.path))
        return JSONResponse(
            {
                "detail": "the database stopped this request at its time limit "
                f"({STATEMENT_TIMEOUT}; an exact count {EXACT_COUNT_TIMEOUT}): narrow the "
                "search or filter, or retry later",
                "reason": TIME_LIMIT,
            },
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )
    raise exc


async def _too_many(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SearchBudgetSpent | ExportsBusy)
    body = {"detail": str(exc)}
    if isinstance(exc, ExportsBusy):
        body["reason"] = "exports_busy"
    return JSONResponse(
        body,
        status_code=status.HTTP_429_TOO_MANY_REQUESTS,
        headers={"Retry-After": str(math.ceil(exc.retry_after))},
    )


async def _changed_meanwhile(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SettingsChangedMeanwhile)
    return JSONResponse({"detail": exc.detail}, status_code=status.HTTP_412_PRECONDITION_FAILED)


async def _not_found(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NotFound)
    return await http_exception_handler(
        request, HTTPException(status.HTTP_404_NOT_FOUND, exc.detail)
    )


def invalid_input(where: str, *errors: tuple[str, str, object]) -> RequestValidationError:
    """A 422 naming each parameter of `errors` (field, message, value) in `where` ("query",
    "header"), as FastAPI's own validation answers."""
    return RequestValidationError(
        [
            {"type": "value_error", "loc": (where, field), "msg": message, "input": value}
            for field, message, value in errors
        ]
    )


def invalid_query(*errors: tuple[str, str, object]) -> RequestValidationError:
    """A 422 naming each query parameter of `errors` (field, message, value)."""
    return invalid_input("query", *errors)


async def _invalid_parameter(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidParameter)
    return await validation_failed(request, invalid_query((exc.field, exc.message, exc.value)))


def install_error_handlers(app: FastAPI) -> None:
    """Map bad input and the use cases' refusals to 422 and 404 as FastAPI answers them, a
    tenant's spent search budget or exports all taken to 429, and unavailable dependencies to
    503."""
    app.add_exception_handler(RequestValidationError, validation_failed)
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(SettingsChangedMeanwhile, _changed_meanwhile)
    app.add_exception_handler(SearchBudgetSpent, _too_many)
    app.add_exception_handler(ExportsBusy, _too_many)
    app.add_exception_handler(InvalidParameter, _invalid_parameter)
    app.add_exception_handler(BusUnavailable, _bus_unavailable)
    app.add_exception_handler(OutcomeUnknown, _unknown_outcome)
    # OSError: a refused or timed-out connection, which asyncpg raises as it is (unwrapped)
    app.add_exception_handler(OperationalError, _operational)
    for error in (InterfaceError, PoolTimeout, OSError):
        app.add_exception_handler(error, _database_unavailable)
    app.add_exception_handler(DBAPIError, _connection_lost)


Reason = Literal["time_limit", "schema_behind", "outcome_unknown", "exports_busy"]


class ErrorBody(BaseModel):
    """Every refusal but a 422: what went wrong, in words."""

    detail: str = Field(examples=["missing bearer token"])
    reason: Reason | None = Field(
        default=None,
        description="On a 503: `time_limit` when the database stopped the request at its "
        "time limit (a search or filter too broad for it: narrow it); `schema_behind` when "
        "the database is not yet migrated to this release (retry after the upgrade); "
        "`outcome_unknown` when Kafka took a change, or may have, and the request failed "
        "after it: the change may be applied (retry: a termination with the same "
        "`Idempotency-Key` is the same command); absent when a dependency is unavailable "
        "and nothing was changed. On a 429: `exports_busy` when your tenant already "
        "has as many CSV exports streaming as it may (retry once one has finished); absent "
        "when a budget is spent.",
    )


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "required": True, "schema": {"type": "string"}}


ERROR_RESPONSES: dict[int, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body is not decodable (not UTF-8 JSON)."},
    401: {
        "model": ErrorBody,
        "description": "Missing, malformed, badly signed, expired or foreign-audience token.",
        "headers": {"WWW-Authenticate": _header("`Bearer`")},
    },
    403: {"model": ErrorBody, "description": "The token lacks the `edit_user_sessions` grant."},
    404: {"model": ErrorBody, "description": "None in your tenant (another tenant's is 404 too)."},
    413: {"model": ErrorBody, "description": "The body is over `SESSIONS_MAX_BODY_BYTES`."},
    414: {"model": ErrorBody, "description": "The query is over `SESSIONS_MAX_QUERY_BYTES`."},
    412: {
        "model": ErrorBody,
        "description": "`If-Match` names settings that are no longer the tenant's: another "
        "change was stored since they were read. Nothing was changed.",
    },
    429: {
        "model": ErrorBody,
        "description": "A search (`q`, `user_name`, `session_id`, `device`), or a termination "
        "by a filter with one: your tenant's searches (`SESSIONS_SEARCH_SECONDS_PER_MINUTE`), "
        "or its terminations by such filters (`SESSIONS_FILTER_TERMINATION_SECONDS_PER_MINUTE`), "
        "have used their time per minute (one budget shared by the admin API's processes); "
        "or, for a CSV export (`reason`: `exports_busy`), your tenant already has "
        "`SESSIONS_EXPORTS_PER_TENANT` exports streaming from this server; nothing was "
        "changed. Retry after `Retry-After` seconds, or narrow the search.",
        "headers": {"Retry-After": _header("Seconds until your tenant's request may go on.")},
    },
    503: {
        "model": ErrorBody,
        "description": "The database (or, for changes, Kafka) is unavailable, or the "
        "database stopped the request at its time limit (`reason`: `time_limit`: narrow the "
        "search or filter), or its schema is not yet migrated to this release (`reason`: "
        "`schema_behind`); nothing was changed, retry. But with `reason` `outcome_unknown` "
        "(a termination or a settings change): Kafka took the change, or may have, and the "
        "request failed after it, so it may be applied; retry (a termination with the same "
        "`Idempotency-Key` is the same command).",
        "headers": {"Retry-After": _header("Seconds to wait before retrying.")},
    },
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these statuses, with the body the API sends for each."""
    return {code: ERROR_RESPONSES[code] for code in codes}


ANY_REQUEST = error_responses(413, 414)
"""Checked for every request before routing (`limits.RequestLimits`)."""
PROTECTED = error_responses(401, 403, 413, 414, 503)
"""Every `/api/v1` operation: authentication, the grant, size limits, the database."""
