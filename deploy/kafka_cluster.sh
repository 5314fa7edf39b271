# The secured three-node cluster of `deploy/kafka.sh cluster ...`; sourced by kafka.sh (which
# sets LIBS, KAFKA_VERSION, STATE_ROOT, fetch). Not run on its own.
#
# Three KRaft nodes (each broker+controller) on loopback, from the same Maven jars:
#   clients      SASL_SSL, SCRAM-SHA-512, one user per service      ports BASE, BASE+1, BASE+2
#   inter-broker SSL with client certificates (mutual TLS)          ports BASE+10..BASE+12
#   controllers  SSL with client certificates                       ports BASE+20..BASE+22
# A CA and the brokers' certificate are made on the spot with openssl; StandardAuthorizer with
# allow.everyone.if.no.acl.found=false and the ACL table of docs/security.md for one environment
# (topic prefix KAFKA_CLUSTER_TOPIC_PREFIX). Topics are pre-created by the admin user with
# replication factor 3 and min.insync.replicas 2, as a platform team would.
#
# Its Kafka tools run on kafka.sh's TOOL_JAVA (C1 only), and so do its nodes by default
# (KAFKA_CLUSTER_JVM_OPTS): for a cluster that carries the tests' light load, C2 costs more than
# it saves. Measured here, three nodes: 15.9 s of CPU to ready against 29.8, 8.5 s to start
# against 20; idle, 3.4-5 s of CPU a minute against 5-7 s five minutes after start and 7.7 s
# after twenty-five (C2 still compiling).
# Environment: KAFKA_CLUSTER_PORT (19192), KAFKA_CLUSTER_TOPIC_PREFIX (cluster.),
# KAFKA_CLUSTER_HEAP (512m), KAFKA_CLUSTER_JVM_OPTS (-XX:TieredStopAtLevel=1: set it empty for
# the default compilers), KAFKA_START_TIMEOUT, KAFKA_CLUSTER_CREDENTIAL_WAIT (30 s: each node takes a
# SCRAM credential set by start or rotate), SESSIONS_STATE_DIR.
# start/status print KEY=value lines: KAFKA_CLUSTER_BOOTSTRAP_SERVERS, KAFKA_CLUSTER_DIR (CA,
# passwords: users/<name>.password), KAFKA_CLUSTER_TOPIC_PREFIX.

C_BASE="${KAFKA_CLUSTER_PORT:-19192}"
C_PREFIX="${KAFKA_CLUSTER_TOPIC_PREFIX:-cluster.}"
C_DIR="$STATE_ROOT/kafka-cluster-$C_BASE"
C_USERS=(admin registry admin-api gateway outsider)
C_BROKER_DN="CN=kafka-broker"
C_CREDENTIAL_WAIT="${KAFKA_CLUSTER_CREDENTIAL_WAIT:-30}" # s: every node takes a credential set
C_ACL_VERSION=4 # bump when the table changes: a running cluster gets the new grants at start

c_client_port() { echo $((C_BASE + $1 - 1)); }
c_internal_port() { echo $((C_BASE + 10 + $1 - 1)); }
c_controller_port() { echo $((C_BASE + 20 + $1 - 1)); }
c_bootstrap() { echo "127.0.0.1:$(c_client_port 1),127.0.0.1:$(c_client_port 2),127.0.0.1:$(c_client_port 3)"; }

c_pid() {
	local node="$1" pid file="$C_DIR/node$1/kafka.pid"
	[[ -f "$file" ]] || return 1
	pid="$(cat "$file")"
	[[ -n "$pid" ]] && alive "$pid" || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "kafka.Kafka $C_DIR/node$node/server.properties" || return 1
	echo "$pid"
}

