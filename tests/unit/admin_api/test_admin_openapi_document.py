"""`schemas/http/openapi.json`: the admin API's OpenAPI document, as the code declares it, and a
new version for every change of it.

Its `info.version` said 1.0.0 from the first commit to stop 66, through every change of the API
(session handles, new endpoints, statuses, headers, reasons): a client could not tell one
document from another, and no review saw the document change.
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from admin_api import openapi_doc
from admin_api.app import API_VERSION

DOCS = Path(__file__).resolve().parents[3] / "docs" / "admin-api.md"


def test_the_committed_document_is_the_codes_and_its_version_recorded() -> None:
    assert openapi_doc.drift() == []
    written = json.loads(openapi_doc.DEFAULT_PATH.read_text(encoding="utf-8"))
    assert written["info"]["version"] == API_VERSION
    versions = openapi_doc.recorded(openapi_doc.DEFAULT_PATH)
    assert versions[API_VERSION] == written["info"][openapi_doc.DIGEST]
    assert max(versions, key=openapi_doc.semver) == API_VERSION


def test_the_current_version_has_its_line_in_the_docs() -> None:
    versions = DOCS.read_text().split("## API versions", 1)[1].split("\n## ", 1)[0]
    assert re.search(rf"^\| {re.escape(API_VERSION)} \|", versions, re.MULTILINE), versions[:400]


def test_the_document_does_not_depend_on_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    before = openapi_doc.document()
    monkeypatch.setenv("SESSIONS_MAX_QUERY_BYTES", "65536")
    monkeypatch.setenv("SESSIONS_SEARCH_SECONDS_PER_MINUTE", "7")
    monkeypatch.setenv("SESSIONS_ENVIRONMENT", "production")
    monkeypatch.setenv("SESSIONS_DB_POOL_SIZE", "not a number")  # refused, were it read
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "")
    assert openapi_doc.document() == before
    assert os.environ["SESSIONS_DB_POOL_SIZE"] == "not a number"  # the environment restored


def _changed(spec: dict[str, Any], version: str | None = None) -> dict[str, Any]:
    changed = copy.deepcopy(spec)
    changed["paths"]["/api/v1/sessions"]["get"]["summary"] = "Another word"
    if version is not None:
        changed["info"]["version"] = version
    changed["info"][openapi_doc.DIGEST] = openapi_doc.content_digest(changed)
    return changed


def test_a_change_under_a_version_already_written_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "openapi.json"
    assert openapi_doc.write(path) is None
    written = path.read_text()
    spec = openapi_doc.document()
    assert openapi_doc.recorded(path) == {API_VERSION: spec["info"][openapi_doc.DIGEST]}

    monkeypatch.setattr(openapi_doc, "document", lambda: _changed(spec))
    refused = openapi_doc.write(path)
    assert refused is not None and f"changed under version {API_VERSION}" in refused
    assert path.read_text() == written  # left as it was
    assert any("raise API_VERSION" in problem for problem in openapi_doc.drift(path))
    path.unlink()  # the document deleted: its version is recorded all the same
    assert openapi_doc.write(path) == refused

    monkeypatch.setattr(openapi_doc, "document", lambda: _changed(spec, "1.9.9"))
    lowered = openapi_doc.write(path)
    assert lowered is not None and "not above the versions already recorded" in lowered

    major, minor, patch = (int(part) for part in API_VERSION.split("."))
    higher = f"{major}.{minor}.{patch + 1}"
    monkeypatch.setattr(openapi_doc, "document", lambda: _changed(spec, higher))
    assert openapi_doc.write(path) is None  # a new, higher version: written and recorded
    assert json.loads(path.read_text())["info"]["version"] == higher
    assert list(openapi_doc.recorded(path)) == [API_VERSION, higher]
    assert openapi_doc.drift(path) == []


def test_the_digest_names_the_content_not_the_version() -> None:
    spec = openapi_doc.document()
    assert openapi_doc.content_digest(_changed(spec, "9.9.9")) == openapi_doc.content_digest(
        _changed(spec)
    )
    assert openapi_doc.content_digest(_changed(spec)) != spec["info"][openapi_doc.DIGEST]
