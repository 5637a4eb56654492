"""The ``logweir`` command line.

Each sub-command lives in its own module, which provides
``register(subparsers)``; the parser it adds sets ``handler`` to a function
taking the parsed arguments and returning the exit status. Errors from the
:mod:`logweir.errors` family are printed as one line on stderr, with exit
status 2, and never as a traceback.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import re
import sys
from collections.abc import Sequence

from logweir import __version__
from logweir.errors import LogweirError

#: Sub-command modules, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "logweir.cli.run_cmd",
    "logweir.cli.parse_cmd",
    "logweir.cli.detect_cmd",
    "logweir.cli.query_cmd",
    "logweir.cli.gen_cmd",
    "logweir.cli.spark_cmd",
    "logweir.cli.serve_cmd",
    "logweir.cli.ship_cmd",
    "logweir.cli.merge_cmd",
)


def plain_doc(doc: str | None) -> str:
    """A module docstring as ``--help`` text: reST literals and ``::`` dropped."""
    text = (doc or "").replace("``", "")
    return re.sub(r"::\n", ":\n", text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logweir",
        description="Parse, window and watch server logs, fast.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
            continue  # a command not built yet
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # Everything imported so far lives as long as the process: moved out of
    # the collector's sight, it is not scanned again by every full
    # collection (about 2 % of a run's CPU went to such scans, perf).
    gc.freeze()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    if getattr(args, "quiet", False):
        level = logging.ERROR
    logging.basicConfig(level=level, format="logweir: %(levelname)s: %(message)s")
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        status: int = handler(args)
    except LogweirError as error:
        print(f"logweir: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("logweir: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return status


if __name__ == "__main__":
    sys.exit(main())
