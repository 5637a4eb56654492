"""How fast logweir writes sample logs and reads logs back as line batches.

Generates N combined-format lines with :func:`logweir.gen.generate` (timed),
then times, on that file, in one process and one core:

* planning the chunks (the newline-counting pass over the file);
* reading every chunk into :class:`~logweir.schema.LineBatch` es: plain,
  gzip-compressed and zstd-compressed copies of the same file, and a plain
  file without malformed lines (no bytes that are not UTF-8, so no block
  takes the per-line road).

The file is read once before timing, so reads come from the page cache:
these are CPU figures, not disk figures. Each step runs ``--repeat``
times; the best wall time is kept.

Usage::

    .venv/bin/python benchmarks/benchmark_sources.py --lines 1000000

Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import zstandard

from logweir.gen import generate
from logweir.sources import expand_inputs, plan_chunks, read_chunk


def best_of(repeat: int, step: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - started)
    return best


def read_lines(path: Path) -> int:
    count = 0
    for inp in expand_inputs([str(path)]):
        for chunk in plan_chunks(inp):
            for batch in read_chunk(chunk):
                count += len(batch)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows: list[tuple[str, float, int]] = []
    with tempfile.TemporaryDirectory() as folder:
        plain = Path(folder) / "access.log"
        seconds = best_of(args.repeat, lambda: generate(args.lines, plain, seed=1))
        size = plain.stat().st_size
        rows.append(("gen combined (write file)", seconds, size))
        raw = plain.read_bytes()
        packed = {
            "gzip": gzip.compress(raw, compresslevel=6),
            "zstd": zstandard.ZstdCompressor(level=3).compress(raw),
        }
        [inp] = expand_inputs([str(plain)])
        seconds = best_of(args.repeat, lambda: plan_chunks(inp))
        rows.append(("plan_chunks (64 MiB chunks)", seconds, size))
        assert read_lines(plain) == args.lines
        rows.append(
            ("read plain", best_of(args.repeat, lambda: read_lines(plain)), size)
        )
        clean = Path(folder) / "clean.log"
        generate(args.lines, clean, seed=1, malformed_share=0.0)
        assert read_lines(clean) == args.lines
        seconds = best_of(args.repeat, lambda: read_lines(clean))
        rows.append(("read plain, all UTF-8", seconds, clean.stat().st_size))
        clean.unlink()
        for kind, data in packed.items():
            path = Path(folder) / f"access.log.{kind}"
            path.write_bytes(data)
            assert read_lines(path) == args.lines
            seconds = best_of(args.repeat, lambda path=path: read_lines(path))
            rows.append((f"read {kind}", seconds, size))
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"{args.lines:,} combined lines, {size / 1e6:.0f} MB; {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {load}; "
        f"best of {args.repeat}\n"
    )
    print("| step | seconds | lines/s | MB/s (uncompressed) |")
    print("| --- | ---: | ---: | ---: |")
    for name, seconds, nbytes in rows:
        rate = args.lines / seconds / 1e6
        throughput = nbytes / seconds / 1e6
        print(f"| {name} | {seconds:.2f} | {rate:.2f} M | {throughput:,.0f} |")


if __name__ == "__main__":
    main()
