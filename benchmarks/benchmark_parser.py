"""Parser throughput: per-line Python against logweir's vectorized parsers.

Run::

    .venv/bin/python benchmarks/benchmark_parser.py [--lines 1000000]
        [--repeat 3] [--update-benchmarks-md] [--before-src DIR]
        [--kinds combined,json,nginx-json,logfmt]

Generates (once, cached under ``$TMPDIR/logweir-bench``) N combined-format
lines, N JSON lines, N ``nginx-json`` lines (``logweir gen --format
nginx-json``, malformed lines included) and N logfmt lines, then times
each approach in a fresh subprocess (so that each one's peak RSS is its
own) and prints lines/s, MB/s, CPU seconds and peak RSS. The best of
``--repeat`` runs is kept (three times as many for the short vectorized
runs); machines here are shared and noisy, and the CPU seconds per million
lines vary far less with other load than the wall time.

Approaches on combined lines:

* ``re`` per line: one compiled regex per line, the request split with
  ``str.split``, status and bytes to ``int``, the time with ``strptime``
  (cached per distinct stamp, as logweir caches too): a complete parser.
* ``split`` per line: ``str.split`` on quotes and spaces, same conversions.
* logweir: ``compile_format("combined").parse(batch)``, the whole batch at
  once, into the canonical schema (Polars, all cores).

The ``re`` parser doubles as the reference: every canonical value logweir
gives is compared with it on every line, so the figures are for an exact
parse. On JSON lines: ``json.loads`` and ``orjson.loads`` per line, and
logweir's ``JsonParser`` when it is installed. On logfmt lines: the pairs of
each line with ``re.findall`` into a dict (1 core, no conversions), and
logweir's ``LogfmtParser``.

``--before-src DIR`` also times logweir's parsers from another source tree
(``DIR/src/logweir``, e.g. ``git archive <commit> src | tar -x -C DIR``),
each in its own process beside the current ones, and checks that both give
the same events and rejects on the combined, nginx-json and logfmt lines.
``--kinds combined`` (or a comma-separated list of inputs) keeps a run to
those inputs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from logweir.schema import EVENT_SCHEMA, LineBatch

CACHE = Path(tempfile.gettempdir()) / "logweir-bench"
ROOT = Path(__file__).resolve().parent.parent

# ------------------------------------------------------------------ data


def _pick(rng: np.random.Generator, choices: list[str], n: int) -> pl.Series:
    return pl.Series(choices).gather(rng.integers(0, len(choices), n))


def generate_combined(n: int, seed: int = 7) -> pl.Series:
    """N combined lines, built column-wise (a few seconds for a million).

    Sorted times over one day, 5,000 client addresses, real-looking paths,
    agents and referers; 1% ``-`` byte counts, 0.5% ``"-"`` requests (both
    common in real logs) and 0.1% requests with a space in the path (which
    take the fallback path).
    """
    rng = np.random.default_rng(seed)
    clients = [".".join(map(str, row)) for row in rng.integers(1, 255, (5000, 4))]
    seconds = np.sort(1_700_000_000 + rng.integers(0, 86_400, n)) * 1_000_000
    stamps = (
        pl.Series(seconds)
        .cast(pl.Datetime("us"))
        .dt.strftime("%d/%b/%Y:%H:%M:%S +0000")
    )
    paths = [f"/api/v1/items/{i}" for i in range(2000)]
    paths += [f"/static/img{i}.png?v={i % 7}" for i in range(500)]
    paths += ["/", "/index.html", "/search?q=hello+world&page=2"]
    agents = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/120.0 Safari/537.36",
        "curl/8.1.2",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    ]
    frame = pl.DataFrame(
        {
            "ip": _pick(rng, clients, n),
            "ts": stamps,
            "method": _pick(rng, ["GET", "GET", "GET", "POST", "HEAD", "PUT"], n),
            "path": _pick(rng, paths, n),
            "status": _pick(rng, ["200", "200", "200", "304", "404", "500"], n),
            "bytes": pl.Series(rng.integers(0, 100_000, n)).cast(pl.String),
            "referer": _pick(rng, ["-", "https://example.com/", "https://a.b/?q=x"], n),
            "agent": _pick(rng, agents, n),
            "roll": rng.random(n),
        }
    )
    request = pl.concat_str(["method", pl.lit(" "), "path", pl.lit(" HTTP/1.1")])
    request = (
        pl.when(pl.col("roll") < 0.005)
        .then(pl.lit("-"))
        .when(pl.col("roll") < 0.006)
        .then(pl.concat_str(["method", pl.lit(" /odd path HTTP/1.1")]))
        .otherwise(request)
    )
    size = pl.when(pl.col("roll") > 0.99).then(pl.lit("-")).otherwise("bytes")
    return frame.select(
        pl.concat_str(
            [
                "ip",
                pl.lit(" - - ["),
                "ts",
                pl.lit('] "'),
                request,
                pl.lit('" '),
                "status",
                pl.lit(" "),
                size,
                pl.lit(' "'),
                "referer",
                pl.lit('" "'),
                "agent",
                pl.lit('"'),
            ]
        ).alias("line")
    ).get_column("line")


def generate_json(n: int, seed: int = 7) -> pl.Series:
    """N JSON lines of access events, as a JSON-logging server writes them."""
    rng = np.random.default_rng(seed)
    seconds = np.sort(1_700_000_000 + rng.integers(0, 86_400, n)) * 1_000_000
    frame = pl.DataFrame(
        {
            "@timestamp": pl.Series(seconds)
            .cast(pl.Datetime("us"))
            .dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "remote_addr": _pick(
                rng, [f"10.0.{i // 250}.{i % 250}" for i in range(5000)], n
            ),
            "method": _pick(rng, ["GET", "GET", "POST", "HEAD"], n),
            "path": _pick(rng, [f"/api/v1/items/{i}" for i in range(2000)], n),
            "status": pl.Series(rng.choice([200, 200, 200, 304, 404, 500], n)),
            "bytes": pl.Series(rng.integers(0, 100_000, n)),
            "duration_ms": pl.Series(rng.integers(1, 5000, n) / 10),
            "user_agent": _pick(rng, ["curl/8.1.2", "Mozilla/5.0 (X11; Linux)"], n),
        }
    )
    return frame.select(pl.struct(pl.all()).struct.json_encode().alias("line"))["line"]


def generate_nginx_json(n: int, seed: int = 7) -> pl.Series:
    """N lines of ``logweir gen --format nginx-json``: nginx's JSON access
    log, with the generator's 0.2 % malformed lines (cut off, garbage,
    empty, a byte that is not UTF-8, read as U+FFFD)."""
    import io

    from logweir.gen.generator import generate

    out = io.BytesIO()
    generate(n, out, fmt="nginx-json", seed=seed)
    text = out.getvalue().decode("utf-8", "replace")
    return pl.Series("line", text.split("\n")[:n])


def generate_logfmt(n: int, seed: int = 7) -> pl.Series:
    """N logfmt lines of a Go web service: time, level, a message (quoted
    when it has spaces), request fields, a duration with its unit."""
    rng = np.random.default_rng(seed)
    millis = np.sort(1_700_000_000_000 + rng.integers(0, 86_400_000, n)) * 1_000
    messages = ['"request completed"', "ok", '"slow request"', '"upstream timeout"']
    frame = pl.DataFrame(
        {
            "time": pl.Series(millis)
            .cast(pl.Datetime("us"))
            .dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
            "level": _pick(rng, ["info", "info", "info", "warn", "error"], n),
            "msg": _pick(rng, messages, n),
            "method": _pick(rng, ["GET", "GET", "POST", "PUT"], n),
            "path": _pick(rng, [f"/api/v1/items/{i}" for i in range(2000)], n),
            "status": _pick(rng, ["200", "200", "201", "404", "500"], n),
            "duration": pl.Series(rng.integers(1, 5000, n)).cast(pl.String) + "ms",
            "bytes": pl.Series(rng.integers(0, 100_000, n)).cast(pl.String),
            "remote_ip": _pick(
                rng, [f"10.0.{i // 250}.{i % 250}" for i in range(5000)], n
            ),
            "request_id": pl.Series(rng.integers(0, 2**40, n)).cast(pl.String),
        }
    )
    pairs = [pl.lit(f"{name}=") + pl.col(name) for name in frame.columns]
    return frame.select(pl.concat_str(pairs, separator=" ").alias("line"))["line"]


GENERATORS: dict[str, Callable[[int], pl.Series]] = {
    "combined": generate_combined,
    "json": generate_json,
    "nginx-json": generate_nginx_json,
    "logfmt": generate_logfmt,
}


def dataset(kind: str, n: int) -> pl.Series:
    path = CACHE / f"{kind}-{n}.parquet"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        GENERATORS[kind](n).to_frame().write_parquet(path)
    return pl.read_parquet(path).get_column("line")


def as_batch(lines: pl.Series) -> LineBatch:
    sizes = lines.str.len_bytes().cast(pl.UInt64) + 1
    offsets = (sizes.cum_sum() - sizes).alias("offset")
    numbers = pl.int_range(1, lines.len() + 1, dtype=pl.UInt64, eager=True)
    return LineBatch("bench.log", lines, offsets, numbers.alias("line_number"))


# ----------------------------------------------------- per-line parsers

COMBINED_RE = re.compile(
    r'^(\S+) (\S+) (\S+) \[([^\]]+)\] "(.*?)" (\d{3}) (\d+|-) "(.*?)" "(.*?)"$'
)


def _time(cache: dict[str, datetime], text: str) -> datetime:
    when = cache.get(text)
    if when is None:
        when = datetime.strptime(text, "%d/%b/%Y:%H:%M:%S %z").astimezone(UTC)
        cache[text] = when
    return when


def _request(line: str) -> tuple[str | None, ...]:
    if line == "-":
        return (None, None, None, None)
    method, _, rest = line.partition(" ")
    target, _, protocol = rest.rpartition(" ")
    path, mark, query = target.partition("?")
    return (method, path or None, query if mark else None, protocol)


def per_line_re(lines: list[str]) -> list[tuple[Any, ...]]:
    """The reference: a complete per-line parser with ``re``."""
    times: dict[str, datetime] = {}
    rows = []
    for line in lines:
        match = COMBINED_RE.match(line)
        if match is None:
            continue
        ip, _, _, stamp, request, status, size, referer, agent = match.groups()
        rows.append(
            (
                _time(times, stamp),
                ip,
                *_request(request),
                int(status),
                None if size == "-" else int(size),
                None if referer == "-" else referer,
                None if agent == "-" else agent,
            )
        )
    return rows


def per_line_split(lines: list[str]) -> list[tuple[Any, ...]]:
    """The same with ``str.split`` (assumes no quote inside quoted fields)."""
    times: dict[str, datetime] = {}
    rows = []
    for line in lines:
        head, request, middle, referer, _, agent, _ = line.split('"')
        ip, _, _, day, zone, _ = head.split(" ")
        status, size = middle.split()
        rows.append(
            (
                _time(times, day[1:] + " " + zone[:-1]),
                ip,
                *_request(request),
                int(status),
                None if size == "-" else int(size),
                None if referer == "-" else referer,
                None if agent == "-" else agent,
            )
        )
    return rows


CANONICAL = [
    "ts", "client_ip", "method", "path", "query", "protocol", "status", "bytes",
    "referer", "user_agent",
]  # fmt: skip


def run_logweir_combined(lines: pl.Series) -> Callable[[], int]:
    from logweir.formats import compile_format

    parser = compile_format("combined")
    batch = as_batch(lines)
    return lambda: parser.parse(batch).events.height


def run_logweir_json(lines: pl.Series) -> Callable[[], int]:
    from logweir.formats.jsonl import JsonParser

    parser = JsonParser()
    batch = as_batch(lines)
    return lambda: parser.parse(batch).events.height


def run_logweir_logfmt(lines: pl.Series) -> Callable[[], int]:
    from logweir.formats.logfmt import LogfmtParser

    parser = LogfmtParser()
    batch = as_batch(lines)
    return lambda: parser.parse(batch).events.height


def loads_all(loads: Callable[[str], Any], texts: list[str]) -> int:
    """Objects decoded by ``loads``, one line at a time; bad lines skipped
    (the generated nginx-json log has some, as real logs do)."""
    count = 0
    for text in texts:
        try:
            loads(text)
        except ValueError:  # both json's and orjson's errors are ValueErrors
            continue
        count += 1
    return count


LOGFMT_PAIR = re.compile(r'([^\s=]+)=("(?:[^"\\]|\\.)*"|\S*)')


def runner(name: str, lines: pl.Series) -> Callable[[], int]:
    if name == "logweir-combined":
        return run_logweir_combined(lines)
    if name == "logweir-json":
        return run_logweir_json(lines)
    if name == "logweir-logfmt":
        return run_logweir_logfmt(lines)
    texts = lines.to_list()
    if name == "re.findall":
        return lambda: len([dict(LOGFMT_PAIR.findall(t)) for t in texts])
    if name == "re":
        return lambda: len(per_line_re(texts))
    if name == "split":
        return lambda: len(per_line_split(texts))
    if name == "json.loads":
        return lambda: loads_all(json.loads, texts)
    if name == "orjson.loads":
        import orjson

        return lambda: loads_all(orjson.loads, texts)
    raise SystemExit(f"unknown approach {name}")


def child(name: str, kind: str, n: int, repeat: int) -> None:
    """Run one approach in this (fresh) process; print JSON figures."""
    lines = dataset(kind, n)
    run = runner(name, lines)
    best, best_cpu, count = float("inf"), float("inf"), 0
    # The vectorized runs are short: more of them, to catch a quiet moment.
    for _ in range(repeat * 3 if name.startswith("logweir") else repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        count = run()
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    megabytes = (int(lines.str.len_bytes().sum()) + lines.len()) / 1e6
    print(json.dumps({"seconds": best, "cpu_seconds": best_cpu, "parsed": count,
                      "mb": megabytes, "peak_rss_mb": peak_rss_mb()}))  # fmt: skip


def peak_rss_mb() -> float:
    """This process's peak RSS. ``ru_maxrss`` is not used: Linux carries it
    over from the parent through fork and exec; ``VmHWM`` is this process's
    own."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------ checking