# CA, the brokers' key and certificate (SAN 127.0.0.1), keystore; once.
c_tls() {
	local tls="$C_DIR/tls"
	if [[ -f "$tls/broker.p12" ]]; then
		rm -f "$tls/ca.key" "$tls/broker.csr" "$tls/ca.srl" # a cluster made before 2026-12-06 kept them
		return 0
	fi
	command -v openssl >/dev/null || die "openssl not found"
	mkdir -p "$tls"
	openssl rand -hex 24 >"$tls/keystore.password"
	openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=session-control-test-ca" \
		-keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null || die "making the CA failed"
	openssl req -newkey rsa:2048 -nodes -subj "/$C_BROKER_DN" \
		-keyout "$tls/broker.key" -out "$tls/broker.csr" 2>/dev/null || die "making the broker key failed"
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >"$tls/ext.cnf"
	openssl x509 -req -in "$tls/broker.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
		-days 3650 -extfile "$tls/ext.cnf" -out "$tls/broker.pem" 2>/dev/null || die "signing the broker certificate failed"
	openssl pkcs12 -export -in "$tls/broker.pem" -inkey "$tls/broker.key" -name broker \
		-passout "file:$tls/keystore.password" -out "$tls/broker.p12.tmp" || die "making the keystore failed"
	# the CA signs nothing more: its key would let whoever reads it later make a certificate
	# of CN=kafka-broker, a super user on the internal and controller listeners (a review)
	rm -f "$tls/ca.key" "$tls/broker.csr" "$tls/ca.srl"
	mv "$tls/broker.p12.tmp" "$tls/broker.p12"
}

# The client configuration of the brokers' own identity (mutual TLS on the internal listener,
# a super user): what creates the SCRAM users, so no password is ever on a command line.
c_internal_config() {
	cat >"$C_DIR/tls/internal.properties" <<EOF
security.protocol=SSL
ssl.keystore.type=PKCS12
ssl.keystore.location=$C_DIR/tls/broker.p12
ssl.keystore.password=$(cat "$C_DIR/tls/keystore.password")
ssl.truststore.type=PEM
ssl.truststore.location=$C_DIR/tls/ca.pem
EOF
}

# A random password per user, in users/<name>.password (the file a service mounts); once.
c_users() {
	mkdir -p "$C_DIR/users"
	rm -f "$C_DIR/users/"*.password.new # a rotation interrupted before its rename
	local user
	for user in "${C_USERS[@]}"; do
		[[ -s "$C_DIR/users/$user.password" ]] || openssl rand -hex 18 >"$C_DIR/users/$user.password"
		c_password "$user" "$C_DIR/users/$user.password" >/dev/null || exit 1 # refused before a node starts
	done
	c_admin_config
}

# The admin user's client configuration (grant, acls), with its password: written whole, then
# renamed, as `grant` or `acls` may be reading it.
c_admin_config() {
	local -
	set +x # no trace (c_password)
	local password
	password="$(c_password admin "$C_DIR/users/admin.password")" || exit 1
	cat >"$C_DIR/users/admin.properties.tmp" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$password";
ssl.truststore.type=PEM
ssl.truststore.location=$C_DIR/tls/ca.pem
EOF
	mv "$C_DIR/users/admin.properties.tmp" "$C_DIR/users/admin.properties"
}

