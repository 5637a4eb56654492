"""``logweir run`` end to end against GoAccess and a mawk one-liner.

Generates N combined-format lines with ``logweir gen`` (seeded), then times
on that same file, in the same run:

* ``logweir run FILE --format combined --workers W --no-detect --json``
  for each W given (parse, windows, lake and store written, exact), and
  ``logweir run FILE --json`` with every default (the format detected,
  one worker per two cores, the detectors on);
* GoAccess (``goaccess FILE --log-format=COMBINED -o report.json``);
* a mawk one-liner counting requests per minute and per status.

Each is run ``--repeat`` times (best wall time kept). Peak memory is the
largest sum of resident memory over the command's process tree, sampled
every 20 ms with psutil. Stage seconds come from ``logweir run --json``.

Usage::

    .venv/bin/python benchmarks/benchmark_pipeline.py --lines 1000000
    .venv/bin/python benchmarks/benchmark_pipeline.py --lines 200000 --skip-goaccess

Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

LOGWEIR = [sys.executable, "-m", "logweir"]

#: Requests per minute and per status, the way a shell user would count them.
MAWK_PROGRAM = (
    "{ minute[substr($4, 2, 17)]++; status[$9]++ } "
    "END { for (m in minute) n++; for (s in status) print s, status[s]; "
    'print n, "minutes" }'
)


@dataclass
class Timing:
    name: str
    wall_s: float
    peak_rss_bytes: int
    output: str


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def measure(name: str, command: list[str], repeat: int) -> Timing:
    """Run ``command`` ``repeat`` times; the best wall time and its peak memory."""
    best: Timing | None = None
    for _ in range(repeat):
        # Output goes to files, not pipes: a report larger than a pipe's
        # buffer would block the command until it is read.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            started = time.perf_counter()
            process = subprocess.Popen(command, stdout=out, stderr=err, text=True)
            watched = psutil.Process(process.pid)
            peak = 0
            while process.poll() is None:
                peak = max(peak, _tree_rss(watched))
                time.sleep(0.02)
            wall_s = time.perf_counter() - started
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        if process.returncode != 0:
            raise SystemExit(f"{name} failed ({process.returncode}): {stderr.strip()}")
        timing = Timing(name, wall_s, peak, stdout)
        if best is None or timing.wall_s < best.wall_s:
            best = timing
    assert best is not None
    return best


def generate(path: Path, lines: int, seed: int) -> None:
    subprocess.run(
        [
            *LOGWEIR,
            "gen",
            "--lines",
            str(lines),
            "--format",
            "combined",
            "--seed",
            str(seed),
            "--output",
            str(path),
        ],
        check=True,
    )


def _logweir_run(log: Path, out: Path, workers: int, detect: bool) -> list[str]:
    command = [*LOGWEIR, "run", str(log), "--out", str(out), "--format", "combined"]
    command += ["--workers", str(workers), "--json"]
    if not detect:
        command.append("--no-detect")
    return command


def _row(timing: Timing, lines: int, goaccess_s: float | None) -> str:
    rate = lines / timing.wall_s
    ratio = f"{goaccess_s / timing.wall_s:.1f}x" if goaccess_s else "-"
    return (
        f"| {timing.name} | {timing.wall_s:.2f} | {rate:,.0f} | {ratio} | "
        f"{timing.peak_rss_bytes / 2**20:,.0f} |"
    )


def _stages(timing: Timing) -> str:
    report = json.loads(timing.output)
    stages = report.get("stage_s", {})
    parts = [f"{name} {seconds:.2f}" for name, seconds in sorted(stages.items())]
    return f"{timing.name}: " + ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", default="1,2", help="worker counts to time")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--skip-goaccess", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="logweir-bench-"))
    try:
        log = work / "access.log"
        generate(log, args.lines, args.seed)
        size_mb = log.stat().st_size / 1e6
        timings: list[Timing] = []
        for workers in [int(w) for w in args.workers.split(",")]:
            out = work / f"out-{workers}"
            name = f"logweir run, {workers} worker{'s' if workers > 1 else ''}"
            command = _logweir_run(log, out, workers, detect=False)
            timings.append(measure(name, command, args.repeat))
        detect_out = work / "out-detect"
        defaults = [*LOGWEIR, "run", str(log), "--out", str(detect_out)]
        timings.append(
            measure(
                "logweir run, defaults (format detected, detectors on)",
                [*defaults, "--json"],
                args.repeat,
            )
        )
        mawk = measure("mawk one-liner", ["mawk", MAWK_PROGRAM, str(log)], args.repeat)
        goaccess_s = None
        if not args.skip_goaccess and shutil.which("goaccess"):
            goaccess = measure(
                "GoAccess 1.7 (--log-format=COMBINED, JSON report)",
                [
                    "goaccess",
                    str(log),
                    "--log-format=COMBINED",
                    "--no-global-config",
                    "--no-progress",
                    "-o",
                    str(work / "goaccess.json"),
                ],
                1,
            )
            goaccess_s = goaccess.wall_s
            timings.append(goaccess)
        timings.append(mawk)
        print(
            f"{args.lines:,} combined lines ({size_mb:,.0f} MB), "
            f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
            f"Python {platform.python_version()}\n"
        )
        print("| command | wall s | lines/s | vs GoAccess | peak MB |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for timing in timings:
            print(_row(timing, args.lines, goaccess_s))
        print("\nStage seconds (summed over workers):")
        for timing in timings:
            if timing.name.startswith("logweir"):
                print(f"- {_stages(timing)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
