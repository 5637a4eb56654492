#!/usr/bin/env bash
# The whole suite, with the real components it needs started by the project:
# Debian's headless chromium (dashboard and report tests) and one
# single-node Kafka broker (KRaft, loopback) shared by every pytest worker.
# `make test` runs this after setting up .venv; extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-browser.sh >/dev/null

kafka_dir="$(mktemp -d "${TMPDIR:-/tmp}/logweir-kafka.XXXXXX")"
trap 'scripts/kafka/stop.sh "$kafka_dir" >/dev/null 2>&1 || true' EXIT
echo "starting a Kafka broker for the tests (first run downloads its jars)" >&2
LOGWEIR_KAFKA_BOOTSTRAP="$(scripts/kafka/start.sh "$kafka_dir")"
export LOGWEIR_KAFKA_BOOTSTRAP
echo "kafka: $LOGWEIR_KAFKA_BOOTSTRAP" >&2

# Spark tests share one JVM: --dist loadgroup keeps their group on one worker.
.venv/bin/python -m pytest -q -n auto --dist loadgroup "$@"