# The password of user $1 in file $2, as the services read it (surrounding whitespace
# stripped); refused unless it is 16 or more of letters, digits and ._~+/=-. A '\' is an escape
# in the properties file the credential is set from, a '"' ends the admin's JAAS string, and a
# NUL is dropped by bash but read by the services: each would set another password than the one
# the services send. The rest of that set keeps to what every reader takes as written.
c_password() {
	local -
	set +x # bash -x traces every assignment: a password (or its digest) is never traced
	local user="$1" file="$2" password
	tr -d '\000' <"$file" | cmp -s - "$file" ||
		die "$file: the password of $user holds a NUL byte (write a new one: openssl rand -hex 18 >$file)"
	password="$(<"$file")"
	password="${password#"${password%%[![:space:]]*}"}"
	password="${password%"${password##*[![:space:]]}"}"
	[[ "$password" =~ ^[A-Za-z0-9._~+/=-]{16,}$ ]] ||
		die "$file: the password of $user must be 16 or more of letters, digits and ._~+/=- (write a new one: openssl rand -hex 18 >$file, or on a running cluster deploy/kafka.sh cluster rotate $user)"
	printf '%s' "$password"
}

c_write_config() {
	local node="$1" dir="$C_DIR/node$1" voters="" n
	for n in 1 2 3; do voters+="${voters:+,}$n@127.0.0.1:$(c_controller_port "$n")"; done
	mkdir -p "$dir/data"
	cat >"$dir/server.properties" <<EOF
# Written by deploy/kafka.sh cluster; rewritten on every start.
process.roles=broker,controller
node.id=$node
controller.quorum.voters=$voters
listeners=CLIENT://127.0.0.1:$(c_client_port "$node"),INTERNAL://127.0.0.1:$(c_internal_port "$node"),CONTROLLER://127.0.0.1:$(c_controller_port "$node")
advertised.listeners=CLIENT://127.0.0.1:$(c_client_port "$node"),INTERNAL://127.0.0.1:$(c_internal_port "$node")
listener.security.protocol.map=CLIENT:SASL_SSL,INTERNAL:SSL,CONTROLLER:SSL
inter.broker.listener.name=INTERNAL
controller.listener.names=CONTROLLER
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
# Brokers and controllers prove themselves to each other with the broker certificate.
listener.name.internal.ssl.client.auth=required
listener.name.controller.ssl.client.auth=required
ssl.keystore.type=PKCS12
ssl.keystore.location=$C_DIR/tls/broker.p12
ssl.keystore.password=$(cat "$C_DIR/tls/keystore.password")
ssl.truststore.type=PEM
ssl.truststore.location=$C_DIR/tls/ca.pem
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:$C_BROKER_DN
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=false
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
EOF
	kafka_log4j "$dir"
}

c_format() {
	local node="$1" dir="$C_DIR/node$1"
	[[ -f "$dir/data/meta.properties" ]] && return 0
	if [[ ! -s "$C_DIR/cluster.id" ]]; then
		new_cluster_id >"$C_DIR/cluster.id"
	fi
	# no --add-scram: its passwords would be on the command line, which every local user reads
	# in /proc while it runs (a review); the users are made once the cluster is up (c_scram)
	"${TOOL_JAVA[@]}" -Dlog4j2.configurationFile="$dir/log4j2.properties" -cp "$LIBS/*" kafka.tools.StorageTool \
		format -t "$(cat "$C_DIR/cluster.id")" -c "$dir/server.properties" >/dev/null ||
		die "formatting storage of node $node in $dir/data failed"
	# new storage holds no credential or ACL: set them again, whatever the records say
	rm -f "$C_DIR/users.applied" "$C_DIR/acls.done"
}

# Each user's SCRAM-SHA-512 credential, from its password file, for each user whose file is not
# the one its credential was last set from. users.applied holds a line per user, its name and
# the SHA-256 of that password (never the password): a password file written again, by hand or by
# `rotate`, is set at the next `start`. (Until 2026-12-06 users.done held only the names, so a
# changed password was never set and the old one stayed valid.)
c_scram() {
	local user file
	rm -f "$C_DIR/users.done" # the names-only record before users.applied: every credential is set once more
	for user in "${C_USERS[@]}"; do
		file="$C_DIR/users/$user.password"
		c_was_applied "$user" "$file" && continue
		c_set_credential "$user" "$file"
	done
}

# Whether users.applied says user $1's credential was set from the password in file $2 (its
# digest compared in bash: on grep's command line it would be in /proc for every local user).
c_was_applied() {
	local -
	set +x # no trace (c_password)
	local name digest mine
	[[ -f "$C_DIR/users.applied" ]] || return 1
	mine="$(c_digest "$1" "$2")" || exit 1
	while read -r name digest; do
		[[ "$name" == "$1" && "$digest" == "$mine" ]] && return 0
	done <"$C_DIR/users.applied"
	return 1
}

# The SHA-256 of user $1's password in file $2 (of the password and a newline; unsalted, kept
# beside the password file itself in the cluster's 0700 directory).
c_digest() {
	local -
	set +x # no trace (c_password)
	local password
	password="$(c_password "$1" "$2")" || exit 1
	c_sha <<<"$password"
}

# The SHA-256 of standard input, in hex.
c_sha() { sha256sum | cut -d' ' -f1; }

# users.applied with user $1's line replaced by "$1 $2" ($2 the digest of the password its
# credential was set from), or removed when there is no $2; whole.
c_applied() {
	local -
	set +x # no trace (c_password)
	local applied="$C_DIR/users.applied"
	{
		grep -v "^$1 " "$applied" 2>/dev/null || true
		[[ -z "${2:-}" ]] || echo "$1 $2"
	} >"$applied.tmp"
	mv "$applied.tmp" "$applied"
}

# Set user $1's SCRAM-SHA-512 credential from password file $2 through a properties file of its
# own (0600, deleted after), as the brokers' identity on the internal listener: no password on
# a command line. Then wait until every node, asked on its own, lets user $1 in with it (a node
# takes a credential as the cluster's metadata reaches it): a service started after the return
# is refused by none. Only then is it recorded in users.applied, by the digest of the password
# set (not of the file read again: a file written meanwhile is set at the next `start`).
c_set_credential() {
	local -
	set +x # no trace (c_password)
	local user="$1" password said file="$C_DIR/users/$1.scram"
	password="$(c_password "$user" "$2")" || exit 1
	c_internal_config
	# a properties file: the value is what --add-config takes inside its brackets
	cat >"$file" <<EOF
SCRAM-SHA-512=password=$password
EOF
	if ! said="$(c_tool kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$(c_internal_port 1)" \
		--command-config "$C_DIR/tls/internal.properties" --alter --entity-type users \
		--entity-name "$user" --add-config-file "$file" 2>&1)"; then
		rm -f "$file"
		# the tool quotes the credential it refused: never its password
		sed -E 's/password=[^],[:space:]]*/password=(hidden)/g' <<<"$said" >&2
		die "setting the SCRAM credential of user $user failed (deploy/kafka.sh cluster start sets it from $C_DIR/users/$user.password)"
	fi
	rm -f "$file"
	c_python_as "$user" "$2" "$DEPLOY_DIR/await_credential.py" "$C_CREDENTIAL_WAIT" ||
		die "a node has not taken the new SCRAM credential of user $user (above): deploy/kafka.sh cluster start sets the password of $C_DIR/users/$user.password again"
	c_applied "$user" "$(c_sha <<<"$password")" # the password set, whatever the file holds now
	say "set the SCRAM credential of user $user, taken at every node"
}

