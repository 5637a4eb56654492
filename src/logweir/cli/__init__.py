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
import os
import re
import sys
import tomllib
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


#: Streaming commands work on batches of a few thousand lines, every few
#: tens of milliseconds. On such small frames Polars' thread pool costs more
#: CPU than it saves: with one thread, following a file at 100K lines/s took
#: 64-66 % of a core instead of 77-83 %, at the same latency (BENCHMARKS.md,
#: Follow mode). Polars reads the pool's size when it is first imported, so
#: it is set here, before any command module imports it.
STREAM_POLARS_THREADS = "1"


def is_streaming(argv: Sequence[str]) -> bool:
    """Whether ``argv`` asks for a streaming run: ``ship``, or ``run`` with
    ``--follow``, ``--source``, or a ``--config`` file that sets ``follow``
    or ``source``.

    Known gap: a file that sets ``follow``, given with paths on the command
    line, makes a batch run (``run_cmd.handle``), which then has one Polars
    thread per worker too; telling paths from flags' values would take the
    whole parser, whose modules import Polars. An unreadable file is left
    for the command to report.
    """
    words = [word for word in argv if not word.startswith("-v")]
    if not words or words[0] not in ("run", "ship"):
        return False
    if words[0] == "ship":
        return True
    flags = {word.split("=", 1)[0] for word in words[1:] if word.startswith("--")}
    if flags & {"--follow", "--source"}:
        return True
    for index, word in enumerate(words):
        path = None
        if word == "--config" and index + 1 < len(words):
            path = words[index + 1]
        elif word.startswith("--config="):
            path = word.split("=", 1)[1]
        if path is None:
            continue
        try:
            with open(path, "rb") as handle:
                settings = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError):
            return False
        return bool(settings.get("source") or settings.get("follow"))
    return False


def main(argv: Sequence[str] | None = None) -> int:
    if is_streaming(sys.argv[1:] if argv is None else argv):
        # a setting of the user's own wins
        os.environ.setdefault("POLARS_MAX_THREADS", STREAM_POLARS_THREADS)
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
