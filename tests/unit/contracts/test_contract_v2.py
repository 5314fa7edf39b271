"""Contract v2: handles instead of credentials, tenant-qualified keys, v1 records upcast.

Each test tries to break one promise: a v1 record must name the session a v2 gateway derives
from the same credential; a credential must never reach the wire; `schema_version` must be the
integer on every path; another tenant's credential must never name this tenant's session.
"""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from session_contracts.codec import (
    DecodeError,
    decode_command,
    decode_event,
    decode_revocation,
    decode_settings,
    encode,
)
from session_contracts.handles import is_handle, record_key, session_handle, split_record_key
from session_contracts.models import (
    SessionActivity,
    SessionCreated,
    SessionPolicy,
    SessionType,
    TerminationReason,
)
from session_contracts.publisher import (
    activity_event,
    created_event,
    event_key,
    terminated_event,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)
CREDENTIAL = "Zx81-cookie-value_1"


def _v1(kind: str, **fields: Any) -> bytes:
    bodies: dict[str, dict[str, Any]] = {
        "session.created": {
            "user_id": "u-1",
            "user_name": "Ada",
            "session_type": "browser",
            "ip_address": "10.0.0.1",
            "policy": {"max_session_seconds": 3600, "idle_timeout_seconds": 600},
        },
        "session.activity": {},
        "session.terminated": {"reason": "logout"},
        "session.expired": {"reason": "idle"},
    }
    body = {
        "type": kind,
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "occurred_at": "2030-01-01T00:00:00Z",
        "tenant_id": "acme",
        "session_id": CREDENTIAL,
        **bodies[kind],
        **fields,
    }
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    "kind", ["session.created", "session.activity", "session.terminated", "session.expired"]
)
def test_a_v1_event_names_the_session_a_gateway_derives_from_the_same_credential(
    kind: str,
) -> None:
    event = decode_event(_v1(kind))
    assert event.schema_version == 3
    assert event.session_id == session_handle("acme", CREDENTIAL)
    assert CREDENTIAL not in encode(event).decode()


def test_a_v1_revocation_and_a_v1_command_name_the_same_handle() -> None:
    revoked = decode_revocation(
        json.dumps(
            {
                "type": "session.revoked",
                "schema_version": 1,
                "tenant_id": "acme",
                "session_id": CREDENTIAL,
                "session_type": "mobile",
                "revoked_at": "2030-01-01T00:00:00Z",
                "reason": "admin",
                "valid_until": "2030-02-01T00:00:00Z",
            }
        ).encode()
    )
    command = decode_command(
        json.dumps(
            {
                "type": "sessions.terminate",
                "schema_version": 1,
                "command_id": str(uuid.uuid4()),
                "requested_at": "2030-01-01T00:00:00Z",
                "tenant_id": "acme",
                "requested_by": "admin-1",
                "session_ids": [CREDENTIAL, "other"],
            }
        ).encode()
    )
    handle = session_handle("acme", CREDENTIAL)
    assert revoked.session_id == handle
    assert command.session_ids == [handle, session_handle("acme", "other")]


def test_a_v1_settings_record_only_changes_version() -> None:
    settings = decode_settings(
        json.dumps(
            {
                "type": "session_settings.changed",
                "schema_version": 1,
                "event_id": str(uuid.uuid4()),
                "occurred_at": "2030-01-01T00:00:00Z",
                "tenant_id": "acme",
                "changed_by": "admin-1",
                "settings": {"browser": {"max_session_seconds": 60, "idle_timeout_seconds": 30}},
            }
        ).encode()
    )
    assert settings.schema_version == 3
    assert settings.settings["browser"].max_session_seconds == 60


def _v1_command(**target: Any) -> bytes:
    return json.dumps(
        {
            "type": "sessions.terminate",
            "schema_version": 1,
            "command_id": str(uuid.uuid4()),
            "requested_at": "2030-01-01T00:00:00Z",
            "tenant_id": "acme",
            "requested_by": "admin-1",
            **target,
        }
    ).encode()


def test_a_v1_filter_on_a_credential_substring_is_refused_not_widened_or_guessed() -> None:
    with pytest.raises(DecodeError, match=r"filter\.session_id"):
        decode_command(_v1_command(filter={"session_id": "abc", "session_type": ["browser"]}))
    # the other conditions of a v1 filter keep their meaning
    kept = decode_command(_v1_command(filter={"session_type": ["browser"], "user_name": "ada"}))
    assert kept.filter is not None and kept.filter.user_name == "ada"


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"session_id": "has space"}, "session.activity.session_id"),
        ({"session_id": "x" * 129}, "session.activity.session_id"),
        ({"session_id": 7}, "session.activity.session_id"),
        ({"session_id": ""}, "session.activity.session_id"),
        ({"tenant_id": "acme/eu"}, "tenant_id"),
        ({"tenant_id": None}, "tenant_id"),
    ],
)
def test_a_v1_record_that_breaks_v1_is_refused_naming_the_field(
    changes: dict[str, Any], named: str
) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_event(_v1("session.activity", **changes))
    assert named in caught.value.reason


