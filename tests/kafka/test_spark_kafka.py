"""``logweir spark --source kafka://...`` against the real broker.

Spark's own Kafka connector, fetched from Maven Central by Spark itself
(and cached in ``~/.ivy2``), reads the topic; the job parses with
logweir's parsers and writes the lake and the windows it closed. Compared
with ``logweir run`` over the same lines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from kafka_helpers import Broker
from test_pipeline import FORMAT, batch_reference, lake, log_lines, produce, windows

pytest.importorskip("pyspark")
pytestmark = pytest.mark.slow

#: The connector Spark fetches. PySpark's own version (4.3.0) is the
#: default of ``logweir spark``; the Maven Central this project reaches
#: serves connectors up to 4.2.0, which reads the topic with PySpark 4.3.
PACKAGE = os.environ.get(
    "LOGWEIR_SPARK_KAFKA_PACKAGE", "org.apache.spark:spark-sql-kafka-0-10_2.13:4.2.0"
)
EXACT = ["requests", "bytes", "status_2xx", "status_3xx", "status_4xx", "status_5xx"]


def test_spark_reads_a_topic_through_its_own_kafka_connector(
    kafka_broker: Broker, new_topic: Callable[[int], str], tmp_path: Path
) -> None:
    topic = new_topic(2)
    lines = log_lines(3000)
    produce(kafka_broker.bootstrap, topic, lines)
    out = tmp_path / "spark"
    command = [
        sys.executable, "-m", "logweir", "spark",
        "--source", f"kafka://{kafka_broker.bootstrap}/{topic}",
        "--packages", PACKAGE, "--available-now", "--master", "local[2]",
        "--format", FORMAT, "--windows", "1m", "--lateness", "1m",
        "--out", str(out), "--json",
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["lines"] == 3000
    events = lake(out)
    assert events.height == 3000 - 6  # a bad line in every 500
    assert set(events.get_column("source")) == {f"kafka:{topic}/0", f"kafka:{topic}/1"}
    assert events.select("source", "offset").is_unique().all()
    reference, reference_out = batch_reference(tmp_path, lines)
    columns = ["ts", "client_ip", "path", "status", "bytes", "duration_ms"]
    assert (
        events.select(columns)
        .sort(columns)
        .equals(lake(reference_out).select(columns).sort(columns))
    )
    # Append mode: only the windows the watermark closed are emitted; each
    # equals logweir run's on its exact columns.
    closed = windows(out / "logweir.duckdb").filter(pl.col("window_size_s") == 60)
    assert closed.height > 0
    key = ["window_start", "dimension", "key"]
    expected = reference.filter(pl.col("window_size_s") == 60).join(
        closed.select(key), on=key, how="semi"
    )
    assert (
        closed.sort(key)
        .select(key + EXACT)
        .equals(expected.sort(key).select(key + EXACT))
    )
