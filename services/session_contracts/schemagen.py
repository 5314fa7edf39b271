"""Writes `schemas/`: one JSON Schema per message and the AsyncAPI document, all from the code.

python -m session_contracts.schemagen            # (re)write schemas/
python -m session_contracts.schemagen --check    # exit 1 if schemas/ drifted from the code
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from pydantic import BaseModel

from session_contracts.models import (
    SCHEMA_VERSION,
    SessionActivity,
    SessionCreated,
    SessionExpired,
    SessionRevoked,
    SessionSettingsChanged,
    SessionTerminated,
    TerminateSessions,
)
from session_contracts.record_signing import SIGNATURE_HEADER
from session_contracts.topics import Topics

MESSAGES: dict[str, type[BaseModel]] = {
    "session.created": SessionCreated,
    "session.activity": SessionActivity,
    "session.terminated": SessionTerminated,
    "session.expired": SessionExpired,
    "sessions.terminate": TerminateSessions,
    "session.revoked": SessionRevoked,
    "session_settings.changed": SessionSettingsChanged,
}
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "schemas"


def json_schemas() -> dict[str, dict[str, Any]]:
    """File name to JSON Schema (draft 2020-12) of every message of the contract."""
    out: dict[str, dict[str, Any]] = {}
    for name, model in MESSAGES.items():
        schema = model.model_json_schema(mode="validation")
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"urn:session-control:schema:{name}:{SCHEMA_VERSION}",
            **schema,
        }
        out[f"{name}.schema.json"] = schema
    return out


def contract_broker(topics: Topics) -> KafkaBroker:
    """A FastStream broker declaring every channel of the contract, for the AsyncAPI document."""
    broker = KafkaBroker("127.0.0.1:9092")
    for model in (SessionCreated, SessionActivity, SessionTerminated, SessionExpired):
        signed = (
            f" Carries the header `{SIGNATURE_HEADER}` (HMAC-SHA256 of the key and value under "
            "a registry key); with SESSIONS_RECORD_SIGNING_KEYS set, one without a valid "
            "signature is dead-lettered."
            if model is SessionExpired
            else ""
        )
        broker.publisher(
            topics.events,
            title=f"{topics.events}:{model.model_fields['type'].default}",
            description=(
                f"{(model.__doc__ or '').strip()} Key: <tenant_id>/<session handle>. "
                "Written by platform services (created, activity, terminated) and the "
                "registry (expired, and terminated for admin commands); read by the registry. "
                f"Long retention.{signed}"
            ),
            schema=model,
        )
    broker.publisher(
        topics.commands,
        title=f"{topics.commands}:sessions.terminate",
        description="Terminate sessions. Key: <tenant_id>/<command_id>. Written by the admin "
        "API; read by the registry, which applies each command_id once. Retention 7 days.",
        schema=TerminateSessions,
    )
    broker.publisher(
        topics.revocations,
        title=f"{topics.revocations}:session.revoked",
        description="Compacted. Key: <tenant_id>/<session handle>. Written by the registry; "
        "read from the beginning by every auth gateway. A tombstone (null value) follows "
        "once valid_until has passed.",
        schema=SessionRevoked,
    )
    broker.publisher(
        topics.dead_letters,
        title=f"{topics.dead_letters}:original record",
        description="Records the registry could not apply, with the original key, value and "
        "headers (each cut to 256 KiB), plus headers `dlq.reason`, `dlq.source.topic`, "
        "`dlq.source.partition`, `dlq.source.offset`, `dlq.consumer`, and when the copy is cut "
        "or empty `dlq.value.size`, `dlq.key.size`, `dlq.headers.dropped`, `dlq.value.null`. "
        "The registry's headers start at the last `dlq.reason`, after the original ones: read "
        "every `dlq.*` header from there on and none before it, since a producer may have "
        "sent its own.",
        schema=bytes,
    )
    broker.publisher(
        topics.settings,
        title=f"{topics.settings}:session_settings.changed",
        description="Compacted. Key: tenant_id. Written by the admin API when an admin changes "
        "the tenant's session settings; read by login services, which snapshot "
        "settings[session_type] into each new session's policy (DEFAULT_POLICIES without one).",
        schema=SessionSettingsChanged,
    )
    return broker


def asyncapi_document(topics: Topics | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the contract's Kafka channels."""
    spec = AsyncAPI(
        contract_broker(topics or Topics()),
        title="Session Control",
        version=str(SCHEMA_VERSION),
        description="Session events, termination commands and revocations on Kafka.",
        schema_version="3.0.0",
    )
    document: dict[str, Any] = json.loads(spec.to_specification().to_json())
    # FastStream declares a `correlation_id` header on every message; nothing writes or reads
    # one here, and a client generated from the document would expect it (a review, stop 72)
    for message in document.get("components", {}).get("messages", {}).values():
        message.pop("correlationId", None)
    return document


def render() -> dict[str, str]:
    """Every file of schemas/ with its exact text."""
    files = {name: schema for name, schema in json_schemas().items()}
    files["asyncapi.json"] = asyncapi_document()
    return {name: json.dumps(doc, indent=2, sort_keys=True) + "\n" for name, doc in files.items()}


def drift(directory: Path = DEFAULT_DIR) -> list[str]:
    """Names of the files under `directory` that differ from what the code generates."""
    expected = render()
    stale = [n for n, text in expected.items() if _read(directory / n) != text]
    extra = [p.name for p in directory.glob("*.json") if p.name not in expected]
    return sorted(stale + extra)


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


def write(directory: Path = DEFAULT_DIR) -> None:
    """Rewrite `directory` from the code."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.json"):
        stale.unlink()
    for name, text in render().items():
        (directory / name).write_text(text)


def main(argv: list[str]) -> int:
    if "--check" in argv:
        stale = drift()
        if stale:
            print("schemas/ drifted from the code; run `python -m session_contracts.schemagen`:")
            print("\n".join(f"  {name}" for name in stale))
            return 1
        print("schemas/ matches the code")
        return 0
    write()
    print(f"wrote {len(render())} files to {DEFAULT_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
