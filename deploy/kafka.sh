#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft, combined broker+controller) on the loopback interface,
# run from the official jars on Maven Central — no Docker, no tarball download.
#
#   deploy/kafka.sh fetch    copy the Kafka jars into the cache (once per Kafka version)
#   deploy/kafka.sh libs     fetch if needed; print the folder of the jars (for `java -cp '<it>/*'`)
#   deploy/kafka.sh start    fetch if needed, format storage once, start, wait until ready
#   deploy/kafka.sh status   succeed if the broker runs and answers
#   deploy/kafka.sh stop     SIGTERM, wait, then SIGKILL; idempotent
#   deploy/kafka.sh topics   create the contract's topics (KafkaSettings from the environment)
#   deploy/kafka.sh cluster start|stop|status|rotate USER|grant PREFIX|acls
#                            a secured three-node cluster (SASL_SSL, SCRAM, TLS, ACLs) on other
#                            ports: see deploy/kafka_cluster.sh and docs/security.md
#
# Environment: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (port+1), SESSIONS_STATE_DIR (<repo>/.state),
# KAFKA_HEAP (1g), KAFKA_START_TIMEOUT (90 s), XDG_CACHE_HOME (~/.cache), KAFKA_JVM_OPTS (none: more
# options for the broker's JVM and its storage tool; the tests' private brokers, short-lived and
# lightly loaded, use -XX:TieredStopAtLevel=1, which starts one on 40% less CPU).
# start/status end with the line KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:<port> (tests parse it).
set -euo pipefail

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/lib.sh
source "$DEPLOY_DIR/lib.sh"
POM="$DEPLOY_DIR/kafka/pom.xml"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/session-control/kafka-$KAFKA_VERSION"
LIBS="$CACHE_DIR/libs"
# The marker holds the pom's checksum, so editing the pom re-fetches.
MARKER="$CACHE_DIR/fetched.sha256"

PORT="${KAFKA_PORT:-9092}"
CTRL_PORT="${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
STATE_ROOT="$(state_root)"
STATE="$STATE_ROOT/kafka-$PORT"
PID_FILE="$STATE/kafka.pid"
LOG_FILE="$STATE/kafka.out"
TIMEOUT="${KAFKA_START_TIMEOUT:-90}"

pom_sum() { sha256sum "$POM" | cut -d' ' -f1; }

