#!/usr/bin/env bash
# Stop the broker that scripts/kafka/start.sh started from RUN_DIR and
# remove its data. Usage: scripts/kafka/stop.sh RUN_DIR
set -euo pipefail
run="${1:?usage: stop.sh RUN_DIR}"
if [[ -f "$run/broker.pid" ]]; then
    pid="$(cat "$run/broker.pid")"
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "kafka: broker $pid did not stop in 30s; killing it" >&2
            kill -9 "$pid" 2>/dev/null || true
        fi
    fi
fi
rm -rf "$run"
