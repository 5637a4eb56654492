"""``logweir spark``: the same parsers, lake and windows, run by Spark.

Examples::

    logweir spark /data/logs/*.log --out /data/out --format combined
    logweir spark logs/ --out out --windows 1m,10m/1m --master local[4]
    logweir spark --source kafka://broker:9092/weblogs --format combined \\
        --out /data/out --master spark://driver:7077

Files are cut into line-aligned byte ranges, one Spark task each; every
task parses with logweir's own parsers (inside mapInArrow) and writes the
same Parquet lake as logweir run; Spark's window() and withWatermark
compute the windows, which go to OUT/logweir.duckdb. --source kafka://...
reads a Kafka topic with Spark's Kafka connector instead (see
docs/scale.md). Needs PySpark: pip install 'logweir[spark]'.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from logweir.cli import plain_doc
from logweir.errors import ConfigError


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "spark",
        help="run logweir's parsers and windows as a PySpark job",
        description=plain_doc(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files, globs, dirs")
    add = parser.add_argument
    add("--out", type=Path, default=Path("logweir-out"), help="output folder")
    add("--format", "-f", help="preset, LogFormat, log_format, regex: or grok:")
    add("--timezone", default="UTC", help="zone of timestamps without an offset")
    add("--windows", default="1m,5m,1h", help="window sizes, e.g. 1m,5m,1h or 10m/1m")
    add(
        "--dimensions",
        default="status_class,host,method",
        help="per-dimension rows: status_class, host, method, service, level",
    )
    add("--lateness", default="5m", help="allowed lateness (watermark), e.g. 5m")
    add("--master", default="local[*]", help="Spark master (default: local[*])")
    add("--chunk-size", default="64MiB", help="bytes of a file per Spark task")
    add("--source", help="kafka://HOST:PORT/TOPIC: read Kafka instead of files")
    add(
        "--checkpoint",
        type=Path,
        help="Kafka only: Spark's checkpoint folder (default OUT/spark-checkpoint)",
    )
    add(
        "--packages",
        help="Maven coordinates for spark.jars.packages (Kafka: Spark's Kafka "
        "connector of PySpark's version when not given)",
    )
    add(
        "--available-now",
        action="store_true",
        help="Kafka only: process what the topic holds now, then stop",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    output.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=handle)


def _config(args: argparse.Namespace) -> Any:
    from logweir.pipeline.config import parse_size_bytes
    from logweir.spark import SparkJobConfig
    from logweir.windows import parse_duration

    if not args.paths and args.source is None:
        raise ConfigError(
            "no input given: name files, globs or directories, or --source"
        )
    if args.paths and args.source is not None:
        raise ConfigError("give files or --source, not both")
    try:
        chunk_bytes = parse_size_bytes(args.chunk_size)
    except ValueError as error:
        raise ConfigError(f"--chunk-size: {error}") from None
    dimensions = tuple(d.strip() for d in args.dimensions.split(",") if d.strip())
    return SparkJobConfig(
        inputs=tuple(args.paths),
        out=args.out,
        format=args.format,
        timezone=args.timezone,
        windows=args.windows,
        dimensions=dimensions,
        lateness_s=parse_duration(args.lateness, what="--lateness"),
        master=args.master,
        chunk_bytes=chunk_bytes,
        source=args.source,
        checkpoint=args.checkpoint,
        packages=args.packages,
        available_now=args.available_now,
    )


def handle(args: argparse.Namespace) -> int:
    from logweir.spark import require_pyspark, run_spark_job

    config = _config(args)
    require_pyspark()
    summary = run_spark_job(config)
    if args.quiet:
        return 0
    if args.json:
        sys.stdout.write(json.dumps(summary.to_dict(), indent=2) + "\n")
        return 0
    rate = summary.lines / summary.elapsed_s if summary.elapsed_s else 0.0
    print(
        f"{summary.lines:,} lines: {summary.events:,} events, "
        f"{summary.rejects:,} rejects, {summary.skipped:,} blank "
        f"in {summary.elapsed_s:.1f} s ({rate:,.0f} lines/s)"
    )
    print(f"lake: {summary.lake_files:,} files in {summary.out / 'events'}")
    print(f"windows: {summary.window_rows:,} rows in {summary.out / 'logweir.duckdb'}")
    return 0
