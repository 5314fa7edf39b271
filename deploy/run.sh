#!/usr/bin/env bash
# The main job: the whole system on local defaults.
#
#   deploy/run.sh                       set up, start Kafka, run registry + admin API + demo service
#   deploy/run.sh --demo-sessions 500   extra arguments go to `python -m devstack dev`
#
# Installs what is missing (deploy/install.sh), starts the local Kafka broker (idempotently; an
# exported KAFKA_BOOTSTRAP_SERVERS is used as given), then runs the registry on a SQLite read
# model, the admin API on http://127.0.0.1:8000 and the demo platform service on
# http://127.0.0.1:8001, and prints the admin URL with a development admin token. Ctrl-C, SIGTERM
# or SIGHUP (to this script: it execs devstack) stop the services; the broker keeps running
# (`bash deploy/kafka.sh stop`).
set -euo pipefail

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/lib.sh
source "$DEPLOY_DIR/lib.sh"
PYTHON="$REPO_DIR/.venv/bin/python"
cd "$REPO_DIR"

bash "$DEPLOY_DIR/install.sh"
if [[ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
	KAFKA_BOOTSTRAP_SERVERS="$(started_value kafka.sh KAFKA_BOOTSTRAP_SERVERS)"
fi
export KAFKA_BOOTSTRAP_SERVERS
echo "run.sh: Kafka at $KAFKA_BOOTSTRAP_SERVERS"
exec "$PYTHON" -m devstack dev "$@"
