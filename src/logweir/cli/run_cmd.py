"""``logweir run``: logs in; a Parquet lake, windowed metrics, alerts out.

Examples::

    logweir run /var/log/nginx/access.log*
    logweir run logs/ --out out --windows 1m,1h --workers 4
    zcat access.log.gz | logweir run - --format combined --json
    logweir run --config logweir.toml --no-detect

Flags override the values of ``--config FILE`` (a TOML file with the same
keys, see docs/pipeline.md). The run prints a report when it ends; a
progress bar shows on stderr while it works, when stderr is a terminal.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from logweir.cli import plain_doc

if TYPE_CHECKING:
    from logweir.pipeline.batch import ProgressState

#: A run shorter than this shows no progress bar at all.
PROGRESS_AFTER_S = 0.5


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="parse logs into a Parquet lake, windowed metrics and alerts",
        description=plain_doc(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paths", nargs="*", metavar="PATH", help="files, globs, directories or -"
    )
    add = parser.add_argument
    add("--out", type=Path, help="output folder (default: ./logweir-out)")
    add("--format", "-f", help="preset, LogFormat, log_format, regex: or grok:")
    add("--timezone", help="zone of timestamps without an offset (default: UTC)")
    add("--windows", help="window sizes, e.g. 1m,5m,1h or 10m/1m (hopping)")
    add("--dimensions", help="per-dimension rows, e.g. status_class,host,path")
    add("--top-n", type=int, help="entries kept in each top list (default: 10)")
    add("--workers", "-j", type=int, help="worker processes (default: all cores)")
    add("--chunk-size", help="bytes per worker task, e.g. 64MiB")
    add("--lateness", help="allowed lateness of events, e.g. 5m (follow mode)")
    add(
        "--strict", action="store_true", default=None, help="stop at the first bad line"
    )
    add("--no-detect", action="store_true", help="skip the anomaly detectors")
    add("--config", type=Path, help="TOML file with these settings")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    output.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=handle)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "inputs": args.paths or None,
        "out": args.out,
        "format": args.format,
        "timezone": args.timezone,
        "windows": args.windows,
        "dimensions": args.dimensions,
        "top_n": args.top_n,
        "workers": args.workers,
        "chunk_size": args.chunk_size,
        "lateness": args.lateness,
        "strict": args.strict,
        "detect": {"enabled": False} if args.no_detect else None,
    }


class ProgressBar:
    """A rich progress bar on stderr, shown once a run lasts a moment.

    Called from the run's progress thread with each :class:`ProgressState`.
    """

    def __init__(self, console: Console) -> None:
        self._console = console
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __call__(self, state: ProgressState) -> None:
        if self._progress is None:
            if state.elapsed_s < PROGRESS_AFTER_S:
                return
            self._start(state.total_bytes)
        assert self._progress is not None and self._task is not None
        rate = state.lines / state.elapsed_s if state.elapsed_s else 0.0
        self._progress.update(
            self._task,
            completed=state.done_bytes,
            rate=f"{rate:,.0f} lines/s",
        )

    def _start(self, total_bytes: int) -> None:
        self._progress = Progress(
            TextColumn("reading"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=self._console,
            transient=True,
        )
        self._task = self._progress.add_task("run", total=total_bytes or None, rate="")
        self._progress.start()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def handle(args: argparse.Namespace) -> int:
    # Imported here: the pipeline pulls in every stage, which the other
    # commands (and --help) need not wait for.
    from logweir.pipeline.batch import run_batch
    from logweir.pipeline.config import load_config

    config = load_config(args.config, _overrides(args))
    errors = Console(stderr=True)
    bar = ProgressBar(errors) if errors.is_terminal and not args.quiet else None
    try:
        summary = run_batch(config, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    if args.quiet:
        return 0
    from logweir.pipeline.report import build_report, render_report, write_report_json

    report = build_report(summary, top=config.report.top)
    if args.json:
        sys.stdout.write(write_report_json(report) + "\n")
        return 0
    render_report(
        report,
        Console(),
        width=config.report.sparkline_width,
        top=config.report.top,
    )
    return 0