def check_exact(n: int) -> int:
    """Every canonical value logweir gives equals the per-line reference."""
    from logweir.formats import compile_format

    lines = dataset("combined", n)
    reference = pl.DataFrame(
        per_line_re(lines.to_list()),
        schema={column: EVENT_SCHEMA[column] for column in CANONICAL},
        orient="row",
    )
    events = compile_format("combined").parse(as_batch(lines)).events
    ours = events.select(CANONICAL)
    if ours.height != reference.height or not ours.equals(reference):
        diff = ours.with_row_index().join(
            reference.with_row_index(), on="index", how="anti"
        )
        raise SystemExit(f"logweir differs from the reference:\n{diff}")
    return ours.height


# ------------------------------------------------------------- report

APPROACHES = [
    ("combined", "re", "per-line `re` regex (1 core)"),
    ("combined", "split", "per-line `str.split` (1 core)"),
    ("combined", "logweir-combined", "logweir vectorized `combined` (Polars)"),
    ("json", "json.loads", "per-line `json.loads` (1 core)"),
    ("json", "orjson.loads", "per-line `orjson.loads` (1 core)"),
    ("json", "logweir-json", "logweir `JsonParser`"),
    ("nginx-json", "json.loads", "per-line `json.loads` (1 core)"),
    ("nginx-json", "orjson.loads", "per-line `orjson.loads` (1 core)"),
    ("nginx-json", "logweir-json", "logweir `JsonParser`"),
    ("logfmt", "re.findall", "per-line `re.findall` into a dict (1 core)"),
    ("logfmt", "logweir-logfmt", "logweir `LogfmtParser`"),
]

