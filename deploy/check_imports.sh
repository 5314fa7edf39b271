#!/usr/bin/env bash
# Every import must come from a distribution pyproject.toml declares itself (not one only pulled in
# by another: a fresh machine with another resolution may lack it), and every declared one must be
# used. Runs deptry from the project's `.venv` over ROOT (default: the repository).
# First-party: the packages in services/, bench, and every module under tests/ (helpers are
# imported by name from their folders). Configuration: [tool.deptry] in pyproject.toml.
#
#   deploy/check_imports.sh [ROOT]
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="$(cd "${1:-$REPO_DIR}" && pwd)"
cd "$ROOT"

ours=(--known-first-party bench)
while IFS= read -r path; do
	ours+=(--known-first-party "$(basename "$path" .py)")
done < <(
	[[ -d services ]] && find services -mindepth 1 -maxdepth 1 -type d -not -name '*.egg-info' -not -name __pycache__
	[[ -d tests ]] && find tests -name '*.py' -not -name conftest.py -not -name __init__.py
)
"$REPO_DIR/.venv/bin/deptry" --no-ansi . "${ours[@]}" 2>&1 || {
	echo "check_imports.sh: add each DEP001 (undeclared) or DEP003 (only transitive) import above to" \
		"pyproject.toml ([project] dependencies, or [project.optional-dependencies] dev for what only" \
		"tests and tools import), then run 'bash deploy/uv.sh lock'; remove each DEP002 package that" \
		"nothing imports"
	exit 1
}
