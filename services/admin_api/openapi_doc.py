"""Writes `schemas/http/openapi.json`, the admin API's OpenAPI document, from the code; checks
that it matches the code and that a changed document has a new version.

python -m admin_api.openapi_doc            # (re)write it
python -m admin_api.openapi_doc --check    # exit 1 if it drifted from the code

The document is the HTTP half of the contract (`schemas/` holds the Kafka half). Its
`info.version` is `API_VERSION`, and `info.x-content-digest` the SHA-256 of the rest: writing a
document whose content changed under the version already written is refused, so a change to
the API is always a new version (it said 1.0.0 from the first commit to stop 66, through every
change). Nothing in it depends on settings or the environment.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from admin_api.app import API_VERSION, create_app
from admin_api.settings import AdminApiSettings

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "schemas" / "http" / "openapi.json"
DIGEST = "x-content-digest"


def content_digest(document: dict[str, Any]) -> str:
    """SHA-256 of the document less its version and this digest: what a version names."""
    info = {k: v for k, v in document["info"].items() if k not in ("version", DIGEST)}
    content = {**document, "info": info}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def document() -> dict[str, Any]:
    """The admin API's OpenAPI document, as the code declares it, with its content digest."""
    settings = AdminApiSettings(_env_file=None, environment="development")
    spec: dict[str, Any] = create_app(settings).openapi()
    spec["info"][DIGEST] = content_digest(spec)
    return spec


def render(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def unversioned_change(path: Path, spec: dict[str, Any]) -> str | None:
    """Why `spec` may not replace the document at `path`: its content changed and its version
    did not (None: it may)."""
    try:
        written = json.loads(path.read_text())
        version, digest = written["info"]["version"], written["info"].get(DIGEST)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # none yet, or unreadable: written afresh
    if version == spec["info"]["version"] and digest != spec["info"][DIGEST]:
        return (
            f"the admin API's document changed under version {version}: raise API_VERSION "
            "(services/admin_api/app.py; a patch for words, a minor for an addition, a major "
            "for a break) and add its line to docs/admin-api.md's API versions"
        )
    return None


def drift(path: Path = DEFAULT_PATH) -> list[str]:
    """What is wrong with the document at `path` against the code (empty: nothing)."""
    spec = document()
    problems = []
    if (refused := unversioned_change(path, spec)) is not None:
        problems.append(refused)
    if not path.exists():
        problems.append(f"{path} is missing: run `python -m admin_api.openapi_doc`")
    elif path.read_text() != render(spec):
        problems.append(f"{path} drifted from the code: run `python -m admin_api.openapi_doc`")
    return problems


def write(path: Path = DEFAULT_PATH) -> str | None:
    """Write the document to `path`; the reason it was not written, if it was not."""
    spec = document()
    if (refused := unversioned_change(path, spec)) is not None:
        return refused
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(spec))
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
