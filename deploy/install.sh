#!/usr/bin/env bash
# Set up everything the project needs on a Debian machine, idempotently and quietly:
# Debian packages (PostgreSQL, Chromium, Java, Maven), the project into the current python
# (`pip install -e '.[dev]'`, no venv: the machine's python is the project's), the Kafka jars.
# A second run skips what is present and takes a few seconds.
set -euo pipefail

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$DEPLOY_DIR")"
STATE_ROOT="${SESSIONS_STATE_DIR:-$REPO_DIR/.state}"
PYTHON="${PYTHON:-python3}"

say() { printf 'install.sh: %s\n' "$*" >&2; }

installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]; }

apt_packages() {
	local missing=() pkg
	# postgresql-contrib: pg_trgm. chromium + fonts: the browser tests (Playwright drives Debian's
	# Chromium; Playwright's own browser download is not reachable here).
	for pkg in postgresql postgresql-contrib chromium fonts-liberation maven; do
		installed "$pkg" || missing+=("$pkg")
	done
	command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
	((${#missing[@]})) || return 0
	[[ "$(id -u)" == 0 ]] || {
		say "missing Debian packages (install as root): ${missing[*]}"
		exit 1
	}
	say "apt-get install ${missing[*]}"
	# Our own PostgreSQL clusters only (deploy/postgres.sh): no Debian 'main' cluster on 5432.
	mkdir -p /etc/postgresql-common/createcluster.d
	echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/session-control.conf
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

python_project() {
	local stamp="$STATE_ROOT/install.pyproject.sha256" want
	want="$(sha256sum <"$REPO_DIR/pyproject.toml" | cut -d" " -f1) $REPO_DIR"
	# Skip only when this checkout (not another clone) is the installed one and pyproject is unchanged.
	if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] &&
		"$PYTHON" -c "import session_contracts, sys; sys.exit(not session_contracts.__file__.startswith('$REPO_DIR/'))" 2>/dev/null; then
		return 0
	fi
	say "pip install -e '.[dev]' into $("$PYTHON" -c 'import sys; print(sys.executable)')"
	mkdir -p "$STATE_ROOT"
	if ! "$PYTHON" -m pip install -q --disable-pip-version-check -e "$REPO_DIR[dev]" >"$STATE_ROOT/pip.log" 2>&1; then
		cat "$STATE_ROOT/pip.log" >&2
		say "pip install failed"
		exit 1
	fi
	echo "$want" >"$stamp"
}

apt_packages
python_project
bash "$DEPLOY_DIR/kafka.sh" fetch
