"""``logweir spark`` in local mode beside ``logweir run``, on one file.

Generates N combined lines with ``logweir gen`` (seeded), then, on that
same file, in one run:

* ``logweir run FILE --format combined --no-detect --quiet`` in its own
  process (interpreter start included), best of ``--repeat``;
* ``logweir spark FILE --format combined --master local[W] --quiet`` in
  its own process (JVM and interpreter start included), best of
  ``--repeat``;
* the Spark job again inside this process on a session already started
  (``run_spark_job`` with a warm session), best of ``--repeat``: what a
  long-lived cluster pays per file.

Also timed: a classic per-line Python loop over the first 200,000 lines
(regex, ``strptime``, a dict per row, per-minute counters, Parquet written
from the rows), the design the sizing guide compares with.

Both write the lake, rejects and windows (1m, 5m, 1h; status_class, host,
method). Also printed: the lake's size against the input's (the
compression ratio the sizing guide in docs/scale.md uses) and whether the
two commands' windows agree on their exact columns, and how well the raw
lines compress in zstd batches as a Kafka producer would send them.

Usage::

    .venv/bin/python benchmarks/benchmark_spark.py --lines 1000000
    .venv/bin/python benchmarks/benchmark_spark.py --lines 200000 --repeat 1
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

LOGWEIR = [sys.executable, "-m", "logweir"]
EXACT = ["requests", "bytes", "status_2xx", "status_4xx", "status_5xx"]


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def batch_ratio(path: Path, batch_bytes: int, level: int = 3) -> float:
    """Raw size over zstd size when compressed in batches, as a Kafka
    producer compresses its record batches (the sizing guide's broker
    bytes)."""
    import zstandard

    data = path.read_bytes()
    compressor = zstandard.ZstdCompressor(level=level)
    packed = sum(
        len(compressor.compress(data[i : i + batch_bytes]))
        for i in range(0, len(data), batch_bytes)
    )
    return len(data) / packed


#: The combined format, matched the way a per-line script would match it.
CLASSIC_LINE = re.compile(
    r'^(\S+) \S+ \S+ \[([^\]]+)\] "(\S+) (\S+) (\S+)" (\d{3}) (\d+|-) '
    r'"([^"]*)" "([^"]*)"'
)


def classic_per_line(path: Path, lines: int, out: Path) -> float:
    """Seconds a plain per-line Python loop takes for the first ``lines``
    lines: the classic design the sizing guide compares with.

    For each line: a regex match, ``strptime``, a dict for the row,
    per-minute counters (requests, bytes, status classes), a per-minute
    set of clients and list of sizes; rows written to Parquet every
    100,000 (pyarrow ``from_pylist``). One core: the loop holds the GIL.
    """
    counters: dict[datetime, Counter[str]] = defaultdict(Counter)
    clients: dict[datetime, set[str]] = defaultdict(set)
    sizes: dict[datetime, list[int]] = defaultdict(list)
    rows: list[dict[str, object]] = []
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle):
            if number == lines:
                break
            match = CLASSIC_LINE.match(line)
            if match is None:
                continue
            ip, stamp, method, target, protocol, status, size, referer, agent = (
                match.groups()
            )
            moment = datetime.strptime(stamp, "%d/%b/%Y:%H:%M:%S %z")
            minute = moment.replace(second=0)
            count = counters[minute]
            count["requests"] += 1
            count[status[0] + "xx"] += 1
            value = 0 if size == "-" else int(size)
            count["bytes"] += value
            clients[minute].add(ip)
            sizes[minute].append(value)
            rows.append(
                {
                    "ts": moment,
                    "client_ip": ip,
                    "method": method,
                    "path": target,
                    "protocol": protocol,
                    "status": int(status),
                    "bytes": value,
                    "referer": referer,
                    "user_agent": agent,
                }
            )
            if len(rows) == 100_000:
                pq.write_table(pa.Table.from_pylist(rows), out / f"{number}.parquet")
                rows.clear()
    if rows:
        pq.write_table(pa.Table.from_pylist(rows), out / "last.parquet")
    return time.perf_counter() - started


def timed_command(command: list[str], out: Path, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        shutil.rmtree(out, ignore_errors=True)
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    from logweir.gen import generate
    from logweir.sinks import AggregateStore
    from logweir.spark import SparkJobConfig, build_session, run_spark_job

    work = Path(tempfile.mkdtemp(prefix="logweir-spark-bench-"))
    try:
        log = work / "access.log"
        generate(args.lines, log, fmt="combined", seed=args.seed)
        size = log.stat().st_size
        master = f"local[{args.cores}]"
        common = ["--format", "combined", "--quiet"]

        run_out = work / "run"
        run_s = timed_command(
            [*LOGWEIR, "run", str(log), "--out", str(run_out), "--no-detect", *common],
            run_out,
            args.repeat,
        )
        spark_out = work / "spark-cli"
        spark_command = [*LOGWEIR, "spark", str(log), "--out", str(spark_out)]
        spark_cli_s = timed_command(
            [*spark_command, "--master", master, *common],
            spark_out,
            args.repeat,
        )

        classic_lines = min(200_000, args.lines)
        classic_s = classic_per_line(log, classic_lines, work / "classic")

        started = time.perf_counter()
        session = build_session(master, "logweir-benchmark")
        session_s = time.perf_counter() - started
        warm_s = float("inf")
        warm_out = work / "spark-warm"
        for _ in range(args.repeat):
            shutil.rmtree(warm_out, ignore_errors=True)
            config = SparkJobConfig(inputs=(str(log),), out=warm_out, format="combined")
            started = time.perf_counter()
            summary = run_spark_job(config, session)
            warm_s = min(warm_s, time.perf_counter() - started)
        session.stop()

        def windows(out: Path) -> object:
            with AggregateStore(out / "logweir.duckdb") as store:
                frame = store.table("windows")
            key = ["window_size_s", "window_start", "dimension", "key"]
            return frame.sort(key).select([*key, *EXACT])

        agree = windows(run_out).equals(windows(warm_out))  # type: ignore[attr-defined]
        run_lake = folder_bytes(run_out / "events")
        spark_lake = folder_bytes(warm_out / "events")

        lines = args.lines
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, load {os.getloadavg()[0]:.1f}"
        )
        print(
            f"input: {lines:,} combined lines, {size / 1e6:.0f} MB "
            f"({size / lines:.0f} bytes a line), seed {args.seed}; "
            f"best of {args.repeat}\n"
        )
        print("| command | wall s | lines/s | vs logweir run |")
        print("| --- | ---: | ---: | ---: |")
        rows = [
            ("logweir run (workers: every core)", run_s),
            (f"logweir spark --master {master} (JVM start included)", spark_cli_s),
            (f"Spark job, warm session, {master}", warm_s),
        ]
        for name, seconds in rows:
            print(
                f"| {name} | {seconds:.2f} | {lines / seconds:,.0f} | "
                f"{run_s / seconds:.2f}x |"
            )
        print(
            f"\nSpark session start: {session_s:.1f} s; events {summary.events:,}, "
            f"window rows {summary.window_rows:,}; exact window columns equal "
            f"to logweir run's: {agree}"
        )
        print(
            f"lake: logweir run {run_lake / 1e6:.1f} MB "
            f"({size / run_lake:.1f}x smaller than the input, "
            f"{run_lake / lines:.1f} bytes an event); "
            f"logweir spark {spark_lake / 1e6:.1f} MB"
        )
        print(
            f"classic per-line Python loop (regex, strptime, dict, counters, "
            f"Parquet from_pylist; 1 core) on the first {classic_lines:,} lines: "
            f"{classic_s:.2f} s, {classic_lines / classic_s:,.0f} lines/s"
        )
        print(
            "raw lines, zstd level 3 in batches (a Kafka producer's view): "
            f"{batch_ratio(log, 64 << 10):.1f}x in 64 KiB batches, "
            f"{batch_ratio(log, 1 << 20):.1f}x in 1 MiB batches"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
