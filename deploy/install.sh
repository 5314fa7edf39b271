#!/usr/bin/env bash
# Set up everything the project needs on a Debian machine, idempotently and quietly:
# Debian packages (PostgreSQL, Chromium, Java, Maven, Node.js and npm), the project's own virtual
# environment `.venv` (made from uv.lock, so every direct and transitive version is pinned),
# `node_modules` (TypeScript, made from package-lock.json), the Kafka jars.
# A second run checks what is present and takes about a second.
#
#   deploy/install.sh           everything
#   deploy/install.sh --venv    only the Python environment (what deploy/uv.sh lock needs)
#
# Environment: SESSIONS_BASE_PYTHON (python3): the interpreter `.venv` is made from (3.11+).
set -euo pipefail

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/lib.sh
source "$DEPLOY_DIR/lib.sh"
# shellcheck source=deploy/uv.sh
source "$DEPLOY_DIR/uv.sh"

installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]; }

apt_packages() {
	local missing=() pkg
	# postgresql-contrib: pg_trgm. chromium + fonts: the browser tests (Playwright drives Debian's
	# Chromium; Playwright's own browser download is not reachable here). stress-ng: keeps the
	# CPUs busy for the flakiness check in docs/operations.md.
	for pkg in postgresql postgresql-contrib chromium fonts-liberation maven stress-ng; do
		installed "$pkg" || missing+=("$pkg")
	done
	command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
	# prometheus: its promtool checks and unit-tests deploy/observability's alert rules
	# (deploy/test.sh). Only the tool is used: no Prometheus server is started here (on a
	# machine with systemd, `systemctl disable --now prometheus` after the first install).
	command -v promtool >/dev/null || missing+=(prometheus)
	# openssl: deploy/kafka.sh cluster makes the secured cluster's CA and certificates with it
	command -v openssl >/dev/null || missing+=(openssl)
	# node + npm: TypeScript type-checks the admin page's JavaScript (deploy/test.sh, check tsc).
	command -v node >/dev/null || missing+=(nodejs)
	command -v npm >/dev/null || missing+=(npm)
	((${#missing[@]})) || return 0
	[[ "$(id -u)" == 0 ]] || die "missing Debian packages (install as root): ${missing[*]}"
	note "apt-get install ${missing[*]}"
	# Our own PostgreSQL clusters only (deploy/postgres.sh): no Debian 'main' cluster on 5432.
	mkdir -p /etc/postgresql-common/createcluster.d
	echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/session-control.conf
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# `.venv` holds exactly what uv.lock pins (packages nobody declared are removed), plus the project
# itself in editable mode; the machine's own Python packages are invisible to it.
# --compile-bytecode: the dependencies' bytecode is written once here (~10 s the first time, 0.3 s
# after). Without it a machine that sets PYTHONDONTWRITEBYTECODE (as ours does) compiles
# SQLAlchemy, Alembic, pydantic... again in every process: 4.3 s of CPU to start the registry's
# CLI instead of 1.4 s, paid by every CLI run, service start and test subprocess.
python_env() {
	local log="$REPO_DIR/.state/uv-sync.log"
	mkdir -p "$REPO_DIR/.state"
	if ! uv sync --frozen --extra dev --compile-bytecode >"$log" 2>&1; then
		cat "$log" >&2
		die "uv sync failed (the environment is made from uv.lock: 'bash deploy/uv.sh lock' after editing pyproject.toml)"
	fi
}

# `node_modules` holds exactly what package-lock.json pins (TypeScript, for deploy/test.sh's tsc).
# `npm ci` runs only when node_modules is missing or package-lock.json changed since it last ran:
# the lock file's hash is kept in node_modules, which `npm ci` itself replaces wholesale.
node_env() {
	local lock="$REPO_DIR/package-lock.json" stamp="$REPO_DIR/node_modules/.package-lock.sha256"
	local log="$REPO_DIR/.state/npm-ci.log" sum
	sum="$(sha256sum "$lock" | cut -d' ' -f1)"
	[[ -f "$stamp" && "$(<"$stamp")" == "$sum" ]] && return 0
	mkdir -p "$REPO_DIR/.state"
	if ! (cd "$REPO_DIR" && npm ci --no-audit --no-fund) >"$log" 2>&1; then
		cat "$log" >&2
		die "npm ci failed (node_modules is made from package-lock.json)"
	fi
	echo "$sum" >"$stamp"
}

if [[ "${1:-}" == "--venv" ]]; then
	python_env
	exit 0
fi
apt_packages
python_env
node_env
bash "$DEPLOY_DIR/kafka.sh" fetch