# A new random password for user $1, set on the running cluster, then written to its file
# (renamed over it: a new file of mode 600) once every node takes it (c_set_credential). Its
# line in users.applied goes first: if the set fails, a node does not take it in time, or the
# command is interrupted before the rename, the file still holds the old password and the next
# `start` sets that one again (run it at once: until then the cluster may hold the new one).
# The connections user $1 has open stay authenticated (the brokers do not re-authenticate,
# docs/security.md): restart whatever connects as it, with the new file, and the old password
# is refused at their next connection.
cluster_rotate() {
	local user="$1" known=""
	for known in "${C_USERS[@]}"; do [[ "$known" == "$user" ]] && break; known=""; done
	[[ -n "$known" ]] || die "no such cluster user: '$user' (one of: ${C_USERS[*]})"
	cluster_status >/dev/null || die "the cluster is not running (deploy/kafka.sh cluster start)"
	exec 9>"$C_DIR/lock"
	flock 9
	local new="$C_DIR/users/$user.password.new"
	openssl rand -hex 18 >"$new" || die "making a password failed"
	# shellcheck disable=SC2064 # the path now: the variable is local
	trap "rm -f $(printf '%q' "$new")" EXIT
	c_applied "$user"
	c_set_credential "$user" "$new"
	mv "$new" "$C_DIR/users/$user.password"
	[[ "$user" != admin ]] || c_admin_config
	say "rotated the password of $user ($C_DIR/users/$user.password): restart what connects as $user"
}

