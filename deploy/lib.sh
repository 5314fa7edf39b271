# Helpers the deploy scripts share; not run on its own. A script sources it first thing:
#
#   DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
#   source "$DEPLOY_DIR/lib.sh"
#
# It sets REPO_DIR. Messages go to stderr: stdout carries the KEY=value lines callers parse.

REPO_DIR="$(dirname "$DEPLOY_DIR")"
DEPLOY_SCRIPT="$(basename "$0")"

# A progress line.
say() { printf '%s\n' "$*" >&2; }

# A line naming the script (kafka.sh: ...), and one that ends it.
note() { say "$DEPLOY_SCRIPT: $*"; }
die() {
	note "$*"
	exit 1
}

# Alive and not a zombie (an unreaped zombie still answers kill -0).
alive() {
	kill -0 "$1" 2>/dev/null && [[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]]
}

# Something accepts connections on this loopback port.
port_answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The states (TIME_WAIT, ESTABLISHED, ...) of the TCP connections whose local end is this port: a
# client's ephemeral port (32768-60999 on Linux) can be a server's port too, and while such a
# connection lives (TIME_WAIT: 60 s after it closed) no server can bind the port. Empty if none.
port_held_by() {
	local hex names=(. ESTABLISHED SYN_SENT SYN_RECV FIN_WAIT1 FIN_WAIT2 TIME_WAIT CLOSE CLOSE_WAIT
		LAST_ACK LISTEN CLOSING)
	hex="$(printf '%04X' "$1")"
	awk -v port=":$hex" 'FNR > 1 && substr($2, length($2) - 4) == port && $4 != "0A" { print $4 }' \
		/proc/net/tcp /proc/net/tcp6 2>/dev/null | sort -u | while read -r state; do
		printf '%s ' "${names[$((16#$state))]:-$state}"
	done
}

# The state directory (SESSIONS_STATE_DIR, default <repo>/.state), made if missing, absolute.
state_root() {
	local dir="${SESSIONS_STATE_DIR:-$REPO_DIR/.state}"
	mkdir -p "$dir" && cd "$dir" && pwd
}

# Run COMMAND... every 0.25 s until it succeeds; die with MESSAGE after SECONDS.
wait_until() {
	local seconds="$1" message="$2" waited=0
	shift 2
	until "$@"; do
		((waited < seconds * 4)) || die "$message"
		sleep 0.25
		waited=$((waited + 1))
	done
}

# Run `deploy/SCRIPT start` and print the value of its KEY=value line; on failure show what it
# printed and end the caller.
started_value() {
	local script="$1" key="$2" out
	out="$(bash "$DEPLOY_DIR/$script" start)" || {
		echo "$out" >&2
		die "deploy/$script start failed"
	}
	sed -n "s/^$key=//p" <<<"$out" | tail -n1
}
