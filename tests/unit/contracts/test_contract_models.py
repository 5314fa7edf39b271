"""The contract's field rules, enforced by the models every service imports."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from auth_gateway import GatewaySettings
from session_contracts.codec import (
    MAX_RECORD_BYTES,
    DecodeError,
    decode_command,
    decode_event,
    encode,
)
from session_contracts.handles import session_handle
from session_contracts.models import (
    SessionCreated,
    SessionFilter,
    SessionTerminated,
    TerminateSessions,
)
from session_contracts.settings import KafkaSettings


def created(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "session.created",
        "schema_version": 3,
        "event_id": str(uuid.uuid4()),
        "occurred_at": "2026-11-26T10:00:00+01:00",
        "tenant_id": "acme-eu.1",
        "session_id": session_handle("acme-eu.1", "s-1"),
        "user_id": "u-1",
        "user_name": "Ada Lovelace",
        "session_type": "browser",
        "ip_address": "2001:db8::1",
        "policy": {"max_session_seconds": 3600, "idle_timeout_seconds": 600},
    }
    body.update(overrides)
    return body


def test_a_valid_event_round_trips_and_is_stored_in_utc() -> None:
    event = decode_event(json.dumps(created()).encode())
    assert isinstance(event, SessionCreated)
    assert event.occurred_at == datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    assert event.occurred_at.utcoffset() == timedelta(0)
    assert decode_event(encode(event)) == event


def test_events_are_frozen() -> None:
    event = SessionCreated.model_validate(created())
    with pytest.raises(ValidationError):
        event.user_name = "Mallory"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"tenant_id": "acme/eu"}, "tenant_id"),
        ({"tenant_id": "x" * 65}, "tenant_id"),
        ({"session_id": "has space"}, "session_id"),
        ({"session_id": "s" * 129}, "session_id"),
        ({"session_id": "s-1"}, "session_id"),  # a v1 id (a credential) is not a handle
        ({"session_id": session_handle("acme", "s-1") + "A"}, "session_id"),
        ({"session_id": session_handle("acme", "s-1")[:42] + "="}, "session_id"),
        ({"session_id": 12345}, "session_id"),
        ({"ip_address": "10.0.0.256"}, "ip_address"),
        ({"user_name": ""}, "user_name"),
        ({"user_name": "Ada\x00Lovelace"}, "control character"),
        ({"user_id": "u-1\nERROR forged log line"}, "user_id"),
        ({"device": "Pixel\x1b[31m"}, "device"),
        ({"user_agent": "a" * 1025}, "user_agent"),
        ({"policy": {"max_session_seconds": 0, "idle_timeout_seconds": 1}}, "max_session_seconds"),
        (
            {"policy": {"max_session_seconds": 1, "idle_timeout_seconds": -5}},
            "idle_timeout_seconds",
        ),
        ({"occurred_at": "2026-11-26T10:00:00"}, "occurred_at"),
        ({"occurred_at": "0001-01-01T00:00:00+01:00"}, "out of range"),
        ({"session_type": "smartwatch"}, "session_type"),
        ({"event_id": "not-a-uuid"}, "event_id"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_field_that_breaks_the_contract_is_refused_by_name(
    override: dict[str, Any], named: str
) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_event(json.dumps(created(**override)).encode())
    assert named in caught.value.reason


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "malformed JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "expected a JSON object"),
        (json.dumps(created(type="session.teleported")).encode(), "unknown event type"),
        (json.dumps(created(schema_version=4)).encode(), "newer than this consumer reads"),
        (json.dumps(created(schema_version="2")).encode(), "must be an integer"),
        (json.dumps(created(schema_version=True)).encode(), "must be an integer"),
        (json.dumps(created(schema_version=2.0)).encode(), "must be an integer"),
        (json.dumps(created(schema_version=1.0)).encode(), "must be an integer"),
        (json.dumps(created(schema_version=0)).encode(), "schema_version 0 is unknown"),
        (b"{" + b" " * MAX_RECORD_BYTES + b"}", "exceeds"),
        (None, "empty record"),
        (b"[" * 100_000 + b"]" * 100_000, "record of"),
    ],
)
def test_undecodable_records_say_why(raw: bytes | None, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_event(raw)
    assert reason in caught.value.reason


def test_deeply_nested_json_within_the_size_limit_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="JSON"):
        decode_event(b"[" * 20_000 + b"]" * 20_000)


def test_termination_reason_is_one_of_the_contract() -> None:
    base = {
        k: v for k, v in created().items() if k in SessionTerminated.model_fields and k != "type"
    }
    assert SessionTerminated.model_validate({**base, "reason": "logout"}).reason == "logout"
    with pytest.raises(ValidationError, match="reason"):
        SessionTerminated.model_validate({**base, "type": "session.terminated", "reason": "bored"})


def command(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "sessions.terminate",
        "schema_version": 3,
        "command_id": str(uuid.uuid4()),
        "requested_at": datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-5))).isoformat(),
        "tenant_id": "acme",
        "requested_by": "admin-1",
    }
    body.update(overrides)
    return body


def test_a_command_takes_ids_or_a_filter_never_both_nor_neither() -> None:
    a, b = session_handle("acme", "a"), session_handle("acme", "b")
    by_ids = decode_command(json.dumps(command(session_ids=[a, b])).encode())
    assert by_ids.session_ids == [a, b]
    assert by_ids.reason == "admin"
    by_filter = decode_command(
        json.dumps(
            command(
                filter={"session_type": ["mobile"], "ip_address": "10.0.0.0/8"},
                confirmed_at="2026-01-01T04:59:00Z",
            )
        ).encode()
    )
    assert by_filter.filter is not None
    for wrong in (command(), command(session_ids=[a], filter={}, confirmed_at=None)):
        with pytest.raises(DecodeError, match="exactly one of session_ids or filter"):
            decode_command(json.dumps(wrong).encode())


def test_a_command_names_at_most_1000_sessions() -> None:
    ids = [session_handle("acme", f"s{i}") for i in range(1001)]
    TerminateSessions.model_validate(command(session_ids=ids[:1000]))
    with pytest.raises(ValidationError, match="session_ids"):
        TerminateSessions.model_validate(command(session_ids=ids))


def test_a_command_names_sessions_by_handle_only() -> None:
    with pytest.raises(DecodeError, match=r"session_ids\.0"):
        decode_command(json.dumps(command(session_ids=["s-1"])).encode())


def test_filter_ip_accepts_addresses_and_networks_only() -> None:
    assert str(SessionFilter(ip_address="10.1.2.3").network()) == "10.1.2.3/32"
    assert str(SessionFilter(ip_address="10.1.0.0/16").network()) == "10.1.0.0/16"
    assert str(SessionFilter(ip_address="2001:db8::/32").network()) == "2001:db8::/32"
    with pytest.raises(ValidationError, match="ip_address"):
        SessionFilter(ip_address="10.1.0.0/33")


def test_kafka_settings_take_the_broker_by_keyword_or_either_name_never_two_lists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("SESSIONS_KAFKA_BOOTSTRAP_SERVERS", "10.0.0.1:9092")
    assert KafkaSettings().kafka_bootstrap_servers == "10.0.0.1:9092"
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", " 10.0.0.1:9092 ")  # the same list
    assert KafkaSettings().kafka_bootstrap_servers.strip() == "10.0.0.1:9092"
    # a platform service's own KAFKA_BOOTSTRAP_SERVERS won over the sessions cluster's, and a
    # gateway followed an empty revocations topic there, current (a review, stop 70)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "10.0.0.2:9092")
    with pytest.raises(ValidationError, match="name different brokers: unset the one"):
        KafkaSettings()
    with pytest.raises(ValidationError, match="name different brokers"):
        GatewaySettings()
    assert KafkaSettings(kafka_bootstrap_servers="10.0.0.3:9092").kafka_bootstrap_servers == (
        "10.0.0.3:9092"
    )
    # as the settings read them: a newline after the value (a YAML block), a name in lower
    # case (a review of the first version); the same brokers in another order are one list
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "10.0.0.2:9092\n")
    with pytest.raises(ValidationError, match="name different brokers"):
        KafkaSettings()
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS")
    monkeypatch.setenv("kafka_bootstrap_servers", "10.0.0.2:9092")
    with pytest.raises(ValidationError, match="name different brokers"):
        KafkaSettings()
    # two spellings of one name: the settings keep the last set, and so does the check (a
    # review of the fix)
    monkeypatch.delenv("kafka_bootstrap_servers")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "10.0.0.1:9092")
    monkeypatch.setenv("kafka_bootstrap_servers", "10.0.0.2:9092")
    with pytest.raises(ValidationError, match="name different brokers"):
        KafkaSettings()
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS")
    monkeypatch.setenv("kafka_bootstrap_servers", "10.0.0.2:9092, 10.0.0.1:9092")
    monkeypatch.setenv("SESSIONS_KAFKA_BOOTSTRAP_SERVERS", "10.0.0.1:9092,10.0.0.2:9092")
    assert KafkaSettings().kafka_bootstrap_servers == "10.0.0.2:9092, 10.0.0.1:9092"
    monkeypatch.delenv("kafka_bootstrap_servers")
    monkeypatch.delenv("SESSIONS_KAFKA_BOOTSTRAP_SERVERS")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "10.0.0.2:9092")
    assert KafkaSettings().kafka_bootstrap_servers == "10.0.0.2:9092"
