"""schemas/ is generated from the code; a change to a model without regenerating fails here."""

from __future__ import annotations

import json
from pathlib import Path

from session_contracts import schemagen


def test_committed_schemas_match_the_code() -> None:
    stale = schemagen.drift()
    assert stale == [], f"run `python -m session_contracts.schemagen`; drifted: {stale}"


def test_drift_is_detected(tmp_path: Path) -> None:
    schemagen.write(tmp_path)
    assert schemagen.drift(tmp_path) == []
    doc = json.loads((tmp_path / "session.created.schema.json").read_text())
    doc["properties"].pop("user_agent")
    (tmp_path / "session.created.schema.json").write_text(json.dumps(doc))
    (tmp_path / "stray.json").write_text("{}")
    assert schemagen.drift(tmp_path) == ["session.created.schema.json", "stray.json"]


def test_every_message_has_a_schema_and_a_channel() -> None:
    document = schemagen.asyncapi_document()
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {
        "sessions.events",
        "sessions.commands",
        "sessions.revocations",
        "sessions.events.dlq",
        "sessions.settings",
    }
    assert set(schemagen.json_schemas()) == {f"{m}.schema.json" for m in schemagen.MESSAGES}


def test_every_schema_requires_what_every_reader_requires() -> None:
    """`type` and `schema_version` were optional in the published schemas (the models default
    them), while the codec refuses a record without either: a producer written from the
    schemas left them out and was dead-lettered (a review of the contract, stop 72). The
    AsyncAPI document's payloads say the same."""
    payloads = schemagen.asyncapi_document()["components"]["schemas"]
    for name, schema in schemagen.json_schemas().items():
        assert {"type", "schema_version"} <= set(schema["required"]), name
    for name, payload in payloads.items():
        if "schema_version" in payload.get("properties", {}):
            assert {"type", "schema_version"} <= set(payload["required"]), name


def test_a_command_by_filter_needs_a_moment_in_its_schema_not_only_the_key() -> None:
    """`"confirmed_at": null` with a filter passed the schema (`required` asks only for the
    key), and the registry dead-lettered it (a review of the contract, stop 72)."""
    command = schemagen.json_schemas()["sessions.terminate.schema.json"]
    by_filter = command["oneOf"][1]
    assert by_filter["required"] == ["filter", "confirmed_at"]
    assert by_filter["properties"]["confirmed_at"] == {"type": "string"}


def test_the_document_declares_no_header_nothing_writes() -> None:
    """FastStream gave every message a `correlation_id` header, which no service writes or
    reads (a review of the contract, stop 72)."""
    messages = schemagen.asyncapi_document()["components"]["messages"]
    assert messages and all("correlationId" not in m for m in messages.values())
