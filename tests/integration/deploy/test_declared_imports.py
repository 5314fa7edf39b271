"""deploy/check_imports.sh: an import pyproject.toml does not declare itself fails, naming it.

A package installed on the machine by hand (or pulled in by another dependency) must not make a
missing declaration pass: the check runs deptry from the project's `.venv` over a project tree.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
CHECK = ROOT / "deploy" / "check_imports.sh"


def check(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CHECK), str(project)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def project_with(tmp_path: Path, module_source: str) -> Path:
    """A copy of this project's declarations with one module of our own that imports things."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    package = tmp_path / "services" / "session_probe"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(module_source)
    return tmp_path


def test_this_repository_declares_every_import() -> None:
    done = check(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_undeclared_import_fails_naming_the_import_and_the_file(tmp_path: Path) -> None:
    project = project_with(tmp_path, "import fastapi\nimport session_probe_not_on_pypi\n")
    done = check(project)
    assert done.returncode != 0
    assert "services/session_probe/__init__.py:2" in done.stdout
    assert "DEP001 'session_probe_not_on_pypi'" in done.stdout
    assert "'fastapi'" not in done.stdout  # declared: not reported
    assert "add each DEP001" in done.stdout  # says what to do


def test_an_import_only_a_dependency_pulls_in_fails(tmp_path: Path) -> None:
    # anyio is installed (starlette and httpx need it) but this project never declares it.
    project = project_with(tmp_path, "import anyio\n")
    done = check(project)
    assert done.returncode != 0
    assert "services/session_probe/__init__.py:1" in done.stdout
    assert "DEP003 'anyio'" in done.stdout
