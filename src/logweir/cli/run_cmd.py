"""``logweir run``: logs in; a Parquet lake, windowed metrics, alerts out.

Examples::

    logweir run /var/log/nginx/access.log*
    logweir run logs/ --out out --windows 1m,1h --workers 4
    zcat access.log.gz | logweir run - --format combined --json
    logweir run --config logweir.toml --no-detect
    logweir run --follow /var/log/nginx/access.log --lateness 2m

Flags override the values of ``--config FILE`` (a TOML file with the same
keys, see docs/pipeline.md). The run prints a report when it ends; a
progress bar shows on stderr while it works, when stderr is a terminal.

With ``--follow`` the paths (files or globs) are followed like ``tail -F``
until SIGINT or SIGTERM (or ``--exit-when-idle``): windows are kept current
in the store, lake files and a checkpoint are written every
``--commit-interval``, and a later run resumes from the checkpoint in OUT
(see docs/streaming.md). A second signal exits at once.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
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
    from logweir.pipeline.batch import ProgressState, RunSummary
    from logweir.pipeline.config import RunConfig
    from logweir.pipeline.stream import StreamPipeline
    from logweir.sources.stream import Positions, StreamSource

#: Bytes a followed file hands out per poll: small enough that a batch is
#: parsed in tens of milliseconds, large enough to amortize its fixed cost.
FOLLOW_BATCH_BYTES = 2 << 20

#: A run shorter than this shows no progress bar at all.
PROGRESS_AFTER_S = 0.5
#: ``max_publish_interval`` under ``--serve`` unless one is set: a line
#: then waits at most this for its window's row, plus the dashboard's half
#: second between fetches.
SERVE_MAX_PUBLISH_S = 0.25


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
    add("--workers", "-j", type=int, help="worker processes (default: cores / 2)")
    add("--chunk-size", help="bytes per worker task, e.g. 64MiB")
    add("--lateness", help="allowed lateness of events, e.g. 5m (follow mode)")
    add(
        "--strict", action="store_true", default=None, help="stop at the first bad line"
    )
    add("--no-detect", action="store_true", help="skip the anomaly detectors")
    follow = parser.add_argument_group("follow mode")
    follow.add_argument(
        "--follow",
        action="store_true",
        help="follow the paths as they grow (tail -F) until stopped",
    )
    follow.add_argument(
        "--exit-when-idle",
        metavar="SECONDS",
        help="stop after no new lines for this long, e.g. 5s (for scripts)",
    )
    follow.add_argument(
        "--commit-interval", help="how often files and checkpoints are written (1s)"
    )
    follow.add_argument(
        "--publish-interval", help="how often open windows are updated (30ms)"
    )
    follow.add_argument(
        "--max-publish-interval",
        help="at low rates publishing stretches up to this to save CPU (1s); "
        "equal to --publish-interval for a fixed rhythm",
    )
    follow.add_argument(
        "--stats",
        type=Path,
        metavar="PATH",
        help="write throughput, CPU, memory and latency as JSON at exit",
    )
    follow.add_argument(
        "--serve",
        metavar="ADDR",
        help="serve the live dashboard, API and /metrics on HOST:PORT",
    )
    follow.add_argument(
        "--serve-token", help="token the server asks for (default: $LOGWEIR_TOKEN)"
    )
    from logweir.cli.serve_cmd import add_sql_flags

    add_sql_flags(follow)
    # None: not given, so the config file's [serve] values (or defaults) apply.
    parser.set_defaults(sql_timeout=None, sql_rows=None)
    kafka = parser.add_argument_group("Kafka consumer mode (see docs/kafka.md)")
    kafka.add_argument(
        "--source", metavar="URL", help="read kafka://HOST:PORT/TOPIC, not files"
    )
    kafka.add_argument("--group", help="the consumer group to join")
    kafka.add_argument(
        "--consumer-id",
        help="this consumer's name, stable across restarts (default: host name)",
    )
    add("--config", type=Path, help="TOML file with these settings")
    add(
        "--report",
        type=Path,
        metavar="HTML",
        help="also write the report as one self-contained HTML file",
    )
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
        "exit_when_idle": args.exit_when_idle,
        "commit_interval": args.commit_interval,
        "publish_interval": args.publish_interval,
        "max_publish_interval": args.max_publish_interval,
        "source": getattr(args, "source", None),
        "group": getattr(args, "group", None),
        "consumer_id": getattr(args, "consumer_id", None),
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

    overrides = _overrides(args)
    if args.follow:
        overrides["follow"] = overrides.pop("inputs")
    config = load_config(args.config, overrides)
    _take_file_settings(args, config)
    if args.serve and "max_publish_interval_s" not in config.model_fields_set:
        # Someone is watching: publish often enough that the dashboard,
        # which fetches twice a second, shows a line within a second.
        config = config.model_copy(
            update={"max_publish_interval_s": SERVE_MAX_PUBLISH_S}
        )
    if args.report is not None:
        from logweir.serve.report import check_report_target

        check_report_target(args.report)  # fail before a long run, not after
    if config.source is not None:
        from logweir.cli.serve_cmd import follow_hook
        from logweir.pipeline.consumers import kafka_config

        return handle_follow(args, kafka_config(config), on_start=follow_hook(args))
    if args.follow or (config.follow and not args.paths):
        from logweir.cli.serve_cmd import follow_hook

        return handle_follow(args, config, on_start=follow_hook(args))
    if getattr(args, "serve", None):
        from logweir.errors import ConfigError

        raise ConfigError("--serve needs --follow (to look at a finished run: serve)")
    errors = Console(stderr=True)
    bar = ProgressBar(errors) if errors.is_terminal and not args.quiet else None
    try:
        summary = run_batch(config, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    return _print_report(args, config, summary)


def _take_file_settings(args: argparse.Namespace, config: RunConfig) -> None:
    """Settings the flags handle themselves, from the config file where the
    flag was not given: ``[report] html``, ``stats`` and ``[serve]``."""
    if args.report is None and config.report.html is not None:
        args.report = Path(config.report.html)
    if args.stats is None and config.stats is not None:
        args.stats = Path(config.stats)
    if args.serve is None:
        args.serve = config.serve.addr
    args.enable_sql = args.enable_sql or config.serve.enable_sql
    if args.sql_timeout is None:
        args.sql_timeout = config.serve.sql_timeout
    if args.sql_rows is None:
        args.sql_rows = config.serve.sql_rows


def _print_report(
    args: argparse.Namespace, config: RunConfig, summary: RunSummary
) -> int:
    html = getattr(args, "report", None)
    if args.quiet and html is None:
        return 0
    from logweir.pipeline.report import build_report, render_report, write_report_json

    report = build_report(summary, top=config.report.top)
    if html is not None:
        from logweir.serve.report import write_html_report

        write_html_report(report, html)
    if args.quiet:
        return 0
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


def make_source(
    args: argparse.Namespace, config: RunConfig
) -> Callable[[Positions | None], StreamSource]:
    """What builds follow mode's source from the checkpoint's positions.

    Followed files (``--follow PATH...``); other sources add a branch here.
    """
    from logweir.errors import ConfigError
    from logweir.sources.follow import Follower

    if config.source is not None:
        from logweir.pipeline.consumers import kafka_source

        return lambda positions: kafka_source(config, positions)
    if not config.follow:
        raise ConfigError("--follow: name the files or globs to follow")

    def build(positions: Positions | None) -> StreamSource:
        return Follower(
            config.follow,
            resume=positions,
            batch_bytes=min(config.batch_bytes, FOLLOW_BATCH_BYTES),
        )

    return build


class StopOnSignal:
    """SIGINT and SIGTERM set ``stop`` (flush, checkpoint, exit 0); a second
    one exits at once, which is safe: checkpoints follow commits."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignal:
        for number in (signal.SIGINT, signal.SIGTERM):
            self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous)

    def _handle(self, number: int, frame: object) -> None:
        if self.stop.is_set():
            os.write(2, b"logweir: stopped at once; the next run resumes\n")
            os._exit(128 + number)
        os.write(2, b"logweir: stopping (signal again to exit at once)\n")
        self.stop.set()


#: Called with the pipeline before it runs (``--serve`` hooks in here).
StartHook = Callable[["StreamPipeline"], None]


def handle_follow(
    args: argparse.Namespace, config: RunConfig, on_start: StartHook | None = None
) -> int:
    """``logweir run --follow``: follow until stopped, then report."""
    from logweir.pipeline.stream import run_follow

    source = make_source(args, config)
    with StopOnSignal() as signals:
        summary, pipeline = run_follow(
            config,
            source,
            signals.stop,
            on_start=on_start,
            keep_latencies=args.stats is not None,
        )
    if args.stats is not None:
        args.stats.write_text(json.dumps(pipeline.stats().to_dict(), indent=2) + "\n")
    return _print_report(args, config, summary)
