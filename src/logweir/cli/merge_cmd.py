"""``logweir merge``: combine a Kafka group's consumers into one output.

Examples::

    logweir merge logweir-out
    logweir query "SELECT sum(requests) FROM windows WHERE window_size_s = 60" \\
        --out logweir-out

Each ``logweir run --source kafka://... --group G --out OUT`` consumer
writes under OUT/consumers/<id>/. This links every consumer's lake files
into OUT/events (and rejects/, late/) and merges their window states into
OUT/logweir.duckdb, so OUT holds what one consumer reading every partition
would have written. Lines that two consumers both hold (one crashed after
its checkpoint, and another read its partition again from the group's
older commit) are kept once, by their (source, offset). Run it again
whenever a fresher view is wanted; see docs/kafka.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from logweir.cli import plain_doc


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "merge",
        help="merge the outputs of a Kafka group's consumers",
        description=plain_doc(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("out", type=Path, metavar="OUT", help="the shared --out")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from logweir.pipeline.consumers import merge_consumers

    summary = merge_consumers(args.out)
    figures = {
        "consumers": summary.consumers,
        "lake_files": summary.files,
        "events": summary.events,
        "windows": summary.windows,
        "linked": summary.linked,
        "unlinked": summary.unlinked,
        "duplicate_rows": summary.duplicates,
        "rewritten": summary.rewritten,
    }
    if args.json:
        sys.stdout.write(json.dumps(figures) + "\n")
    else:
        sys.stdout.write(
            f"merged {len(summary.consumers)} consumers "
            f"({', '.join(summary.consumers)}): {summary.events:,} events in "
            f"{summary.files} lake files, {summary.windows:,} windows"
            + (
                f"; {summary.duplicates:,} rows held twice kept once"
                if summary.duplicates
                else ""
            )
            + "\n"
        )
    return 0
