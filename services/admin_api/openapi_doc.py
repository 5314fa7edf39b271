"""Writes `schemas/http/openapi.json`, the admin API's OpenAPI document, from the code; checks
that it matches the code and that every change of it is a new, higher version.

python -m admin_api.openapi_doc            # (re)write it, and record a new version
python -m admin_api.openapi_doc --check    # exit 1 if it drifted, or changed unversioned

The document is the HTTP half of the contract (`schemas/` holds the Kafka half). Its
`info.version` is `API_VERSION`, and `info.x-content-digest` the SHA-256 of the rest.
`schemas/http/versions.json` records the digest of every version written: a version's content
never changes (a document that changed under a recorded version is refused, also when the
document itself was deleted or edited), and a new version is higher than every recorded one.
Editing the record by hand is the one way round it, and shows in review. The document said
1.0.0 from the first commit to stop 66, through every change. Nothing in it depends on
settings or the environment (the `SESSIONS_*` and `KAFKA_*` variables are left out while it
is built).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from admin_api.app import API_VERSION, create_app
from admin_api.settings import AdminApiSettings

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "schemas" / "http" / "openapi.json"
LEDGER = "versions.json"
DIGEST = "x-content-digest"


def content_digest(document: dict[str, Any]) -> str:
    """SHA-256 of the document less its version and this digest: what a version names."""
    info = {k: v for k, v in document["info"].items() if k not in ("version", DIGEST)}
    content = {**document, "info": info}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


@contextlib.contextmanager
def _no_environment() -> Iterator[None]:
    """The settings' variables out of the environment meanwhile: the document is the code's."""
    kept = {k: v for k, v in os.environ.items() if k.startswith(("SESSIONS_", "KAFKA_"))}
    for name in kept:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(kept)


def document() -> dict[str, Any]:
    """The admin API's OpenAPI document, as the code declares it, with its content digest."""
    with _no_environment():
        settings = AdminApiSettings(_env_file=None, environment="development")
    spec: dict[str, Any] = create_app(settings).openapi()
    spec["info"][DIGEST] = content_digest(spec)
    return spec


def render(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def semver(version: str) -> tuple[int, int, int]:
    major, minor, patch = (int(part) for part in version.split("."))
    return major, minor, patch


def recorded(path: Path) -> dict[str, str]:
    """Version to content digest, of every version written beside `path`."""
    ledger = path.parent / LEDGER
    if not ledger.exists():
        return {}
    versions: dict[str, str] = json.loads(ledger.read_text(encoding="utf-8"))
    return versions


def refusal(path: Path, spec: dict[str, Any]) -> str | None:
    """Why `spec` may not be the document at `path` (None: it may)."""
    version, digest = spec["info"]["version"], spec["info"][DIGEST]
    versions = recorded(path)
    if version in versions:
        if versions[version] != digest:
            return (
                f"the admin API's document changed under version {version}: raise API_VERSION "
                "(services/admin_api/app.py; a patch for words, a minor for an addition, a "
                "major for a break) and add its line to docs/admin-api.md's API versions"
            )
        return None
    higher = [v for v in versions if semver(v) >= semver(version)]
    if higher:
        return f"version {version} is not above the versions already recorded ({max(higher)})"
    return None


def drift(path: Path = DEFAULT_PATH) -> list[str]:
    """What is wrong with the document at `path` against the code (empty: nothing)."""
    spec = document()
    problems = []
    if (refused := refusal(path, spec)) is not None:
        problems.append(refused)
    elif spec["info"]["version"] not in recorded(path):
        problems.append(
            f"version {API_VERSION} is not recorded: run `python -m admin_api.openapi_doc`"
        )
    if not path.exists():
        problems.append(f"{path} is missing: run `python -m admin_api.openapi_doc`")
    elif path.read_text(encoding="utf-8") != render(spec):
        problems.append(f"{path} drifted from the code: run `python -m admin_api.openapi_doc`")
    return problems


def write(path: Path = DEFAULT_PATH) -> str | None:
    """Write the document to `path` and record its version; why not, if it was not."""
    spec = document()
    if (refused := refusal(path, spec)) is not None:
        return refused
    versions = {**recorded(path), spec["info"]["version"]: spec["info"][DIGEST]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(spec), encoding="utf-8")
    ordered = dict(sorted(versions.items(), key=lambda item: semver(item[0])))
    (path.parent / LEDGER).write_text(json.dumps(ordered, indent=2) + "\n", encoding="utf-8")
    return None


def main(argv: list[str]) -> int:
    if "--check" in argv:
        problems = drift()
        for problem in problems:
            print(problem)
        if not problems:
            print(f"{DEFAULT_PATH.name} matches the code (admin API {API_VERSION})")
        return 1 if problems else 0
    refused = write()
    if refused is not None:
        print(refused)
        return 1
    print(f"wrote {DEFAULT_PATH} (admin API {API_VERSION})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