def test_a_v1_command_with_a_bad_id_is_refused_naming_its_place() -> None:
    with pytest.raises(DecodeError, match=r"session_ids\.1"):
        decode_command(_v1_command(session_ids=["ok", "not ok"]))


@pytest.mark.parametrize("version", [True, 1.0, 2.0, "2", None, [2]])
def test_schema_version_must_be_the_integer_on_the_fast_path_too(version: object) -> None:
    body = json.loads(encode(activity_event(tenant_id="acme", credential=CREDENTIAL)))
    body["schema_version"] = version
    raw = json.dumps(body).encode()
    with pytest.raises(DecodeError, match="schema_version"):
        decode_event(raw)
    with pytest.raises(ValueError, match="schema_version"):
        SessionActivity.model_validate_json(raw)


def test_a_v2_record_carrying_a_credential_is_refused() -> None:
    body = json.loads(encode(activity_event(tenant_id="acme", credential=CREDENTIAL)))
    body["session_id"] = CREDENTIAL
    with pytest.raises(DecodeError, match="session_id"):
        decode_event(json.dumps(body).encode())


def test_the_publishers_builders_put_the_handle_never_the_credential_on_the_wire() -> None:
    credential = secrets.token_urlsafe(32)
    policy = SessionPolicy(max_session_seconds=60, idle_timeout_seconds=30)
    created = created_event(
        tenant_id="acme",
        credential=credential,
        user_id="u-1",
        user_name="Ada",
        session_type=SessionType.browser,
        ip_address="10.0.0.1",
        policy=policy,
        occurred_at=NOW,
    )
    activity = activity_event(tenant_id="acme", credential=credential, ip_address="10.0.0.2")
    ended = terminated_event(
        tenant_id="acme", credential=credential, reason=TerminationReason.logout
    )
    handle = session_handle("acme", credential)
    for event in (created, activity, ended):
        assert event.session_id == handle
        assert event.schema_version == 3
        wire = encode(event)
        assert credential.encode() not in wire
        assert decode_event(wire) == event
        assert event_key(event) == record_key("acme", handle) == f"acme/{handle}".encode()
        assert credential.encode() not in event_key(event)
    assert isinstance(created, SessionCreated) and created.occurred_at == NOW
    assert created.event_id != activity.event_id


@pytest.mark.parametrize(
    ("credential", "why"),
    [
        (secrets.token_urlsafe(97), "is 130 characters, over 128"),
        ("", "is empty"),
        ("has space-0123456789", "printable ASCII without spaces"),
        ("caf\u00e9-0123456789", "printable ASCII without spaces"),
        ("tab\t0123456789", "printable ASCII without spaces"),
    ],
)
def test_the_publishers_builders_refuse_a_credential_the_gateway_does_not_check(
    credential: str, why: str
) -> None:
    """The gateway checks 1-128 printable ASCII characters: a session created with a longer
    credential was listed, terminated and revoked, and served (a review, stop 70). The
    refusal names the rule, never the credential."""
    builders = (
        lambda: created_event(
            tenant_id="acme",
            credential=credential,
            user_id="u-1",
            user_name="Ada",
            session_type=SessionType.browser,
            ip_address="10.0.0.1",
            policy=SessionPolicy(max_session_seconds=60, idle_timeout_seconds=30),
        ),
        lambda: activity_event(tenant_id="acme", credential=credential),
        lambda: terminated_event(
            tenant_id="acme", credential=credential, reason=TerminationReason.logout
        ),
    )
    for build in builders:
        with pytest.raises(ValueError, match=why) as refused:
            build()
        assert not credential or credential not in str(refused.value)
    assert activity_event(tenant_id="acme", credential="~" * 128).session_id  # the longest


@given(
    tenant=st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True),
    other=st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True),
    credential=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1),
)
def test_one_credential_names_different_sessions_in_different_tenants(
    tenant: str, other: str, credential: str
) -> None:
    handle = session_handle(tenant, credential)
    assert is_handle(handle)
    assert split_record_key(record_key(tenant, handle)) == (tenant, handle)
    if tenant != other:
        assert session_handle(other, credential) != handle
