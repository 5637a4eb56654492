#!/usr/bin/env bash
# Start a single-node Apache Kafka broker (KRaft, broker and controller in
# one process) on 127.0.0.1 at a free port, with its data in RUN_DIR
# (default: a new temporary folder). Waits until the broker is ready, then
# prints its bootstrap address (HOST:PORT) as the only line on stdout.
# Stop it with: scripts/kafka/stop.sh RUN_DIR
#
# Usage: scripts/kafka/start.sh [RUN_DIR]
# Env:   KAFKA_START_TIMEOUT_S (default 180), KAFKA_HEAP (default 1g),
#        KAFKA_PARTITIONS (default partitions of a new topic, 4)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
run="${1:-$(mktemp -d "${TMPDIR:-/tmp}/logweir-kafka.XXXXXX")}"
timeout_s="${KAFKA_START_TIMEOUT_S:-180}"
mkdir -p "$run"
run="$(cd "$run" && pwd)"
if [[ -f "$run/broker.pid" ]] && kill -0 "$(cat "$run/broker.pid")" 2>/dev/null; then
    echo "kafka: a broker already runs from $run" >&2
    cat "$run/bootstrap"
    exit 0
fi

libs="$("$here/fetch.sh")"
classpath="$libs/*"
java_opts=(
    "-Xms256m" "-Xmx${KAFKA_HEAP:-1g}" "-XX:+UseG1GC"
    "-Djava.awt.headless=true"
    "-Dlog4j2.configurationFile=$run/log4j2.properties"
)
cat >"$run/log4j2.properties" <<'PROPS'
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.state.name = state.change.logger
logger.state.level = WARN
PROPS

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# One try: fresh ports and storage, start, wait. Returns 0 when ready, 1
# when the broker exited (a port taken meanwhile: worth another try), 2
# when it did not get ready in time.
attempt() {
    port="$(free_port)"
    controller_port="$(free_port)"
    while [[ "$controller_port" == "$port" ]]; do controller_port="$(free_port)"; done
    # Kafka's cluster ids are 16 random bytes in URL-safe base64, unpadded;
    # one that starts with "-" would be read as an option, so draw again.
    local cluster_id
    cluster_id="$(python3 -c '
import base64, os
while True:
    text = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if not text.startswith("-"):
        print(text)
        break
')"
    rm -rf "$run/data"
    cat >"$run/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$run/data
num.partitions=${KAFKA_PARTITIONS:-4}
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
    echo "kafka: formatting KRaft storage in $run/data" >&2
    java "${java_opts[@]}" -cp "$classpath" kafka.tools.StorageTool format \
        -t "$cluster_id" -c "$run/server.properties" >"$run/format.log" 2>&1 || {
        echo "kafka: storage format failed:" >&2
        cat "$run/format.log" >&2
        return 2
    }
    echo "kafka: starting broker on 127.0.0.1:$port (controller :$controller_port)" >&2
    # setsid + redirected streams: the broker outlives this script and does
    # not hold the caller's pipes open.
    setsid java "${java_opts[@]}" -cp "$classpath" kafka.Kafka "$run/server.properties" \
        >"$run/broker.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$run/broker.pid"
    echo "127.0.0.1:$port" >"$run/bootstrap"
    local deadline=$((SECONDS + timeout_s))
    until grep -q "Kafka Server started" "$run/broker.log" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "kafka: broker exited while starting; last lines of $run/broker.log:" >&2
            tail -n 30 "$run/broker.log" >&2
            return 1
        fi
        if ((SECONDS >= deadline)); then
            echo "kafka: broker not ready after ${timeout_s}s; last lines of $run/broker.log:" >&2
            tail -n 30 "$run/broker.log" >&2
            kill "$pid" 2>/dev/null || true
            return 2
        fi
        sleep 0.5
    done
}

for try in 1 2 3; do
    status=0
    attempt || status=$?
    if ((status == 0)); then
        echo "kafka: ready at 127.0.0.1:$port (pid $pid); stop with: $here/stop.sh $run" >&2
        echo "127.0.0.1:$port"
        exit 0
    fi
    if ((status == 2)); then
        exit 1
    fi
    echo "kafka: try $try failed; trying again with other ports" >&2
done
exit 1