#: Approaches that ``--before-src`` also times from the other source tree.
WITH_BEFORE = ("logweir-combined", "logweir-json", "logweir-logfmt")


def measure(
    kind: str, name: str, n: int, repeat: int, before: Path | None = None
) -> dict[str, Any] | None:
    command = [sys.executable, __file__, "--child", name, "--kind", kind,
               "--lines", str(n), "--repeat", str(repeat)]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, env=_env(before)
    )
    if done.returncode != 0:
        print(f"{name}: failed: {done.stderr.strip().splitlines()[-1:]}")
        return None
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _env(before: Path | None) -> dict[str, str] | None:
    """The environment of a child that imports logweir from ``before``."""
    if before is None:
        return None
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(before / "src"), *filter(None, [env.get("PYTHONPATH")])]
    )
    return env


def report(
    n: int, repeat: int, before: Path | None = None, kinds: Sequence[str] = ()
) -> str:
    rows = [
        "| input | approach | lines/s | MB/s | CPU s per 1M lines | peak RSS |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    runs: list[tuple[str, str, str, Path | None]] = []
    for kind, name, label in APPROACHES:
        if kinds and kind not in kinds:
            continue
        if before is not None and name in WITH_BEFORE and kind != "json":
            runs.append((kind, name, f"{label}, before", before))
        runs.append((kind, name, label, None))
    for kind, name, label, tree in runs:
        figures = measure(kind, name, n, repeat, tree)
        if figures is None:
            rows.append(f"| {kind} | {label} | not available | | | |")
            continue
        rate = n / figures["seconds"]
        rows.append(
            f"| {kind} | {label} | {rate / 1e6:.2f} M | "
            f"{figures['mb'] / figures['seconds']:.0f} | "
            f"{figures['cpu_seconds'] * 1e6 / n:.2f} | "
            f"{figures['peak_rss_mb']:.0f} MB |"
        )
        print(rows[-1], flush=True)
    return "\n".join(rows)


def check_same(kind: str, n: int, before: Path) -> int:
    """The parse of the ``before`` tree equals the current one on ``kind``
    lines (every event and reject). Returns the number of lines."""
    with tempfile.TemporaryDirectory() as folder:
        old = Path(folder)
        command = [sys.executable, __file__, "--dump", str(old), "--kind", kind,
                   "--lines", str(n)]  # fmt: skip
        subprocess.run(command, check=True, env=_env(before))
        dump(kind, n, Path(folder) / "new")
        for part in ("events", "rejects"):
            ours = pl.read_parquet(old / "new" / f"{part}.parquet")
            theirs = pl.read_parquet(old / f"{part}.parquet")
            if not ours.equals(theirs):
                raise SystemExit(f"{kind}: {part} differ from --before-src's")
    return n


def dump(kind: str, n: int, folder: Path) -> None:
    """Parse ``kind`` lines and write events and rejects to ``folder``."""
    from logweir.formats import compile_format

    lines = dataset(kind, n)
    result = compile_format("json" if kind == "nginx-json" else kind).parse(
        as_batch(lines)
    )
    folder.mkdir(parents=True, exist_ok=True)
    result.events.write_parquet(folder / "events.parquet")
    result.rejects.write_parquet(folder / "rejects.parquet")


def update_benchmarks_md(
    table: str, n: int, exact: int, before: Path | None = None
) -> None:
    """Put ``table`` in the Parser section of BENCHMARKS.md.

    When the section has a table already, only the table is replaced: the
    prose around it (command, load, where the time goes) is written by hand
    and must be checked against the new figures. Otherwise the section is
    written whole, with a generated introduction.
    """
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text()  # read right before writing: others edit it too
    start = text.index("## Parser")
    end = text.index("\n## ", start + 1)
    old = text[start:end]
    lines = old.splitlines()
    rows = [index for index, line in enumerate(lines) if line.startswith("| input |")]
    if rows:
        first = rows[0]
        last = first
        while last + 1 < len(lines) and lines[last + 1].startswith("|"):
            last += 1
        section = "\n".join([*lines[:first], table, *lines[last + 1 :]])
        section += "\n" if old.endswith("\n") else ""
        print("BENCHMARKS.md: table replaced; check the prose around it")
    else:
        section = (
            "## Parser\n\n"
            f"`benchmarks/benchmark_parser.py --lines {n}` on {n:,} generated "
            f"lines per input ({os.cpu_count()} cores, shared and noisy; best of "
            "the runs; each approach in its own process, peak RSS including the "
            "loaded input). logweir's combined parse was checked equal, value by "
            f"value, to the per-line `re` reference on all {exact:,} lines.\n\n"
            f"{_before_note(before)}{table}\n"
        )
    path.write_text(text[:start] + section + text[end:])


def _before_note(before: Path | None) -> str:
    if before is None:
        return ""
    return (
        "Rows marked *before* ran logweir from another source tree "
        f"(`--before-src {before}`) in the same run; its combined, JSON and "
        "logfmt events and rejects were checked equal to the current ones on "
        "every line.\n\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--update-benchmarks-md", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--kind", default="combined", help=argparse.SUPPRESS)
    parser.add_argument("--dump", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--before-src",
        type=Path,
        help="also time logweir's combined, JSON and logfmt parsers from DIR/src",
    )
    parser.add_argument(
        "--kinds",
        default=",".join(GENERATORS),
        help="inputs to time, comma-separated (default: all)",
    )
    args = parser.parse_args()
    if args.child:
        child(args.child, args.kind, args.lines, args.repeat)
        return
    if args.dump:
        dump(args.kind, args.lines, args.dump)
        return
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = sorted(set(kinds) - set(GENERATORS))
    if unknown:
        raise SystemExit(f"unknown --kinds {unknown}: use {', '.join(GENERATORS)}")
    for kind in kinds:
        dataset(kind, args.lines)
    exact = check_exact(args.lines)
    print(f"exact: logweir equals the reference on {exact:,} lines")
    if args.before_src:
        for kind in [k for k in ("combined", "nginx-json", "logfmt") if k in kinds]:
            same = check_same(kind, args.lines, args.before_src)
            print(f"same: {kind} parse equals --before-src's on {same:,} lines")
    table = report(args.lines, args.repeat, args.before_src, kinds)
    print(table)
    if args.update_benchmarks_md:
        update_benchmarks_md(table, args.lines, exact, args.before_src)


if __name__ == "__main__":
    main()
