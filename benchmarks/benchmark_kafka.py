"""Lines per second through Kafka, against ``logweir run`` on the same file.

Starts a real single-node broker with ``scripts/kafka/start.sh`` (or uses
``LOGWEIR_KAFKA_BOOTSTRAP``), generates ``--lines`` combined-format lines
with :func:`logweir.gen.generate`, and times, in this process:

* **ship**: :class:`~logweir.pipeline.ship.Shipper` following the file
  into a ``--partitions`` topic (parse for the client-IP key, produce,
  zstd, transactions every second), until every line is committed;
* **consume**: one ``logweir run --source`` consumer
  (:class:`~logweir.pipeline.stream.StreamPipeline` over a
  :class:`~logweir.sources.kafka.KafkaSource`) from joining the group
  until every line of the topic is in its lake and windows (checkpoint
  and commits included);
* **follow**: the same streaming pipeline over the file itself
  (``logweir run --follow``), the peer without a broker;
* **batch**: ``logweir run FILE`` with one worker, and with every core.

The broker runs on the same machine and takes CPU from the pipeline: on
two cores the figures are the floor of what a machine of its own gives.

Usage::

    .venv/bin/python benchmarks/benchmark_kafka.py --lines 500000

Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

from logweir.gen import generate
from logweir.pipeline.batch import run_batch
from logweir.pipeline.config import load_config
from logweir.pipeline.consumers import kafka_config, kafka_source
from logweir.pipeline.ship import ShipConfig, Shipper
from logweir.pipeline.stream import StreamPipeline, run_follow
from logweir.sources.follow import Follower
from logweir.sources.kafka import parse_kafka_url
from logweir.sources.stream import Positions, StreamSource

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts" / "kafka"
FOLLOW_BATCH_BYTES = 2 << 20


def start_broker(run_dir: Path) -> str:
    given = os.environ.get("LOGWEIR_KAFKA_BOOTSTRAP")
    if given:
        return given
    started = subprocess.run(
        [str(SCRIPTS / "start.sh"), str(run_dir)],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return started.stdout.strip().splitlines()[-1]


def ship(bootstrap: str, topic: str, log: Path, lines: int, partitions: int) -> float:
    config = ShipConfig(
        url=parse_kafka_url(f"kafka://{bootstrap}/{topic}"),
        shipper_id=f"bench-{topic}",
        format="combined",
        partitions=partitions,
    )

    def make_source(positions: Positions | None) -> StreamSource:
        return Follower([str(log)], resume=positions, batch_bytes=FOLLOW_BATCH_BYTES)

    shipper = Shipper(config, make_source)
    stop = threading.Event()

    def watch() -> None:
        while shipper.summary.lines < lines and not stop.is_set():
            time.sleep(0.01)
        stop.set()  # the shipper commits what it produced, then returns

    threading.Thread(target=watch, daemon=True).start()
    started = time.perf_counter()
    shipper.run(stop)
    return time.perf_counter() - started


class UntilLines:
    """Sets ``stop`` once a pipeline has read ``lines`` lines; notes when the
    first line came (``first_at``), so that joining a group is not counted."""

    def __init__(self, lines: int) -> None:
        self.lines = lines
        self.stop = threading.Event()
        self.first_at: float | None = None

    def __call__(self, pipeline: StreamPipeline) -> None:
        def watch() -> None:
            while pipeline.counters.lines < self.lines:
                if self.first_at is None and pipeline.counters.lines:
                    self.first_at = time.perf_counter()
                time.sleep(0.005)
            self.stop.set()

        threading.Thread(target=watch, daemon=True).start()


def consume(bootstrap: str, topic: str, out: Path, lines: int) -> float:
    config = kafka_config(
        load_config(
            None,
            {
                "source": f"kafka://{bootstrap}/{topic}",
                "group": f"bench-{topic}",
                "consumer_id": "bench",
                "out": out,
                "format": "combined",
                "detect": {"enabled": False},
            },
        )
    )
    watch = UntilLines(lines)
    started = time.perf_counter()
    run_follow(config, lambda p: kafka_source(config, p), watch.stop, on_start=watch)
    ended = time.perf_counter()
    joined = (watch.first_at or started) - started
    print(f"consume: {joined:.2f} s from start to the first line (group join)")
    return ended - started - joined


def follow(log: Path, out: Path, lines: int) -> float:
    config = load_config(
        None,
        {
            "follow": [str(log)],
            "out": out,
            "format": "combined",
            "detect": {"enabled": False},
        },
    )

    def make_source(positions: Positions | None) -> StreamSource:
        return Follower([str(log)], resume=positions, batch_bytes=FOLLOW_BATCH_BYTES)

    watch = UntilLines(lines)
    started = time.perf_counter()
    run_follow(config, make_source, watch.stop, on_start=watch)
    return time.perf_counter() - started


def batch(log: Path, out: Path, workers: int | None) -> float:
    config = load_config(
        None,
        {
            "inputs": [str(log)],
            "out": out,
            "format": "combined",
            "workers": workers,
            "detect": {"enabled": False},
        },
    )
    started = time.perf_counter()
    run_batch(config)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=500_000)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        broker_dir = root / "broker"
        bootstrap = start_broker(broker_dir)
        try:
            log = root / "access.log"
            generate(args.lines, log, fmt="combined", seed=11)
            size = log.stat().st_size
            topic = f"bench-{uuid.uuid4().hex[:8]}"
            rows = [
                (
                    "ship: file -> Kafka (Shipper)",
                    ship(bootstrap, topic, log, args.lines, args.partitions),
                ),
                (
                    "consume: Kafka -> lake + windows (run --source), "
                    "after the group join",
                    consume(bootstrap, topic, root / "kafka-out", args.lines),
                ),
                (
                    "follow: file -> lake + windows (run --follow)",
                    follow(log, root / "follow-out", args.lines),
                ),
                ("batch, 1 worker (run FILE -j 1)", batch(log, root / "batch1", 1)),
                (
                    f"batch, {os.cpu_count()} workers (run FILE)",
                    batch(log, root / "batchn", None),
                ),
            ]
        finally:
            if not os.environ.get("LOGWEIR_KAFKA_BOOTSTRAP"):
                subprocess.run([str(SCRIPTS / "stop.sh"), str(broker_dir)], check=False)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {load}; "
        f"{args.lines:,} combined lines ({size / 2**20:.1f} MiB), "
        f"{args.partitions} partitions, broker on the same machine.\n"
    )
    print("| path | seconds | lines/s | MiB/s |")
    print("| --- | ---: | ---: | ---: |")
    for name, seconds in rows:
        print(
            f"| {name} | {seconds:.2f} | {args.lines / seconds:,.0f} | "
            f"{size / 2**20 / seconds:.1f} |"
        )


if __name__ == "__main__":
    main()
