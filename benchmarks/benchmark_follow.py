"""How soon a followed file's new line reaches ``Follower.poll``, against ``tail -F``.

A writer process appends ``--lines`` lines, one ``write`` each, at
``--rate`` lines per second; each line holds the ``CLOCK_MONOTONIC`` time
it was written (the clock every process shares). The reader takes the time
again when the line comes out of:

* ``Follower`` with inotify (the normal path), and the same reading after
  every write (``coalesce_s=0``);
* ``Follower(use_inotify=False)``, stat polling every ``--interval`` s;
* GNU ``tail -F -n 0`` (inotify), and ``tail -F ---disable-inotify -s
  INTERVAL`` (polling), the peers, read through a pipe.

Latency is the difference: p50, p99 and max per path. It includes the
reader's own waiting only (``poll(0.5)`` in a loop), nothing downstream.
CPU is the reader's CPU time (user + system) over the writing time, in %
of one core: for the Follower it includes turning each line into a
Python string to read its timestamp, which a pipeline does not do.
Then a catch-up figure: lines per second handed out from a file of
``--catchup-lines`` lines already written (page cache, one core).

Usage::

    .venv/bin/python benchmarks/benchmark_follow.py
    .venv/bin/python benchmarks/benchmark_follow.py --lines 2000 --rate 500

Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from logweir.sources import Follower
from logweir.sources.follow import DEFAULT_COALESCE_S

#: Latencies in ms, and CPU % of one core while the writer ran.
Figures = tuple[list[float], float]


def write_lines(path: str, lines: int, rate: float) -> None:
    """The writer process: one timestamped line per write, at a steady rate."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    started = time.monotonic()
    for n in range(lines):
        due = started + n / rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        os.write(fd, b"%d %d\n" % (time.monotonic_ns(), n))
    os.close(fd)


def start_writer(path: Path, lines: int, rate: float) -> subprocess.Popen[bytes]:
    command = [sys.executable, __file__, "--write", str(path), str(lines), str(rate)]
    return subprocess.Popen(command)


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def follower_latencies(
    path: Path,
    lines: int,
    rate: float,
    inotify: bool,
    interval: float,
    coalesce_s: float = DEFAULT_COALESCE_S,
) -> Figures:
    path.write_bytes(b"")
    latencies: list[float] = []
    me = psutil.Process()
    with Follower(
        [str(path)],
        use_inotify=inotify,
        poll_interval_s=interval,
        coalesce_s=coalesce_s,
    ) as follower:
        writer = start_writer(path, lines, rate)
        cpu, started = cpu_seconds(me), time.monotonic()
        deadline = started + lines / rate + 30
        while len(latencies) < lines and time.monotonic() < deadline:
            for batch in follower.poll(0.5):
                now = time.monotonic_ns()
                for line in batch.lines.lines.to_list():
                    latencies.append((now - int(line.split()[0])) / 1e6)
        share = (cpu_seconds(me) - cpu) / (time.monotonic() - started)
        writer.wait()
    return latencies, 100 * share


def tail_latencies(path: Path, lines: int, rate: float, options: list[str]) -> Figures:
    path.write_bytes(b"")
    latencies: list[float] = []
    tail = subprocess.Popen(
        ["tail", "-F", "-n", "0", *options, str(path)], stdout=subprocess.PIPE
    )
    time.sleep(0.5)  # let tail open the file before the first line
    writer = start_writer(path, lines, rate)
    process = psutil.Process(tail.pid)
    cpu, started = cpu_seconds(process), time.monotonic()
    assert tail.stdout is not None
    for raw in tail.stdout:
        latencies.append((time.monotonic_ns() - int(raw.split()[0])) / 1e6)
        if len(latencies) == lines:
            break
    share = (cpu_seconds(process) - cpu) / (time.monotonic() - started)
    writer.wait()
    tail.kill()
    tail.wait()
    return latencies, 100 * share


def catchup_lines_per_s(path: Path, lines: int) -> float:
    path.write_bytes(b"".join(b"%d catch up line\n" % n for n in range(lines)))
    started = time.perf_counter()
    seen = 0
    with Follower([str(path)]) as follower:
        while seen < lines:
            seen += sum(len(b.lines.lines) for b in follower.poll(1.0))
    return lines / (time.perf_counter() - started)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--write":
        write_lines(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0, help="lines per second")
    parser.add_argument("--interval", type=float, default=0.25, help="polling, s")
    parser.add_argument("--catchup-lines", type=int, default=1_000_000)
    args = parser.parse_args()
    rows: list[tuple[str, Figures]] = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "app.log"
        rows.append(
            (
                f"Follower, inotify (coalescing {DEFAULT_COALESCE_S * 1000:g} ms)",
                follower_latencies(path, args.lines, args.rate, True, args.interval),
            )
        )
        rows.append(
            (
                "Follower, inotify, no coalescing",
                follower_latencies(
                    path, args.lines, args.rate, True, args.interval, coalesce_s=0.0
                ),
            )
        )
        rows.append(
            (
                f"Follower, polling every {args.interval} s",
                follower_latencies(path, args.lines, args.rate, False, args.interval),
            )
        )
        if shutil.which("tail"):
            rows.append(
                ("tail -F (inotify)", tail_latencies(path, args.lines, args.rate, []))
            )
            polling = ["---disable-inotify", "-s", str(args.interval)]
            rows.append(
                (
                    f"tail -F, polling every {args.interval} s",
                    tail_latencies(path, args.lines, args.rate, polling),
                )
            )
        catchup = catchup_lines_per_s(Path(folder) / "big.log", args.catchup_lines)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {load}; "
        f"{args.lines} lines at {args.rate:g} lines/s, one write each\n"
    )
    print("| path | lines | p50 ms | p99 ms | max ms | CPU % of a core |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, (values, cpu) in rows:
        print(
            f"| {name} | {len(values)} | {percentile(values, 0.5):.2f} | "
            f"{percentile(values, 0.99):.2f} | {max(values):.2f} | {cpu:.1f} |"
        )
    print(
        f"\nCatch-up: {args.catchup_lines} lines already written, handed out at "
        f"{catchup / 1e6:.2f} M lines/s"
    )


if __name__ == "__main__":
    main()
