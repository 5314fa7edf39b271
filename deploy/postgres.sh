#!/usr/bin/env bash
# A PostgreSQL cluster of the project's own, on 127.0.0.1 only, from Debian's packages.
#
#   deploy/postgres.sh start     install PostgreSQL if absent, initdb once, start, create the
#                                role `sessions` (password `sessions`, CREATEDB) and the databases
#                                `sessions` and `sessions_test`; idempotent
#   deploy/postgres.sh status    succeed if the cluster answers
#   deploy/postgres.sh stop      fast shutdown; idempotent
#   deploy/postgres.sh restart   stop then start (fault-injection tests, on their own PGPORT)
#   deploy/postgres.sh destroy   stop and delete the cluster's data directory
#   deploy/postgres.sh prewarm DATABASE RELATION[:read]...
#                                read each relation (a table or an index) into shared_buffers,
#                                or with :read into the OS page cache only (pg_prewarm, created
#                                in DATABASE if absent): a large database after a restart,
#                                before its searches read the pages one by one
#
# Environment: PGPORT (55432), SESSIONS_STATE_DIR (<repo>/.state), PG_START_TIMEOUT (60 s).
# start/status end with SESSIONS_TEST_POSTGRES_URL=... and SESSIONS_DATABASE_URL=... lines.
#
# The cluster lives in <state>/postgres-<port>/ (data/, server.log) when the server's OS user can reach it; root may
# not run PostgreSQL, so as root the server runs as the `postgres` user, and a state directory it
# cannot reach (a repo under a 0700 home, a pytest tmp dir) is swapped for
# /var/lib/session-control/<hash of the state path>/postgres-<port> — never a chmod of your folders.
set -euo pipefail

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/lib.sh
source "$DEPLOY_DIR/lib.sh"
PORT="${PGPORT:-55432}"
STATE_ROOT="$(state_root)"
TIMEOUT="${PG_START_TIMEOUT:-60}"
ROLE=sessions
PASSWORD=sessions
# The socket lives in /tmp: data directories may be deeper than a socket path may be long.
SOCKET_DIR=/tmp

pg_bindir() {
	local dir
	dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
	[[ -n "$dir" && -x "$dir/initdb" ]] && echo "$dir"
}

install_postgres() {
	pg_bindir >/dev/null && return 0
	[[ "$(id -u)" == 0 ]] || die "PostgreSQL is not installed; as root: apt-get install postgresql postgresql-contrib"
	say "installing PostgreSQL from Debian's packages"
	# Our own clusters only: no Debian 'main' cluster on 5432.
	mkdir -p /etc/postgresql-common/createcluster.d
	echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/session-control.conf
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends postgresql postgresql-contrib >&2
	pg_bindir >/dev/null || die "PostgreSQL installed but no /usr/lib/postgresql/*/bin/initdb"
}

# The OS user that runs the server, and a prefix that runs a command as it.
if [[ "$(id -u)" == 0 ]]; then
	SERVER_USER=postgres
	AS_SERVER=(runuser -u postgres --)
else
	SERVER_USER="$(id -un)"
	AS_SERVER=()
fi

ensure_server_user() {
	[[ "$SERVER_USER" == postgres ]] || return 0
	id postgres >/dev/null 2>&1 && return 0
	useradd --system --home-dir /var/lib/postgresql --shell /bin/bash --user-group postgres
}

cluster_dir() {
	if [[ "$SERVER_USER" != postgres ]] || runuser -u postgres -- test -x "$STATE_ROOT" 2>/dev/null; then
		echo "$STATE_ROOT/postgres-$PORT"
	else
		echo "/var/lib/session-control/$(printf '%s' "$STATE_ROOT" | sha256sum | cut -c1-12)/postgres-$PORT"
	fi
}

# From / : the caller's working directory may be closed to the server user.
as_server() { (cd / && "${AS_SERVER[@]}" "$@"); }

psql_admin() {
	as_server "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCKET_DIR" -p "$PORT" -U "$SERVER_USER" "$@"
}

answers() { as_server "$BIN/pg_isready" -q -h "$SOCKET_DIR" -p "$PORT" -U "$SERVER_USER" -d postgres; }

