#!/usr/bin/env bash
# The project's test command: set up, start Kafka and PostgreSQL, lint, type-check, test.
#
#   deploy/test.sh                  everything (what CI runs)
#   deploy/test.sh tests/unit -x    extra arguments go to pytest
#
# Already-exported KAFKA_BOOTSTRAP_SERVERS / SESSIONS_TEST_POSTGRES_URL / SESSIONS_CHROMIUM are
# used as given; otherwise the local broker and cluster are started (idempotently) and left running.
# Every check runs even after one fails; the exit status is non-zero if any failed.
set -euo pipefail

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$DEPLOY_DIR")"
PYTHON="${PYTHON:-python3}"
cd "$REPO_DIR"

step() { printf '\n== %s\n' "$*"; }

# Print a deploy script's `start` output and take KEY=value from it.
started_value() {
	local script="$1" key="$2" out
	out="$(bash "$DEPLOY_DIR/$script" start)" || {
		echo "$out"
		echo "test.sh: deploy/$script start failed" >&2
		exit 1
	}
	sed -n "s/^$key=//p" <<<"$out" | tail -n1
}

step "install"
bash "$DEPLOY_DIR/install.sh"

step "services"
if [[ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
	KAFKA_BOOTSTRAP_SERVERS="$(started_value kafka.sh KAFKA_BOOTSTRAP_SERVERS)"
fi
if [[ -z "${SESSIONS_TEST_POSTGRES_URL:-}" ]]; then
	SESSIONS_TEST_POSTGRES_URL="$(started_value postgres.sh SESSIONS_TEST_POSTGRES_URL)"
fi
export KAFKA_BOOTSTRAP_SERVERS SESSIONS_TEST_POSTGRES_URL
export SESSIONS_CHROMIUM="${SESSIONS_CHROMIUM:-/usr/bin/chromium}"
echo "KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS"
echo "SESSIONS_TEST_POSTGRES_URL=$SESSIONS_TEST_POSTGRES_URL"
echo "SESSIONS_CHROMIUM=$SESSIONS_CHROMIUM"

failed=()
results=()
check() {
	local name="$1" rc=0
	shift
	step "$name: $*"
	"$@" || rc=$?
	if ((rc == 0)); then
		results+=("$name ok")
	else
		results+=("$name FAILED($rc)")
		failed+=("$name")
	fi
}

check ruff "$PYTHON" -m ruff check .
check format "$PYTHON" -m ruff format --check .
check mypy "$PYTHON" -m mypy
# The lead's schema generator, once it exists: committed JSON Schemas must match the models.
if "$PYTHON" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('session_contracts.schemagen') is None)"; then
	check schemas "$PYTHON" -m session_contracts.schemagen --check
fi
# pytest's exit 5 (no tests collected) is non-zero, so it counts as a failure here too.
check pytest "$PYTHON" -m pytest -q "$@"

summary="$(IFS=,; echo "${results[*]}")"
echo
if ((${#failed[@]})); then
	echo "test.sh: FAILED: ${failed[*]} (${summary//,/, })"
	exit 1
fi
echo "test.sh: all checks passed (${summary//,/, })"
