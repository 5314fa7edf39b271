#!/usr/bin/env bash
# The project's test command: set up, start Kafka and PostgreSQL, check the environment, lint,
# type-check (Python and the admin page's JavaScript), test.
#
#   deploy/test.sh                  everything (what CI runs)
#   deploy/test.sh tests/unit -x    extra arguments go to pytest
#   SESSIONS_TEST_WORKERS=0 deploy/test.sh    pytest in one process (serial)
#
# Everything runs in the project's own `.venv` (deploy/install.sh makes it from uv.lock), so a
# package installed on the machine by hand cannot hide a missing declaration.
# Already-exported KAFKA_BOOTSTRAP_SERVERS / SESSIONS_TEST_POSTGRES_URL / SESSIONS_CHROMIUM are
# used as given; otherwise the local broker is started (idempotently) and left running.
# Every check runs even after one fails; the exit status is non-zero if any failed.
set -euo pipefail

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/lib.sh
source "$DEPLOY_DIR/lib.sh"
# shellcheck source=deploy/uv.sh
source "$DEPLOY_DIR/uv.sh"
PYTHON="$VENV_PYTHON"
cd "$REPO_DIR"
# The suite's Python processes write bytecode (into __pycache__, ignored by git) even on a
# machine that sets PYTHONDONTWRITEBYTECODE, as ours does: otherwise every worker compiles the
# project's own modules and rewrites every test module's assertions at each collection (14.7 s
# of CPU a collection against 6.5 s, three workers), and each registry command run compiles
# some 80 modules again (1.55 s of CPU to import its command line against 1.35 s).
unset PYTHONDONTWRITEBYTECODE

# pytest's workers (below); checked before anything runs.
workers="${SESSIONS_TEST_WORKERS:-3}"
[[ "$workers" =~ ^[0-9]+$ ]] || die "SESSIONS_TEST_WORKERS must be a number of workers (0: serial), not '$workers'"

step() { printf '\n== %s\n' "$*"; }

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
# The secured three-node cluster is not started here: the `cluster` tests start it when they
# come (first, as one group on one worker) and stop it after the last of them, so it does not
# idle through the rest of the suite (3-5 s of CPU a minute). One already running is left so.
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

# uv.lock must be what pyproject.toml resolves to: an edited pyproject without a new lock fails.
lock_check() {
	uv lock --check || {
		echo "test.sh: uv.lock does not match pyproject.toml: run 'bash deploy/uv.sh lock' and commit uv.lock"
		return 1
	}
}

check lock lock_check
# Every import declared in pyproject.toml itself; the message names the import, the file and what to do.
check imports bash deploy/check_imports.sh
check ruff "$PYTHON" -m ruff check .
check format "$PYTHON" -m ruff format --check .
check mypy "$PYTHON" -m mypy
# The admin page's JavaScript: // @ts-check with JSDoc types, strict (jsconfig.json).
check tsc node_modules/.bin/tsc --noEmit -p jsconfig.json
check schemas "$PYTHON" -m session_contracts.schemagen --check
# The admin API's OpenAPI document (schemas/http/): the code's, and a new version for a change.
check openapi "$PYTHON" -m admin_api.openapi_doc --check
# The alert rules: valid, and each alert fires (and stays quiet) as its unit tests say.
alert_rules() {
	(cd "$REPO_DIR/deploy/observability" && promtool check rules alerts.yml &&
		promtool test rules alerts.test.yml)
}
check alerts alert_rules
# pytest's exit 5 (no tests collected) is non-zero, so it counts as a failure here too.
# --durations: the 15 slowest tests, so a drift in the suite's time shows in every run.
# Workers (pytest-xdist): the suite mostly waits (on the broker, PostgreSQL, subprocesses,
# Chromium), so one more worker than the machine's 2 cores keeps them busy; more would mostly
# add CPU contention. SESSIONS_TEST_WORKERS sets the count; 0 runs pytest in one process.
# loadgroup: each browser module runs on one worker, so its stack starts once (tests/conftest.py).
# A later `-n N` among the extra arguments wins.
parallel=(-n "$workers")
((workers == 0)) || parallel+=(--dist loadgroup)
check pytest "$PYTHON" -m pytest -q --durations=15 "${parallel[@]}" "$@"

summary="$(IFS=,; echo "${results[*]}")"
echo
if ((${#failed[@]})); then
	echo "test.sh: FAILED: ${failed[*]} (${summary//,/, })"
	exit 1
fi
echo "test.sh: all checks passed (${summary//,/, })"
