"""``logweir detect``: which format is this log, or what went wrong in it.

``logweir detect PATH ...`` samples log files and says which format fits
and how well. ``logweir detect --out OUT`` or ``--csv SERIES.csv`` runs the
anomaly detectors over an aggregate store or a ``timestamp,value`` series.
"""

from __future__ import annotations

import argparse
from typing import Any

from logweir.cli import plain_doc


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "detect",
        help="detect a log's format, or anomalies in stored windows",
        description=plain_doc(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="log files")
    try:
        from logweir.cli import _detect_format

        _detect_format.add_arguments(parser)
    except ImportError:  # "cannot import name" when the module is not built yet
        pass
    try:
        from logweir.cli import _detect_anomalies

        _detect_anomalies.add_arguments(parser)
    except ImportError:  # "cannot import name" when the module is not built yet
        pass
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if getattr(args, "out", None) or getattr(args, "csv", None):
        from logweir.cli import _detect_anomalies

        return _detect_anomalies.handle(args)
    from logweir.cli import _detect_format

    return _detect_format.handle(args)
