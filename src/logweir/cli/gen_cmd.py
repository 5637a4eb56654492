"""``logweir gen``: write a realistic synthetic web log, optionally with
labelled incidents.

Examples::

    logweir gen --lines 200000 --seed 7 --incidents --output access.log
    logweir gen --lines 1e6 --format nginx-json | logweir run -
    logweir gen --format combined-duration --incident latency@40m/5m:4 \\
        --incident scanner@1h/2m --output web.log.gz

Incidents are ``KIND@OFFSET/DURATION[:MAGNITUDE]`` with KIND one of
traffic_spike (x5), traffic_drop (x0.2), error_rate (10 % 5xx),
latency (x3) and scanner (50 requests/s); ``--incidents`` injects one of
each, 20 to 67 minutes in. Their labels go to ``OUTPUT.incidents.json``
(or ``--labels``). Response times, and so latency incidents, show only in
the combined-duration and nginx-json formats. The same seed gives the same
bytes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from logweir.cli import plain_doc
from logweir.errors import ConfigError
from logweir.gen import (
    DEFAULT_INCIDENTS,
    DEFAULT_RATE_PER_S,
    DEFAULT_START,
    FORMATS,
    FORMATS_WITH_DURATION,
    GenResult,
    Incident,
    generate,
    labels_path_for,
    parse_incident,
)

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "gen",
        help="write a realistic synthetic web log, with labelled incidents",
        description=plain_doc(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--lines", type=_count, default=100_000, help="lines to write (default 100000)"
    )
    parser.add_argument(
        "--format", dest="fmt", choices=FORMATS, default="combined", help="log format"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--rate",
        type=float,
        default=DEFAULT_RATE_PER_S,
        help=f"mean requests per second (default {DEFAULT_RATE_PER_S:g})",
    )
    parser.add_argument(
        "--start",
        type=_start,
        default=DEFAULT_START,
        help="first timestamp, ISO 8601; UTC when it has no offset "
        f"(default {DEFAULT_START.isoformat()})",
    )
    parser.add_argument("--output", "-o", help="file to write (default: stdout)")
    parser.add_argument(
        "--incidents", action="store_true", help="inject the default incident set"
    )
    parser.add_argument(
        "--incident",
        action="append",
        default=[],
        metavar="KIND@OFFSET/DURATION[:MAGNITUDE]",
        help="inject one incident (repeatable)",
    )
    parser.add_argument(
        "--labels", help="where the incident labels go (default OUTPUT.incidents.json)"
    )
    parser.add_argument(
        "--no-malformed", action="store_true", help="write no malformed lines"
    )
    parser.add_argument(
        "--no-disorder", action="store_true", help="write every line in time order"
    )
    parser.add_argument(
        "--seasonal", action="store_true", help="traffic follows a daily curve"
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no summary")
    parser.set_defaults(handler=handle)


def _count(text: str) -> int:
    """A line count, also written as ``1e6`` or ``1_000_000``."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of lines") from None
    if value < 0 or value != int(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number 0 or more")
    return int(value)


def _start(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time such as 2024-06-03T08:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def handle(args: argparse.Namespace) -> int:
    incidents: list[Incident] = list(DEFAULT_INCIDENTS) if args.incidents else []
    explicit = [parse_incident(text) for text in args.incident]
    if args.fmt not in FORMATS_WITH_DURATION and any(
        i.kind == "latency" for i in explicit
    ):
        logger.warning(
            "a latency incident cannot be seen in format %s: use %s",
            args.fmt,
            " or ".join(FORMATS_WITH_DURATION),
        )
    incidents += explicit
    if incidents and args.output is None and args.labels is None:
        raise ConfigError(
            "incidents with the log on stdout need --labels FILE for their labels"
        )
    options: dict[str, Any] = {
        "fmt": args.fmt,
        "seed": args.seed,
        "rate_per_s": args.rate,
        "start": args.start,
        "incidents": incidents,
        "seasonal": args.seasonal,
        "labels_path": args.labels,
    }
    if args.no_malformed:
        options["malformed_share"] = 0.0
    if args.no_disorder:
        options["disorder_share"] = 0.0
    if args.output is None:
        result = generate(args.lines, sys.stdout.buffer, **options)
        sys.stdout.buffer.flush()
    else:
        result = generate(args.lines, args.output, **options)
    labels = None
    if result.incidents:
        labels = Path(args.labels) if args.labels else labels_path_for(args.output)
    if not args.quiet:
        print(_summary(result, args.output, labels), file=sys.stderr)
    return 0


def _summary(result: GenResult, output: str | None, labels: Path | None) -> str:
    where = output or "stdout"
    text = (
        f"wrote {result.lines} {result.format} lines ({result.bytes_written:,} bytes) "
    )
    text += f"to {where}"
    if result.first_ts and result.last_ts:
        text += (
            f", {result.first_ts:%Y-%m-%d %H:%M:%S} to {result.last_ts:%H:%M:%S} UTC"
        )
    bad = sum(result.malformed.values())
    text += f"; {bad} malformed, {result.out_of_order} out of order"
    if labels is not None:
        text += f"; {len(result.incidents)} incidents labelled in {labels}"
    return text
