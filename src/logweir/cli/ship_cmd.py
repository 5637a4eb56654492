"""``logweir ship``: follow log files and produce their lines to Kafka.

Examples::

    logweir ship --to kafka://broker:9092/web-logs /var/log/nginx/access.log*
    logweir ship --to kafka://127.0.0.1:9092/logs --format combined \\
        --compression lz4 --id web-01 logs/*.log

Each line becomes one message keyed by its client IP (lines without one
are keyed by their file), in transactions that also record how far each
file was read, so a restarted shipper goes on where the last committed
transaction ended: every line lands in the topic exactly once. Runs until
SIGINT or SIGTERM (or --exit-when-idle). See docs/kafka.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from logweir.cli import plain_doc


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "ship",
        help="follow log files and produce their lines to a Kafka topic",
        description=plain_doc(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("paths", nargs="+", metavar="PATH", help="files or globs to follow")
    add("--to", required=True, metavar="URL", help="kafka://HOST:PORT/TOPIC")
    add("--format", "-f", help="format of the lines (default: detect)")
    add("--timezone", default="UTC", help="zone of timestamps without an offset")
    add(
        "--id",
        dest="shipper_id",
        help="this shipper's name, stable across restarts (default: host name)",
    )
    add(
        "--compression",
        default="zstd",
        help="zstd (default), lz4, snappy, gzip or none",
    )
    add("--linger", default="50ms", help="how long a message batch may wait (50ms)")
    add(
        "--commit-interval",
        default="1s",
        help="how often a transaction commits lines and positions (1s)",
    )
    add("--partitions", type=int, help="create the topic with this many partitions")
    add(
        "--from-end",
        action="store_true",
        help="on a first start, skip what the files already hold",
    )
    add(
        "--no-transactions",
        action="store_true",
        help="plain idempotent producer: at-least-once (see docs/kafka.md)",
    )
    add("--exit-when-idle", metavar="SECONDS", help="stop after no new lines, e.g. 5s")
    add("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from logweir.cli.run_cmd import FOLLOW_BATCH_BYTES, StopOnSignal
    from logweir.errors import ConfigError
    from logweir.pipeline.config import parse_seconds
    from logweir.pipeline.ship import ShipConfig, Shipper, default_shipper_id
    from logweir.sources.follow import Follower
    from logweir.sources.kafka import parse_kafka_url
    from logweir.sources.stream import Positions, StreamSource

    def seconds(flag: str, value: str | None) -> float | None:
        if value is None:
            return None
        try:
            return parse_seconds(value)
        except ValueError as error:
            raise ConfigError(f"{flag}: {error}") from None

    if args.partitions is not None and args.partitions < 1:
        raise ConfigError("--partitions: must be at least 1")
    linger_s = seconds("--linger", args.linger) or 0.0
    config = ShipConfig(
        url=parse_kafka_url(args.to),
        shipper_id=args.shipper_id or default_shipper_id(),
        format=args.format,
        timezone=args.timezone,
        compression=args.compression,
        linger_ms=round(linger_s * 1000),
        commit_interval_s=seconds("--commit-interval", args.commit_interval) or 1.0,
        exit_when_idle_s=seconds("--exit-when-idle", args.exit_when_idle),
        transactions=not args.no_transactions,
        partitions=args.partitions,
    )

    def make_source(positions: Positions | None) -> StreamSource:
        return Follower(
            args.paths,
            resume=positions,
            batch_bytes=FOLLOW_BATCH_BYTES,
            start_at="end" if args.from_end else "beginning",
        )

    with StopOnSignal() as signals:
        summary = Shipper(config, make_source).run(signals.stop)
    figures = {
        "lines": summary.lines,
        "bytes": summary.bytes,
        "transactions": summary.transactions,
        "aborted": summary.aborted,
        "unkeyed_lines": summary.unkeyed,
        "format": summary.format,
        "elapsed_s": round(summary.elapsed_s, 3),
        "lines_per_s": round(summary.lines_per_s, 1),
    }
    if args.json:
        sys.stdout.write(json.dumps(figures) + "\n")
    else:
        sys.stderr.write(
            f"logweir: shipped {summary.lines:,} lines to {config.url} in "
            f"{summary.transactions} transactions "
            f"({summary.lines_per_s:,.0f} lines/s)\n"
        )
    return 0
