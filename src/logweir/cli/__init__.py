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
import stat
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
    or ``source``. Options are read as argparse reads them (abbreviations,
    ``--opt=value``, the last ``--config``, nothing after ``--``).

    Known gap: a file that sets ``follow``, given with paths on the command
    line, makes a batch run (``run_cmd.handle``), which then has one Polars
    thread per worker too; telling paths from flags' values would take the
    whole parser, whose modules import Polars. Only a regular file is read
    here (a pipe read twice would reach the command empty), and one that
    cannot be read is left for the command to report.
    """
    # the command: the first word that is not an option of logweir itself
    at = next((i for i, word in enumerate(argv) if not word.startswith("-")), None)
    if at is None or argv[at] not in ("run", "ship"):
        return False
    if argv[at] == "ship":
        return True
    words = list(argv[at + 1 :])
    if "--" in words:
        words = words[: words.index("--")]
    options = _run_options()
    named = [
        (index, _option_named(word, options))
        for index, word in enumerate(words)
        if word.startswith("--")
    ]
    if any(option in ("--follow", "--source") for _, option in named):
        return True
    configs = [index for index, option in named if option == "--config"]
    if not configs:
        return False
    word = words[configs[-1]]
    if "=" in word:
        path = word.split("=", 1)[1]
    elif configs[-1] + 1 < len(words):
        path = words[configs[-1] + 1]
    else:
        return False
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as handle:
            settings = tomllib.load(handle)
    except (OSError, ValueError):  # (TOML and UTF-8 errors are ValueErrors)
        return False
    return bool(settings.get("source") or settings.get("follow"))


def _run_options() -> list[str]:
    """The option strings of ``logweir run`` (its module imports no Polars)."""
    from logweir.cli import run_cmd

    parser = argparse.ArgumentParser(add_help=False)
    subparsers = parser.add_subparsers()
    run_cmd.register(subparsers)
    run = subparsers.choices["run"]
    # (argparse has no public list of a parser's options)
    return [name for action in run._actions for name in action.option_strings]


def _option_named(word: str, options: Sequence[str]) -> str | None:
    """The option ``word`` names, abbreviations resolved as argparse does."""
    name = word.split("=", 1)[0]
    if name in options:
        return name
    matches = [option for option in options if option.startswith(name)]
    return matches[0] if len(matches) == 1 else None


def main(argv: Sequence[str] | None = None) -> int:
    # Only where Polars is not imported yet (the command line, not a caller
    # in-process, whose worker processes would inherit the setting); a
    # setting of the user's own wins.
    if "polars" not in sys.modules and is_streaming(
        sys.argv[1:] if argv is None else argv
    ):
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
