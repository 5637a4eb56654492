"""``logweir parse``: raw logs in, canonical events out.

``logweir parse [PATH ...]`` reads each file (``-`` or no path: standard
input; gzip, bzip2, xz and zstd are recognised) and writes one event per
line in the canonical schema: JSON lines on standard output by default,
with the field names of the design, ``ts`` as ISO 8601 in UTC
(``2024-03-01T12:00:00Z``, with six decimals when the second has a
fraction) and ``extra`` as an object. Rejected lines are counted on
standard error by reason, with the first few shown as ``source:line``;
``--rejects FILE`` keeps them all as JSON lines.

Without ``--format`` the format of each input is detected from its first
lines, and standard error says which and how well. ``--strict`` stops at
the first rejected line, exit status 2, with that line's reason.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import polars as pl
import pyarrow.parquet as pq

from logweir.cli import plain_doc
from logweir.errors import ConfigError, FormatError, ParseError
from logweir.formats import ParseOptions, Parser, compile_format
from logweir.formats.custom import compile_grok
from logweir.formats.detect import DEFAULT_SAMPLE_LINES, detect_format
from logweir.formats.keymap import TARGETS
from logweir.formats.timeutil import check_timezone
from logweir.schema import LineBatch, ParseResult
from logweir.sources import STDIN, expand_inputs, read_stream

logger = logging.getLogger(__name__)

#: Rejects shown one by one on standard error; the rest are only counted.
SHOWN_REJECTS = 5


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "parse",
        help="parse logs into canonical events",
        description=plain_doc(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paths", nargs="*", metavar="PATH", help="log files; - is stdin"
    )
    parser.add_argument(
        "-f",
        "--format",
        help="a preset (combined, json, syslog…), an Apache LogFormat or Nginx "
        "log_format string, regex:PATTERN or grok:PATTERN; detected when absent",
    )
    parser.add_argument(
        "--output",
        choices=("jsonl", "csv", "parquet"),
        default="jsonl",
        help="event format",
    )
    parser.add_argument(
        "-o", "--out", metavar="FILE", help="write events here, not stdout"
    )
    parser.add_argument("--rejects", metavar="FILE", help="write rejected lines here")
    parser.add_argument(
        "--strict", action="store_true", help="stop at the first reject"
    )
    parser.add_argument(
        "--timezone",
        default="UTC",
        help="zone of timestamps that carry none (IANA or +HH:MM)",
    )
    parser.add_argument("--year", type=int, help="year of timestamps that carry none")
    parser.add_argument(
        "--json-map",
        action="append",
        default=[],
        metavar="COLUMN=PATH",
        help="fill COLUMN from this JSON/logfmt field (dotted for nested), repeatable",
    )
    parser.add_argument(
        "--grok-patterns",
        action="append",
        default=[],
        metavar="PATH",
        help="extra grok pattern file or directory, repeatable",
    )
    parser.add_argument(
        "--sample",
        type=int,
        default=DEFAULT_SAMPLE_LINES,
        metavar="N",
        help="lines sampled to detect the format (default %(default)s)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    options = ParseOptions(
        timezone=check_timezone(args.timezone),
        reference_year=args.year,
        json_mapping=json_mapping(args.json_map),
    )
    given = _compile(args.format, options, args.grok_patterns) if args.format else None
    report = Report()
    with contextlib.ExitStack() as stack:
        out = _open(stack, args.out, "events") or sys.stdout.buffer
        rejects = _open(stack, args.rejects, "rejects")
        writer = EventWriter(out, args.output)
        for source, batches in _inputs(args.paths or [STDIN]):
            parser = given
            if parser is None:
                batches, parser = _detect(source, batches, options, args.sample)
            for batch in batches:
                result = parser.parse(batch)
                if args.strict and result.rejects.height:
                    _stop(writer, result)
                writer.write(result.events)
                report.add(result)
                if rejects is not None and result.rejects.height:
                    _write_rejects(rejects, result.rejects)
        writer.close()
    report.print(sys.stderr)
    return 0


def json_mapping(items: list[str]) -> dict[str, str]:
    """``["method=http.request.method"]`` to a mapping; ConfigError if malformed."""
    mapping: dict[str, str] = {}
    for item in items:
        column, equals, path = item.partition("=")
        if not equals or not column.strip() or not path.strip():
            raise ConfigError(f"--json-map {item!r}: expected COLUMN=PATH")
        if column.strip() not in TARGETS:
            raise ConfigError(
                f"--json-map {item!r}: {column.strip()!r} is not a column; "
                f"choose from {', '.join(TARGETS)}"
            )
        mapping[column.strip()] = path.strip()
    return mapping


def _compile(spec: str, options: ParseOptions, pattern_files: list[str]) -> Parser:
    if spec.startswith("grok:") and pattern_files:
        return compile_grok(spec[len("grok:") :], options, pattern_files=pattern_files)
    return compile_format(spec, options)


# --- reading ---------------------------------------------------------------------


def _inputs(paths: list[str]) -> Iterator[tuple[str, Iterator[LineBatch]]]:
    """(source name, its line batches) for each input, in order."""
    for path in paths:
        if path == STDIN:
            yield STDIN, read_stream(sys.stdin.buffer, STDIN)
            continue
        for inp in expand_inputs([path]):
            yield inp.path, _read_file(inp.path)


def _read_file(path: str) -> Iterator[LineBatch]:
    with open(path, "rb") as stream:
        yield from read_stream(stream, path)


def _detect(
    source: str, batches: Iterator[LineBatch], options: ParseOptions, sample: int
) -> tuple[Iterator[LineBatch], Parser]:
    """Detect from the first lines; give back every batch, the peeked ones too."""
    peeked: list[LineBatch] = []
    lines: list[str] = []
    for batch in batches:
        peeked.append(batch)
        lines.extend(line for line in batch.lines.to_list() if line and line.strip())
        if len(lines) >= sample:
            break
    detection = detect_format(lines[:sample], options, source=source)
    if detection.name is None:
        raise FormatError(f"{source}: {detection.explanation}")
    print(
        f"logweir: {source}: format {detection.name} "
        f"(detected: {detection.match_rate:.1%} of {detection.sampled} sampled lines)",
        file=sys.stderr,
    )
    if detection.ambiguous_with:
        print(f"logweir: {source}: {detection.explanation}", file=sys.stderr)
    return itertools.chain(peeked, batches), compile_format(detection.name, options)


# --- writing ---------------------------------------------------------------------


class EventWriter:
    """Writes event batches as JSON lines, CSV or Parquet, batch by batch."""

    def __init__(self, out: IO[bytes], kind: str) -> None:
        self.out = out
        self.kind = kind
        self._parquet: pq.ParquetWriter | None = None
        self._header = True

    def write(self, events: pl.DataFrame) -> None:
        if self.kind == "parquet":
            table = events.to_arrow()
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(
                    self.out, table.schema, compression="zstd"
                )
            self._parquet.write_table(table)
            return
        if events.height == 0:
            return
        if self.kind == "csv":
            flat = events.with_columns(iso_ts(events), extra_json(events))
            self.out.write(flat.write_csv(include_header=self._header).encode("utf-8"))
            self._header = False
            return
        self.out.write(json_lines(events).encode("utf-8"))

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        self.out.flush()


def iso_ts(events: pl.DataFrame) -> pl.Series:
    """``ts`` as ISO 8601 UTC text, with microseconds only when there are any."""
    ts = events.get_column("ts")
    whole = ts.dt.to_string("%Y-%m-%dT%H:%M:%SZ")
    fine = ts.dt.to_string("%Y-%m-%dT%H:%M:%S%.6fZ")
    return (
        pl.select(
            pl.when(pl.lit(ts).dt.microsecond() == 0)
            .then(pl.lit(whole))
            .otherwise(pl.lit(fine))
        )
        .to_series()
        .alias("ts")
    )


def extra_json(events: pl.DataFrame) -> pl.Series:
    """``extra`` as JSON object text, keys in their order (``{}`` when empty)."""
    items = (
        events.select(pl.int_range(pl.len()).alias("index"), "extra")
        .explode("extra")
        .unnest("extra")
        .filter(pl.col("key").is_not_null())
        .select(
            "index",
            (
                _json_string(pl.col("key"))
                + pl.lit(":")
                + _json_string(pl.col("value"))
            ).alias("item"),
        )
        .group_by("index", maintain_order=True)
        .agg(pl.col("item").str.join(","))
    )
    joined = (
        pl.DataFrame({"index": pl.int_range(events.height, eager=True)})
        .join(items, on="index", how="left")
        .sort("index")
    )
    return joined.select(
        (pl.lit("{") + pl.col("item").fill_null("") + pl.lit("}")).alias("extra")
    ).to_series()


def _json_string(text: pl.Expr) -> pl.Expr:
    """A JSON string literal (quoted, escaped); ``null`` for null."""
    encoded = pl.struct(text.alias("v")).struct.json_encode()
    return encoded.str.slice(5, encoded.str.len_chars() - 6)


def json_lines(events: pl.DataFrame) -> str:
    """Events as JSON lines, columns in schema order, ``extra`` an object."""
    flat = events.with_columns(iso_ts(events)).drop("extra")
    head = flat.select(pl.struct(pl.all()).struct.json_encode()).to_series()
    tail = extra_json(events)
    lines = pl.select(
        pl.lit(head).str.strip_suffix("}")
        + pl.lit(',"extra":')
        + pl.lit(tail)
        + pl.lit("}")
    ).to_series()
    return "\n".join(lines.to_list()) + "\n"


def _open(stack: contextlib.ExitStack, path: str | None, what: str) -> IO[bytes] | None:
    if path is None:
        return None
    try:
        return stack.enter_context(open(path, "wb"))
    except OSError as error:
        raise ConfigError(
            f"cannot write {what} to {path!r}: {error.strerror}"
        ) from error


def _write_rejects(out: IO[bytes], rejects: pl.DataFrame) -> None:
    out.write(rejects.write_ndjson().encode("utf-8"))


def _stop(writer: EventWriter, result: ParseResult) -> None:
    """Write the events before the first reject, then raise its ParseError."""
    first = result.rejects.sort("line_number").row(0, named=True)
    before = result.events.filter(pl.col("offset") < first["offset"])
    writer.write(before)
    writer.close()
    raise ParseError(
        first["reason"],
        line=first["raw"],
        source=first["source"],
        line_number=first["line_number"],
        offset=first["offset"],
    )


# --- the report ------------------------------------------------------------------

_POSITION = re.compile(r"\s+at (?:char|column|byte) \d+.*$")


def reason_kind(reason: str) -> str:
    """What a reason is about, for counting: the text before its first ``: ``."""
    head, colon, _ = reason.partition(": ")
    if colon:
        return head
    return _POSITION.sub("", reason)


@dataclass
class Report:
    """Counts over the whole run, printed on standard error at the end."""

    lines: int = 0
    events: int = 0
    skipped: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    shown: list[str] = field(default_factory=list)

    def add(self, result: ParseResult) -> None:
        rejects = result.rejects
        self.events += result.events.height
        self.skipped += result.skipped
        self.lines += result.events.height + rejects.height + result.skipped
        for row in rejects.iter_rows(named=True):
            self.kinds[reason_kind(row["reason"])] += 1
            if len(self.shown) < SHOWN_REJECTS:
                self.shown.append(
                    f"{row['source']}:{row['line_number']}: {row['reason']}"
                )

    def print(self, stream: IO[str]) -> None:
        rejected = sum(self.kinds.values())
        print(
            f"logweir: {self.lines} lines: {self.events} events, {rejected} rejected, "
            f"{self.skipped} skipped",
            file=stream,
        )
        for kind, count in sorted(
            self.kinds.items(), key=lambda item: (-item[1], item[0])
        ):
            print(f"  {count:>8}  {kind}", file=stream)
        for line in self.shown:
            print(f"  {line}", file=stream)
        if rejected > len(self.shown):
            print(
                f"  … and {rejected - len(self.shown)} more "
                "(--rejects FILE keeps them all)",
                file=stream,
            )


__all__ = [
    "EventWriter",
    "Report",
    "handle",
    "json_lines",
    "json_mapping",
    "reason_kind",
    "register",
]