running() { [[ -f "$DATA/postmaster.pid" ]] && as_server "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1; }

init_once() {
	[[ -f "$DATA/PG_VERSION" ]] && return 0
	mkdir -p "$DATA"
	if [[ "$SERVER_USER" == postgres ]]; then chown postgres: "$DATA" "$CLUSTER"; fi
	# The cluster folder holds server.log and initdb.log too: the server user's only.
	chmod 700 "$DATA" "$CLUSTER"
	say "initdb $DATA"
	as_server "$BIN/initdb" -D "$DATA" -U "$SERVER_USER" -E UTF8 --locale=C.UTF-8 \
		--auth-local=peer --auth-host=scram-sha-256 >"$CLUSTER/initdb.log" 2>&1 ||
		{
			cat "$CLUSTER/initdb.log" >&2
			die "initdb failed"
		}
	cat >>"$DATA/postgresql.conf" <<EOF

# deploy/postgres.sh: loopback only, a socket in $SOCKET_DIR, room for parallel test pools.
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCKET_DIR'
max_connections = 200
logging_collector = off
log_min_messages = warning
EOF
}

provision() {
	psql_admin -d postgres <<EOF
SET client_min_messages = warning;
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD';
  END IF;
END
\$\$;
-- DROP DATABASE ... WITH (FORCE) of a test database must be able to end an autovacuum
-- worker that happens to be in it.
GRANT pg_signal_backend TO $ROLE;
EOF
	local db
	for db in sessions sessions_test; do
		if [[ -z "$(psql_admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]]; then
			psql_admin -d postgres -c "CREATE DATABASE $db OWNER $ROLE"
		fi
	done
	# pg_trgm is a trusted extension: the database owner may create it in migrations.
	[[ -n "$(psql_admin -d postgres -tAc "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")" ]] ||
		die "pg_trgm is not available (apt-get install postgresql-contrib)"
}

print_urls() {
	echo "SESSIONS_TEST_POSTGRES_URL=postgresql+asyncpg://$ROLE:$PASSWORD@127.0.0.1:$PORT/sessions_test"
	echo "SESSIONS_DATABASE_URL=postgresql+asyncpg://$ROLE:$PASSWORD@127.0.0.1:$PORT/sessions"
}

# pg_ctl start; while the bind fails because a connection's local end holds the port (see
# port_held_by: another program's client, TIME_WAIT for 60 s after it closed), wait and start again,
# saying so, up to TIMEOUT + 60 s. Any other failure ends the script with the log's tail.
start_server() {
	local waited=0 held
	while :; do
		# 9>&- : the server must not inherit (and hold forever) the lock.
		as_server "$BIN/pg_ctl" start -D "$DATA" -l "$LOG" -w -t "$TIMEOUT" -s >&2 9>&- && return 0
		held="$(port_held_by "$PORT")"
		if [[ -n "$held" ]] && ! port_answers "$PORT" && ((waited < TIMEOUT + 60)) &&
			tail -n 5 "$LOG" 2>/dev/null | grep -q 'Address already in use'; then
			((waited > 0)) || note "port $PORT is the local end of a connection (${held% }), not a server; \
waiting until it closes"
			sleep 1
			waited=$((waited + 1))
			continue
		fi
		tail -n 30 "$LOG" >&2 || true
		[[ -z "$held" ]] || note "port $PORT is still the local end of a connection (${held% })"
		die "PostgreSQL did not start (log $LOG)"
	done
}

start() {
	if ! running; then
		port_answers "$PORT" && die "port $PORT is taken by another process"
		init_once
		chmod 700 "$CLUSTER" # clusters made before this line was added were world-readable
		say "starting PostgreSQL on 127.0.0.1:$PORT, data $DATA"
		start_server
	fi
	wait_until "$TIMEOUT" "PostgreSQL not answering after ${TIMEOUT}s (log $LOG)" answers
	provision
	say "PostgreSQL ready on 127.0.0.1:$PORT (data $DATA)"
	print_urls
}

status() {
	if running && answers; then
		say "PostgreSQL running on 127.0.0.1:$PORT (data $DATA)"
		print_urls
		return 0
	fi
	say "PostgreSQL not running on 127.0.0.1:$PORT (data $DATA)"
	return 3
}

stop() {
	if running; then
		as_server "$BIN/pg_ctl" stop -D "$DATA" -m fast -w -t "$TIMEOUT" -s >&2
		say "PostgreSQL stopped (port $PORT)"
	else
		say "PostgreSQL not running on 127.0.0.1:$PORT"
	fi
}

destroy() {
	stop
	rm -rf "$CLUSTER"
	# The hashed parent of a relocated cluster goes too once empty.
	[[ "$CLUSTER" != /var/lib/session-control/* ]] || rmdir "$(dirname "$CLUSTER")" 2>/dev/null || true
	say "deleted $CLUSTER"
}

prewarm() {
	running || die "the cluster on port $PORT is not running"
	local db="${1:-}" relation mode
	shift || true
	[[ "$db" =~ ^[a-z_][a-z0-9_]*$ && $# -gt 0 ]] || die "usage: $0 prewarm DATABASE RELATION[:read]..."
	psql_admin -d "$db" -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS pg_prewarm"
	for relation in "$@"; do
		[[ "$relation" =~ ^[a-z_][a-z0-9_]*(:read)?$ ]] || die "not a relation's name: $relation"
		mode=buffer
		[[ "$relation" != *:read ]] || mode=read
		relation="${relation%:read}"
		echo "$relation $(psql_admin -d "$db" -tAc "SELECT pg_prewarm('$relation', '$mode')") blocks ($mode)"
	done
}

case "${1:-}" in
start | status | stop | restart | destroy | prewarm) ;;
*)
	say "usage: $0 {start|stop|restart|status|destroy|prewarm DATABASE RELATION...}"
	exit 2
	;;
esac

if [[ "$1" == start || "$1" == restart ]]; then
	install_postgres
	ensure_server_user
elif ! pg_bindir >/dev/null; then
	say "PostgreSQL is not installed"
	[[ "$1" == status ]] && exit 3
	exit 0
fi
BIN="$(pg_bindir)"
CLUSTER="$(cluster_dir)"
DATA="$CLUSTER/data"
LOG="$CLUSTER/server.log"
mkdir -p "$CLUSTER"
# One caller at a time per cluster: parallel test processes may all call start.
if [[ "$1" != status ]]; then
	exec 9>"$CLUSTER/lock"
	flock -w 300 9 || die "another deploy/postgres.sh holds $CLUSTER/lock for over 300 s"
fi

case "$1" in
start) start ;;
status) status ;;
stop) stop ;;
restart)
	stop
	start
	;;
destroy) destroy ;;
prewarm) prewarm "${@:2}" ;;
esac
