#!/usr/bin/env bash
# uv, pinned, in a virtual environment of its own under .state/ (never the machine's Python).
#
#   bash deploy/uv.sh lock            re-resolve uv.lock after editing pyproject.toml
#   bash deploy/uv.sh lock --check    fail when uv.lock and pyproject.toml disagree
#   bash deploy/uv.sh <any uv command>
#
# Sourced by install.sh and test.sh for the `uv` function and $VENV_PYTHON.
# Environment: SESSIONS_BASE_PYTHON (python3): the interpreter uv and `.venv` are made from.
set -euo pipefail

UV_VERSION=0.13.9
_UV_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UV_STATE="$_UV_REPO/.state/uv-$UV_VERSION"
BASE_PYTHON="${SESSIONS_BASE_PYTHON:-python3}"
VENV_PYTHON="$_UV_REPO/.venv/bin/python"

uv() {
	if [[ ! -x "$UV_STATE/bin/uv" ]]; then
		mkdir -p "$(dirname "$UV_STATE")"
		"$BASE_PYTHON" -m venv "$UV_STATE" &&
			"$UV_STATE/bin/python" -m pip install -q --disable-pip-version-check "uv==$UV_VERSION" >&2 || {
			rm -rf "$UV_STATE"
			printf 'uv.sh: installing uv %s from PyPI failed\n' "$UV_VERSION" >&2
			return 1
		}
	fi
	# Never download an interpreter: the environment is made from the machine's Python 3.11+.
	(cd "$_UV_REPO" && UV_PYTHON_DOWNLOADS=never UV_PYTHON="$BASE_PYTHON" \
		UV_PROJECT_ENVIRONMENT="$_UV_REPO/.venv" "$UV_STATE/bin/uv" "$@")
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	uv "$@"
fi
