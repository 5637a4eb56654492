"""Load test for ``logweir run --follow``: a file written at a steady rate.

Generates a pool of realistic lines with ``logweir.gen`` (seeded), then
appends them to a file at ``--rate`` lines per second for ``--seconds``,
every line stamped with the wall clock in milliseconds as it is written
(Apache ``%{msec}t``), while ``logweir run --follow`` follows the file.
Lines go out in blocks every ``--tick-ms`` milliseconds, as a busy server's
buffered log writer does.

Reported:

* throughput: lines written per second, and lines the follower processed
  per second from the first write until it had every line;
* end-to-end latency p50 / p99 / max: the wall time from a line being
  written (its timestamp) to its 1 min window's row being replaced in the
  store (the 5 min and 1 h windows follow once a second), per line, as
  the follower measured it (``--stats``; the ms timestamp floors the
  write time, so figures err high by up to 1 ms);
* CPU % of one core used by the follower while the load ran (psutil),
  and per 10K lines/s;
* peak resident memory of the follower (its ``ru_maxrss``).

Usage::

    .venv/bin/python benchmarks/load_test.py --rate 10000 --seconds 20
    .venv/bin/python benchmarks/load_test.py --rate 100000 --seconds 10

Prints one Markdown table row per run (for BENCHMARKS.md) and the JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from logweir.gen import generate

LOG_FORMAT = '%h %l %u [%{msec}t] "%r" %>s %b "%{Referer}i" "%{User-Agent}i"'
_STAMP = re.compile(rb"\[[^\]]+\]")


def line_pool(count: int, seed: int) -> list[tuple[bytes, bytes]]:
    """Generated combined lines, split around their time stamp."""
    buffer = io.BytesIO()
    generate(count, buffer, seed=seed, malformed_share=0.0, disorder_share=0.0)
    pool = []
    for line in buffer.getvalue().splitlines():
        match = _STAMP.search(line)
        if match is None:
            continue
        pool.append((line[: match.start()] + b"[", b"]" + line[match.end() :] + b"\n"))
    return pool


def write_at_rate(
    path: Path,
    pool: list[tuple[bytes, bytes]],
    rate: int,
    seconds: float,
    tick_s: float,
) -> tuple[int, float]:
    """Append ``rate`` lines per second for ``seconds``; (lines, seconds taken)."""
    started = time.perf_counter()
    written = 0
    index = 0
    with path.open("ab", buffering=0) as handle:
        while True:
            elapsed = time.perf_counter() - started
            if elapsed >= seconds:
                break
            due = int(elapsed * rate) - written
            if due > 0:
                stamp = str(time.time_ns() // 1_000_000).encode()
                block = []
                for _ in range(due):
                    head, tail = pool[index]
                    block.append(head + stamp + tail)
                    index = (index + 1) % len(pool)
                handle.write(b"".join(block))
                written += due
            time.sleep(max(0.0, tick_s - (time.perf_counter() - started - elapsed)))
    return written, time.perf_counter() - started


def checkpointed_lines(out: Path) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from logweir.pipeline.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(out)
    return 0 if checkpoint is None else int(checkpoint.counters.get("lines", 0))


def run(
    rate: int, seconds: float, tick_ms: float, workdir: Path, extra: list[str]
) -> dict[str, Any]:
    log = workdir / "access.log"
    log.write_bytes(b"")
    out = workdir / "out"
    stats = workdir / "stats.json"
    pool = line_pool(min(200_000, max(20_000, rate * 2)), seed=3)
    command = [
        sys.executable,
        "-m",
        "logweir",
        "run",
        "--follow",
        str(log),
        "--out",
        str(out),
        "--format",
        LOG_FORMAT,
        "--stats",
        str(stats),
        "--quiet",
        *extra,
    ]
    follower = subprocess.Popen(command)
    process = psutil.Process(follower.pid)
    deadline = time.monotonic() + 60
    while not (out / "logweir.duckdb").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # let it settle into its polling loop
    cpu_before = process.cpu_times()
    started = time.perf_counter()
    written, write_s = write_at_rate(log, pool, rate, seconds, tick_ms / 1000)
    cpu_during = process.cpu_times()
    caught_up = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if checkpointed_lines(out) >= written:
            caught_up = time.perf_counter() - started
            break
        time.sleep(0.05)
    follower.send_signal(signal.SIGTERM)
    follower.wait(timeout=120)
    figures = json.loads(stats.read_text())
    cpu_s = (cpu_during.user + cpu_during.system) - (
        cpu_before.user + cpu_before.system
    )
    cpu_percent = 100 * cpu_s / write_s
    return {
        "rate": rate,
        "follow_args": " ".join(extra),
        "seconds": round(write_s, 2),
        "lines_written": written,
        "lines_processed": figures["lines"],
        "written_per_s": round(written / write_s),
        "processed_per_s": round(written / caught_up) if caught_up else None,
        "caught_up_after_s": round(caught_up - write_s, 2) if caught_up else None,
        "latency_p50_ms": _ms(figures["latency_s"].get("p50")),
        "latency_p99_ms": _ms(figures["latency_s"].get("p99")),
        "latency_max_ms": _ms(figures["latency_s"].get("max")),
        "cpu_percent": round(cpu_percent, 1),
        "cpu_percent_per_10k": round(cpu_percent * 10_000 / rate, 1),
        "peak_rss_mib": round(figures["peak_rss_bytes"] / (1 << 20)),
        "thread_cpu_s": figures.get("thread_cpu_s"),
        "exit_status": follower.returncode,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=10_000, help="lines per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--tick-ms", type=float, default=10.0, help="write interval")
    parser.add_argument("--keep", type=Path, help="work here and keep the files")
    parser.add_argument(
        "--publish-interval", help="passed to logweir run (default: its own)"
    )
    parser.add_argument(
        "--max-publish-interval", help="passed to logweir run (default: its own)"
    )
    parser.add_argument(
        "--commit-interval", help="passed to logweir run (default: its own)"
    )
    args = parser.parse_args()
    extra = []
    if args.commit_interval:
        extra += ["--commit-interval", args.commit_interval]
    if args.publish_interval:
        extra += ["--publish-interval", args.publish_interval]
    if args.max_publish_interval:
        extra += ["--max-publish-interval", args.max_publish_interval]
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        result = run(args.rate, args.seconds, args.tick_ms, args.keep, extra)
    else:
        with tempfile.TemporaryDirectory(prefix="logweir-load-") as workdir:
            result = run(args.rate, args.seconds, args.tick_ms, Path(workdir), extra)
    python = platform.python_version()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {python}"
    print(f"machine: {machine}")
    print(
        "| rate | lines | processed/s | p50 ms | p99 ms | max ms "
        "| CPU % | CPU %/10K | peak RSS MiB |"
    )
    print(
        f"| {result['rate']:,} | {result['lines_written']:,} "
        f"| {result['processed_per_s']} | {result['latency_p50_ms']} "
        f"| {result['latency_p99_ms']} | {result['latency_max_ms']} "
        f"| {result['cpu_percent']} | {result['cpu_percent_per_10k']} "
        f"| {result['peak_rss_mib']} |"
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
