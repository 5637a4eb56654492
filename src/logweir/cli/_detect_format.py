"""``logweir detect PATH ...``: which format each log is in, and how well.

For each file, the first ``--sample`` lines are tried against every
candidate format (see :mod:`logweir.formats.detect`); the winner, its match
rate, the runners-up and an explanation of ties and failures are printed,
or with ``--json`` one JSON object per file. The exit status is 1 when a
file's format could not be detected, 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys

from logweir.formats import ParseOptions
from logweir.formats.detect import DEFAULT_SAMPLE_LINES, Detection, detect_paths
from logweir.formats.timeutil import check_timezone


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of format detection, on ``logweir detect``."""
    group = parser.add_argument_group("format detection")
    group.add_argument(
        "--sample",
        type=int,
        default=DEFAULT_SAMPLE_LINES,
        metavar="N",
        help="lines sampled from each file (default %(default)s)",
    )
    group.add_argument(
        "--json", action="store_true", help="one JSON object per file instead of text"
    )
    group.add_argument(
        "--timezone",
        default="UTC",
        help="zone assumed for timestamps that carry none",
    )


def handle(args: argparse.Namespace) -> int:
    """Detect and print; 2 for no path, 1 when a format stays unknown."""
    if not args.paths:
        print(
            "logweir: detect: give at least one log file (or - for stdin)",
            file=sys.stderr,
        )
        return 2
    options = ParseOptions(timezone=check_timezone(args.timezone))
    found = detect_paths(args.paths, options, sample_lines=max(1, args.sample))
    for path, detection in found:
        if args.json:
            print(json.dumps({"path": path, **detection.to_dict()}, ensure_ascii=False))
        else:
            print(describe(path, detection))
    return 1 if any(detection.name is None for _, detection in found) else 0


def describe(path: str, detection: Detection) -> str:
    """The text block ``logweir detect`` prints for one file."""
    verdict = detection.name or "unknown"
    lines = [
        f"{path}: {verdict} ({detection.match_rate:.1%} of {detection.sampled} lines)",
        f"  {detection.explanation}",
    ]
    if detection.runners_up:
        others = ", ".join(
            f"{score.name} {score.match_rate:.1%}" for score in detection.runners_up
        )
        lines.append(f"  runners-up: {others}")
    return "\n".join(lines)


__all__ = ["add_arguments", "describe", "handle"]