c_start_node() {
	local node="$1" dir="$C_DIR/node$1" pid
	if pid="$(c_pid "$node")"; then return 0; fi
	local port
	for port in "$(c_client_port "$node")" "$(c_internal_port "$node")" "$(c_controller_port "$node")"; do
		port_answers "$port" && die "port $port is taken by another process (another checkout's cluster? \
set KAFKA_CLUSTER_PORT, or SESSIONS_STATE_DIR to that checkout's .state to share it)"
	done
	c_write_config "$node"
	c_format "$node"
	rm -f "$dir/server.log"
	# shellcheck disable=SC2086 # KAFKA_CLUSTER_JVM_OPTS: words, on purpose
	nohup java -Xmx"${KAFKA_CLUSTER_HEAP:-512m}" -Xms128m -XX:+UseG1GC "${JVM_LOG[@]}" "${CDS_USE[@]}" \
		${KAFKA_CLUSTER_JVM_OPTS--XX:TieredStopAtLevel=1} -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$dir/log4j2.properties" -Dkafka.logs.dir="$dir" \
		-cp "$LIBS/*" kafka.Kafka "$dir/server.properties" </dev/null >"$dir/kafka.out" 2>&1 9>&- &
	echo $! >"$dir/kafka.pid"
	say "started cluster node $node (pid $!) on 127.0.0.1:$(c_client_port "$node")"
}

c_node_ready() {
	local node="$1" pid
	pid="$(c_pid "$node")" || {
		tail -n 30 "$C_DIR/node$node/kafka.out" "$C_DIR/node$node/server.log" >&2 2>/dev/null || true
		die "cluster node $node exited during start-up (logs: $C_DIR/node$node)"
	}
	port_answers "$(c_client_port "$node")" && grep -q "Kafka Server started" "$C_DIR/node$node/server.log" 2>/dev/null
}

c_all_ready() { c_node_ready 1 && c_node_ready 2 && c_node_ready 3; }

c_tool() {
	"${TOOL_JAVA[@]}" -Dlog4j2.configurationFile="$C_DIR/node1/log4j2.properties" -cp "$LIBS/*" "$@" 9>&-
}

# The environment's topics and ACLs, once per table version.
c_acls() {
	[[ -f "$C_DIR/acls.done" && "$(cat "$C_DIR/acls.done")" == "$C_ACL_VERSION $C_PREFIX" ]] && return 0
	c_environment "$C_PREFIX"
	echo "$C_ACL_VERSION $C_PREFIX" >"$C_DIR/acls.done"
}

# Create the topics of prefix $1 and grant the ACL table of docs/security.md on them.
c_environment() {
	local p="$1"
	[[ "$p" =~ ^[A-Za-z0-9._-]*$ ]] || die "a topic prefix is letters, digits, '.', '_' and '-' only: '$p'"
	say "creating topics ${p}sessions.* (3 replicas, min.insync.replicas 2) if missing, and the ACLs"
	c_python_as admin "$C_DIR/users/admin.password" SESSIONS_TOPIC_PREFIX="$p" \
		SESSIONS_KAFKA_REPLICATION_FACTOR=3 SESSIONS_KAFKA_MIN_INSYNC_REPLICAS=2 "$DEPLOY_DIR/create_topics.py" >&2 ||
		die "creating the topics failed"
	# the ACL table of docs/security.md, kept in deploy/create_acls.py (one process, no JVM)
	c_python_as admin "$C_DIR/users/admin.password" SESSIONS_TOPIC_PREFIX="$p" \
		"$DEPLOY_DIR/create_acls.py" >&2 || die "granting the ACLs failed"
}

# Run the project's Python with the arguments after $2 (NAME=VALUE settings first, then the
# script and its arguments) as cluster user $1 with the password in file $2: KafkaSettings read
# from the environment, as the services do, with none of the caller's own SESSIONS_KAFKA_*
# (another password, mechanism or certificate of the caller's would be taken instead).
c_python_as() {
	local user="$1" file="$2" name unset=() settings=()
	shift 2
	for name in $(compgen -e); do [[ "$name" != SESSIONS_KAFKA_* ]] || unset+=(-u "$name"); done
	while [[ "${1:-}" == *=* ]]; do settings+=("$1") && shift; done
	env "${unset[@]}" KAFKA_BOOTSTRAP_SERVERS="$(c_bootstrap)" SESSIONS_KAFKA_SECURITY_PROTOCOL=SASL_SSL \
		SESSIONS_KAFKA_SASL_MECHANISM=SCRAM-SHA-512 SESSIONS_KAFKA_SASL_USERNAME="$user" \
		SESSIONS_KAFKA_SASL_PASSWORD_FILE="$file" SESSIONS_KAFKA_SSL_CAFILE="$C_DIR/tls/ca.pem" \
		"${settings[@]}" "$REPO_DIR/.venv/bin/python" "$@" 9>&-
}

c_print() {
	echo "KAFKA_CLUSTER_BOOTSTRAP_SERVERS=$(c_bootstrap)"
	echo "KAFKA_CLUSTER_DIR=$C_DIR"
	echo "KAFKA_CLUSTER_TOPIC_PREFIX=$C_PREFIX"
}

cluster_start() {
	command -v java >/dev/null || die "java not found (apt-get install openjdk-17-jre-headless)"
	mkdir -p "$C_DIR"
	chmod 700 "$C_DIR"
	exec 9>"$C_DIR/lock"
	flock 9
	fetch
	c_tls
	c_users
	local node
	for node in 1 2 3; do
		c_start_node "$node"
	done
	wait_until "$TIMEOUT" "cluster not ready after ${TIMEOUT}s (logs: $C_DIR/node*)" c_all_ready
	c_scram
	c_acls
	say "cluster ready on $(c_bootstrap), state $C_DIR"
	c_print
}

cluster_status() {
	local node up=0
	for node in 1 2 3; do
		if c_pid "$node" >/dev/null; then up=$((up + 1)); fi
	done
	say "cluster: $up of 3 nodes running, state $C_DIR"
	((up == 3)) || return 3
	c_print
}

# TERM to every node at once, so that each broker's controlled shutdown is approved while the
# controllers' quorum still stands; KILL after 30 s. The last node to stop runs alone for about
# 6 s (its Raft client's graceful shutdown times out: no quorum is left), then exits. One that
# waits for an approval no quorum can give (its broker's shutdown raced its peers' controllers,
# as after a node was paused) gets 10 s alone, then KILL, as it would at 30 s.
cluster_stop() {
	local node pid waited=0 alone=0 killed=0 running=()
	for node in 1 2 3; do
		if pid="$(c_pid "$node")"; then kill -TERM "$pid" 2>/dev/null || true; fi
	done
	while :; do
		running=()
		for node in 1 2 3; do
			if pid="$(c_pid "$node")"; then running+=("$node:$pid"); else rm -f "$C_DIR/node$node/kafka.pid"; fi
		done
		((${#running[@]})) || break
		if ((${#running[@]} == 1)); then alone=$((alone + 1)); fi
		if ((!killed && (waited >= 120 || alone >= 40))); then
			killed=1
			say "cluster node(s) ${running[*]%%:*} still running $((waited / 4)) s after SIGTERM$( ((alone < 40)) || echo ", alone for 10 s"): SIGKILL"
			kill -KILL "${running[@]#*:}" 2>/dev/null || true
		fi
		sleep 0.25
		waited=$((waited + 1))
	done
	say "cluster stopped (state $C_DIR)"
}

cluster() {
	umask 077 # every file here holds a secret, or sits beside those that do
	# checked before anything is set: a credential set, then not waited for, is left half done
	[[ "$C_CREDENTIAL_WAIT" =~ ^[1-9][0-9]{0,3}$ ]] ||
		die "KAFKA_CLUSTER_CREDENTIAL_WAIT is whole seconds, 1 to 9999: '$C_CREDENTIAL_WAIT'"
	case "${1:-}" in
	start) cluster_start ;;
	status) cluster_status ;;
	stop) cluster_stop ;;
	rotate)
		[[ -n "${2:-}" ]] || die "usage: $0 cluster rotate USER"
		cluster_rotate "$2"
		;;
	grant)
		# Another environment on the running cluster (the tests that need a log of their own).
		[[ -n "${2:-}" ]] || die "usage: $0 cluster grant TOPIC_PREFIX"
		cluster_status >/dev/null || die "the cluster is not running (deploy/kafka.sh cluster start)"
		c_environment "$2"
		echo "KAFKA_CLUSTER_TOPIC_PREFIX=$2"
		;;
	acls)
		# Every ACL of the running cluster, as the admin user sees them (AclCommand --list).
		cluster_status >/dev/null || die "the cluster is not running (deploy/kafka.sh cluster start)"
		c_tool org.apache.kafka.tools.AclCommand --bootstrap-server "$(c_bootstrap)" \
			--command-config "$C_DIR/users/admin.properties" --list
		;;
	*)
		say "usage: $0 cluster {start|stop|status|rotate USER|grant PREFIX|acls}"
		exit 2
		;;
	esac
}
