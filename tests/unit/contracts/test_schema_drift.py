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