fetch() {
	if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$(pom_sum)" ]]; then
		return 0
	fi
	command -v mvn >/dev/null || die "mvn not found (apt-get install maven, or run deploy/install.sh)"
	say "fetching Apache Kafka $KAFKA_VERSION jars from Maven Central into $LIBS"
	rm -rf "$LIBS" "$CACHE_DIR"/cds-*.jsa*
	mkdir -p "$LIBS"
	# sed: Maven 3.8 prints colour resets even in batch mode.
	mvn -q -B -f "$POM" dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$LIBS" </dev/null 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2 ||
		die "fetching the Kafka jars failed"
	[[ -f "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "kafka_2.13-$KAFKA_VERSION.jar missing after fetch"
	pom_sum >"$MARKER"
}

running_pid() {
	local pid
	[[ -f "$PID_FILE" ]] || return 1
	pid="$(cat "$PID_FILE")"
	[[ -n "$pid" ]] && alive "$pid" || return 1
	# Guard against a recycled pid: it must be our broker.
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "kafka.Kafka $STATE/server.properties" || return 1
	echo "$pid"
}

write_config() {
	mkdir -p "$STATE/data"
	cat >"$STATE/server.properties" <<EOF
# Written by deploy/kafka.sh; rewritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CTRL_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CTRL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CTRL_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$STATE/data
num.partitions=1
auto.create.topics.enable=false
# One node: every internal topic has a single replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Consumer groups form at once (tests and dev start many short-lived groups).
group.initial.rebalance.delay.ms=0
EOF
	kafka_log4j "$STATE"
}

# A broker's log4j2 configuration in DIR: warnings to DIR/server.log (rolled at 20 MB), and the
# start-up line that readiness waits for. Both modes use it (kafka_cluster.sh too).
kafka_log4j() {
	local dir="$1"
	cat >"$dir/log4j2.properties" <<EOF
appender.file.type=RollingFile
appender.file.name=file
appender.file.fileName=$dir/server.log
appender.file.filePattern=$dir/server.log.%i
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%d] %p %m (%c)%n
appender.file.policies.type=Policies
appender.file.policies.size.type=SizeBasedTriggeringPolicy
appender.file.policies.size.size=20MB
appender.file.strategy.type=DefaultRolloverStrategy
appender.file.strategy.max=2
rootLogger.level=WARN
rootLogger.appenderRef.file.ref=file
logger.started.name=kafka.server.KafkaRaftServer
logger.started.level=INFO
EOF
}

# Class data sharing (AppCDS): the classes a broker loads (some 9,000, Scala's and Kafka's),
# parsed and verified once and mapped by every later JVM from one archive, one per Kafka version
# and JVM build (a file next to the jars). A broker starts in 3.8 s instead of 6.2, a cluster in
# 20 s instead of 28, a tool in 0.5 s instead of 0.9, on this 2-core machine; the tests start some
# thirty brokers. The first broker started without an archive writes one as it exits
# (-XX:ArchiveClassesAtExit); it becomes the one only once a trial JVM has mapped it and checked
# the checksum of every region (a truncated archive crashes the JVM that maps it, with SIGBUS).
# A broker SIGKILLed while writing leaves one cut short: the next `stop` or `start` discards it.
# JVM warnings go to stderr, so an archive the JVM declines (another classpath) costs only its
# speed and never adds a line to a tool's output.
cds_archive() {
	local jvm
	jvm="$(readlink -f "$(command -v java)")"
	jvm="$(stat -c '%s %Y' "$(dirname "$jvm")/../lib/server/libjvm.so" 2>/dev/null | cksum | cut -d' ' -f1)"
	echo "$CACHE_DIR/cds-$jvm.jsa"
}
JVM_LOG=(-Xlog:disable -Xlog:all=warning:stderr:uptime,level,tags)
CDS_ARCHIVE=""
CDS_USE=()
if command -v java >/dev/null; then
	CDS_ARCHIVE="$(cds_archive)"
	[[ -s "$CDS_ARCHIVE" ]] && CDS_USE=(-XX:SharedArchiveFile="$CDS_ARCHIVE")
fi

# The CDS options of a broker about to start in $1: the archive, or (none yet) write one at exit.
cds_broker_options() {
	local dir="$1" pending
	cds_settle "$dir"
	if [[ -s "$CDS_ARCHIVE" ]]; then
		CDS_OPTS=(-XX:SharedArchiveFile="$CDS_ARCHIVE")
	elif java -Xshare:on -version >/dev/null 2>&1; then # a dynamic archive extends the JVM's own
		pending="$CDS_ARCHIVE.$$.tmp"
		echo "$pending" >"$dir/cds.pending"
		CDS_OPTS=(-XX:ArchiveClassesAtExit="$pending")
	else
		CDS_OPTS=()
	fi
}

# Once the broker of $1 has exited: the archive it wrote becomes the one if a JVM maps it whole
# (a rename, so a JVM starting meanwhile maps all of it or none); otherwise it is deleted.
cds_settle() {
	local dir="$1" pending
	[[ -f "$dir/cds.pending" ]] || return 0
	pending="$(cat "$dir/cds.pending")"
	if [[ -s "$pending" && ! -e "$CDS_ARCHIVE" ]] && cds_maps_whole "$pending"; then
		mv "$pending" "$CDS_ARCHIVE"
	fi
	rm -f "$pending" "$dir/cds.pending"
}

# A JVM maps the archive $1 and runs; one that crashes on it writes no hs_err file and its
# abort is not reported (the subshell's stderr).
cds_maps_whole() {
	(java "${JVM_LOG[@]}" -XX:ErrorFile=/dev/null -Xshare:on -XX:+VerifySharedSpaces \
		-XX:SharedArchiveFile="$1" -cp "$LIBS/*" kafka.tools.StorageTool random-uuid >/dev/null 2>&1) 2>/dev/null
}

# The JVM of a one-shot Kafka tool (StorageTool, AclCommand): C1 only. A tool runs for about
# a second, so compiling for the long run only costs CPU: 1.3 s of CPU a run against 2.3-2.7 s.
TOOL_JAVA=(java -XX:TieredStopAtLevel=1 "${JVM_LOG[@]}" "${CDS_USE[@]}")

# A cluster id in the form `kafka-storage random-uuid` prints (16 bytes in base64url without
# padding, never starting with '-', never one of Kafka's two reserved ids; Kafka's are UUIDs of
# version 4, these 16 random bytes, which nothing checks), without the 0.6 s of a JVM: a test's
# private broker starts from nothing.
new_cluster_id() {
	local id tries
	for tries in 1 2 3 4 5 6 7 8; do
		id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')" || break
		if [[ ${#id} -eq 22 && "$id" != -* && "$id" != AAAAAAAAAAAAAAAAAAAAA[AQ] ]]; then
			echo "$id"
			return 0
		fi
	done
	die "making a cluster id from /dev/urandom failed"
}

# shellcheck disable=SC2086 # KAFKA_JVM_OPTS: words, on purpose
format_once() {
	[[ -f "$STATE/data/meta.properties" ]] && return 0
	if [[ ! -s "$STATE/cluster.id" ]]; then
		new_cluster_id >"$STATE/cluster.id.tmp"
		mv "$STATE/cluster.id.tmp" "$STATE/cluster.id"
	fi
	"${TOOL_JAVA[@]}" ${KAFKA_JVM_OPTS:-} -Dlog4j2.configurationFile="$STATE/log4j2.properties" -cp "$LIBS/*" kafka.tools.StorageTool \
		format --standalone -t "$(cat "$STATE/cluster.id")" -c "$STATE/server.properties" >&2 ||
		die "formatting storage in $STATE/data failed"
}

ready() {
	local pid="$1"
	port_answers "$PORT" && grep -q "Kafka Server started" "$STATE/server.log" 2>/dev/null &&
		alive "$pid"
}

# Ready, or not yet; ends the script if the broker has exited.
ready_or_died() {
	local pid="$1"
	ready "$pid" && return 0
	if ! alive "$pid"; then
		tail -n 40 "$LOG_FILE" "$STATE/server.log" >&2 2>/dev/null || true
		die "broker exited during start-up (logs: $LOG_FILE, $STATE/server.log)"
	fi
	return 1
}

wait_ready() {
	wait_until "$TIMEOUT" "broker not ready after ${TIMEOUT}s (logs: $STATE)" ready_or_died "$1"
}

# Have the broker create __consumer_offsets now (a coordinator lookup does), so the first consumer
# group of a test does not meet GroupCoordinatorNotAvailable. Best effort: needs aiokafka.
warm_up() {
	"$REPO_DIR/.venv/bin/python" - "127.0.0.1:$PORT" >&2 2>/dev/null <<'EOF' || say "(group coordinator warm-up skipped)"
import asyncio, sys
from aiokafka.admin import AIOKafkaAdminClient

async def main() -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=sys.argv[1])
    await admin.start()
    try:
        for _ in range(60):
            try:
                await admin.list_consumer_group_offsets("session-control-warm-up")
                return
            except Exception:
                await asyncio.sleep(0.5)
    finally:
        await admin.close()

asyncio.run(main())
EOF
}

start() {
	command -v java >/dev/null || die "java not found (apt-get install openjdk-17-jre-headless)"
	# The log dirs hold every session event (user ids, addresses, user agents): this user's only.
	umask 077
	mkdir -p "$STATE"
	chmod 700 "$STATE"
	# One start at a time per broker: parallel test processes may all call start.
	exec 9>"$STATE/lock"
	flock 9
	local pid
	if pid="$(running_pid)"; then
		wait_ready "$pid"
		say "kafka $KAFKA_VERSION already running (pid $pid) on 127.0.0.1:$PORT"
		echo "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$PORT"
		return 0
	fi
	if port_answers "$PORT" || port_answers "$CTRL_PORT"; then
		die "port $PORT or $CTRL_PORT is taken by another process"
	fi
	fetch
	write_config
	format_once
	# A fresh server.log so readiness is judged by this run's start-up line.
	rm -f "$STATE/server.log"
	say "starting kafka $KAFKA_VERSION on 127.0.0.1:$PORT (controller $CTRL_PORT), state $STATE"
	cds_broker_options "$STATE"
	# shellcheck disable=SC2086 # KAFKA_JVM_OPTS: words, on purpose
	nohup java -Xmx"${KAFKA_HEAP:-1g}" -Xms256m -XX:+UseG1GC "${JVM_LOG[@]}" "${CDS_OPTS[@]}" ${KAFKA_JVM_OPTS:-} -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$STATE/log4j2.properties" -Dkafka.logs.dir="$STATE" \
		-cp "$LIBS/*" kafka.Kafka "$STATE/server.properties" </dev/null >"$LOG_FILE" 2>&1 9>&- &
	pid=$!
	echo "$pid" >"$PID_FILE"
	wait_ready "$pid"
	warm_up
	say "kafka ready (pid $pid)"
	echo "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$PORT"
}

status() {
	local pid
	if pid="$(running_pid)" && ready "$pid"; then
		say "kafka running (pid $pid) on 127.0.0.1:$PORT, state $STATE"
		echo "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$PORT"
		return 0
	fi
	say "kafka not running on 127.0.0.1:$PORT (state $STATE)"
	return 3
}

stop() {
	local pid waited=0
	if ! pid="$(running_pid)"; then
		rm -f "$PID_FILE"
		cds_settle "$STATE"
		say "kafka not running on 127.0.0.1:$PORT"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	while alive "$pid"; do
		if ((waited >= 120)); then # 30 s of controlled shutdown, then no more patience
			say "kafka (pid $pid) ignored SIGTERM for 30 s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.25
		waited=$((waited + 1))
	done
	while alive "$pid"; do sleep 0.1; done
	cds_settle "$STATE"
	rm -f "$PID_FILE"
	say "kafka stopped (pid $pid)"
}

topics() {
	"$REPO_DIR/.venv/bin/python" "$DEPLOY_DIR/create_topics.py" "$@"
}

# kafka-configs.sh from the fetched jars (this project ships no Kafka scripts): the command the
# topics check prints, run here as `deploy/kafka.sh configs --bootstrap-server ... --alter ...`.
configs() {
	fetch
	"${TOOL_JAVA[@]}" -cp "$LIBS/*" kafka.admin.ConfigCommand "$@"
}

# shellcheck source=deploy/kafka_cluster.sh
source "$DEPLOY_DIR/kafka_cluster.sh"

case "${1:-}" in
fetch) fetch ;;
libs)
	fetch
	echo "$LIBS"
	;;
cluster) cluster "${2:-}" "${3:-}" ;;
start) start ;;
status) status ;;
stop) stop ;;
restart)
	stop
	start
	;;
topics) topics "${@:2}" ;;
configs) configs "${@:2}" ;;
*)
	say "usage: $0 {start|stop|restart|status|fetch|libs|topics [--check]|configs ARGS|cluster start|stop|status|rotate USER|grant PREFIX|acls}"
	exit 2
	;;
esac
