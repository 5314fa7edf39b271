"""Contract v3: a command by filter carries `confirmed_at`, the moment of the count the admin
confirmed; v2 commands are upcast (codec.UPCASTERS[2]) to end exactly what they ended."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from session_contracts.codec import DecodeError, decode_command, decode_event
from session_contracts.handles import session_handle
from session_contracts.models import SCHEMA_VERSION, SessionFilter, TerminateSessions

REQUESTED = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def v2_command(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "sessions.terminate",
        "schema_version": 2,
        "command_id": str(uuid.uuid4()),
        "requested_at": "2026-11-30T10:00:00+01:00",
        "tenant_id": "acme",
        "requested_by": "admin-1",
    }
    body.update(overrides)
    return body


def test_the_current_version_is_3() -> None:
    assert SCHEMA_VERSION == 3


def test_a_v2_filter_command_is_bounded_by_its_requested_at() -> None:
    command = decode_command(json.dumps(v2_command(filter={"policy_outdated": True})).encode())
    assert command.schema_version == 3
    assert command.confirmed_at == REQUESTED == command.requested_at
    assert command.filter == SessionFilter(policy_outdated=True)


def test_a_v2_command_by_ids_gains_nothing() -> None:
    handle = session_handle("acme", "s-1")
    command = decode_command(json.dumps(v2_command(session_ids=[handle])).encode())
    assert command.confirmed_at is None and command.session_ids == [handle]


def test_a_v1_filter_command_is_upcast_through_v2_to_v3() -> None:
    command = decode_command(
        json.dumps(v2_command(schema_version=1, filter={"session_type": ["browser"]})).encode()
    )
    assert command.schema_version == 3 and command.confirmed_at == REQUESTED


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("by", ["filter", "ids"])
def test_a_v1_or_v2_record_carrying_confirmed_at_is_refused(version: int, by: str) -> None:
    # v2's models forbade fields they did not have, so no v2 reader applied such a record; an
    # earlier bound taken from it would have ended fewer sessions than the command ended in v2
    target: dict[str, Any] = (
        {"filter": {"policy_outdated": True}}
        if by == "filter"
        else {"session_ids": [session_handle("acme", "s-1")]}
    )
    body = v2_command(schema_version=version, confirmed_at="2026-11-30T08:30:00Z", **target)
    with pytest.raises(DecodeError, match="schema_version 1 or 2 has no confirmed_at"):
        decode_command(json.dumps(body).encode())


def test_a_v2_event_changes_only_its_version() -> None:
    handle = session_handle("acme", "s-1")
    raw = {
        "type": "session.activity",
        "schema_version": 2,
        "event_id": str(uuid.uuid4()),
        "occurred_at": "2026-11-30T09:00:00Z",
        "tenant_id": "acme",
        "session_id": handle,
    }
    event = decode_event(json.dumps(raw).encode())
    assert event.schema_version == 3 and event.session_id == handle


def _v3(**overrides: Any) -> dict[str, Any]:
    return v2_command(schema_version=3, **overrides)


def test_a_v3_filter_command_without_confirmed_at_is_refused() -> None:
    with pytest.raises(DecodeError, match="needs confirmed_at"):
        decode_command(json.dumps(_v3(filter={})).encode())


def test_confirmed_at_goes_only_with_a_filter() -> None:
    handle = session_handle("acme", "s-1")
    body = _v3(session_ids=[handle], confirmed_at="2026-11-30T08:59:00Z")
    with pytest.raises(DecodeError, match="only with a filter"):
        decode_command(json.dumps(body).encode())


def test_confirmed_at_is_not_after_requested_at() -> None:
    with pytest.raises(ValidationError, match="not be later than requested_at"):
        TerminateSessions(
            command_id=uuid.uuid4(),
            requested_at=REQUESTED,
            tenant_id="acme",
            requested_by="admin-1",
            filter=SessionFilter(),
            confirmed_at=REQUESTED + timedelta(seconds=1),
        )


def test_confirmed_at_follows_the_timestamp_rules() -> None:
    with pytest.raises(DecodeError, match="confirmed_at"):
        decode_command(json.dumps(_v3(filter={}, confirmed_at="2026-11-30T08:59:00")).encode())
    ok = decode_command(
        json.dumps(_v3(filter={}, confirmed_at="2026-11-30T09:59:00+01:00")).encode()
    )
    assert ok.confirmed_at == REQUESTED - timedelta(minutes=1)


def test_the_api_request_takes_confirmed_at_with_a_filter_only() -> None:
    from admin_api.entrypoints.schemas import TerminationRequest

    ok = TerminationRequest.model_validate({"filter": {}, "confirmed_at": "2026-11-30T09:00:00Z"})
    assert ok.confirmed_at == REQUESTED
    with pytest.raises(ValidationError, match="only with a filter"):
        TerminationRequest.model_validate(
            {"session_ids": [session_handle("acme", "s")], "confirmed_at": "2026-11-30T09:00:00Z"}
        )
    with pytest.raises(ValidationError, match="confirmed_at"):
        TerminationRequest.model_validate({"filter": {}, "confirmed_at": 1764493200})
