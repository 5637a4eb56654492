"""Follow mode: poll a live source, keep windows current, commit, checkpoint.

:class:`StreamPipeline` runs three threads joined by bounded queues::

    reader ──read queue──▶ main loop ──write queue──▶ writer
    source.poll            parse, aggregate,          lake, rejects, late
    source.positions       publish open windows,      files; recomputed
    source.commit          close windows, detect      windows; checkpoint

*When* things happen:

* the **reader** polls the source and puts each poll's batches, with the
  source's positions right after them, on the read queue; it also tells
  the source to commit once the writer has checkpointed.
* the **main loop** parses each batch with the one compiled format
  (detected from the first lines when none is given), counts it into the
  windows and keeps its events, rejects and late events per stream. At
  every publish it forms the rows of the open windows that changed since
  the last time (:meth:`WindowAggregator.peek`) and replaces them in the
  store, so a line is readable in its window within about one publish
  interval after it is read. Publishes come every ``publish_interval`` at
  high rates and up to a second apart at low ones, so that their fixed
  cost stays within a CPU budget per line (:meth:`_next_interval_s`).
  When the pipeline's watermark (the smallest of the streams'
  watermarks) passes a window's end, the window is emitted: its final
  rows replace the partial ones and the detectors judge it. Every
  ``commit_interval`` (or ``commit_size`` of input) it cuts a *unit*: the
  buffered frames, the positions of the last poll in it, the window and
  detector state as of that poll, and hands it to the writer.
* the **writer** writes the unit's files, named from each stream and the
  positions they cover, recomputes windows corrected by late events whose
  state was already forgotten, sends alerts to their outputs, and only
  then writes the checkpoint (:mod:`.checkpoint`) and asks the reader to
  commit the positions.

Both queues are bounded: a slow disk blocks the main loop on the write
queue, which leaves the read queue full, which blocks the reader, so the
source is read no faster than results are written and memory holds a few
units at most. Nothing is dropped.

``docs/streaming.md`` gives the exactly-once argument, the checkpoint
format, late data and latency figures, and the known shortcomings.
"""

from __future__ import annotations

import logging
import os
import queue
import resource
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl

# Polars imports this on the first line batch it builds from Arrow, which
# would cost the first poll of a run ~0.1 s of CPU: import it with the rest.
import pyarrow.compute  # noqa: F401
from prometheus_client import Histogram

from logweir.detectors.alerts import Alert
from logweir.detectors.engine import AlertEngine
from logweir.errors import FormatError, ParseError
from logweir.formats.base import ParseOptions, Parser
from logweir.pipeline.alerts import alerts_table, build_engine, deliver
from logweir.pipeline.batch import RunSummary, check_writable, record_run
from logweir.pipeline.checkpoint import (
    Checkpoint,
    StreamMark,
    check_settings,
    output_name,
    save_checkpoint,
    stream_file_name,
    stream_files,
)
from logweir.pipeline.choose import FormatChoice
from logweir.pipeline.config import RunConfig
from logweir.pipeline.metrics import PipelineMetrics, new_registry
from logweir.pipeline.worker import compiled_parser
from logweir.schema import LineBatch, ParseResult
from logweir.sinks import STORE_NAME, AggregateStore, LakeWriter, RejectWriter
from logweir.sinks.lake import partition_dir
from logweir.sources.stream import Positions, SourceBatch, StreamSource
from logweir.windows import WindowAggregator, parse_windows

logger = logging.getLogger(__name__)

_US = 1_000_000
#: Polls waiting between the reader and the main loop.
READ_QUEUE_POLLS = 8
#: Units waiting for the writer (each up to ``commit_size`` of input).
WRITE_QUEUE_UNITS = 2
#: Longest the reader waits in one poll, so that it sees a stop quickly.
POLL_TIMEOUT_S = 0.05
#: Lines to collect before detecting the format of a stream, or seconds to
#: wait for them.
DETECT_LINES = 200
DETECT_WAIT_S = 1.0
#: A stream that brought nothing for this long no longer holds the
#: pipeline's watermark back (a file rotated away, an idle partition).
STREAM_IDLE_S = 60.0
#: Windows spanning at most this many panes are refreshed at every
#: publish; longer ones (1 h of 1 min panes) every LONG_PUBLISH_S, or
#: every LONG_PUBLISHES publishes when the interval is stretched (low
#: rates), since forming them costs as much as the short ones together.
SHORT_PANES = 1
LONG_PUBLISH_S = 1.0
LONG_PUBLISHES = 3
#: CPU budget of publishing per line: forming and storing the changed
#: windows' rows costs a few ms however few lines changed them, so
#: publishes are spaced so that they cost at most this many seconds per
#: line (3.5 % of a core per 10K lines/s; each cycle also pays the fixed
#: part of parsing and counting its batch, outside this budget). At 100K
#: lines/s that allows a publish every ~25-35 ms; at low rates the interval
#: stretches, up to MAX_PUBLISH_S (see docs/streaming.md, Latency and CPU).
#: (2.5 µs until the cycles' fixed costs were cut: the budget then left
#: ~40 ms at 100K lines/s and p99 above 80 ms; 3.5 µs costs ~0.5 % more of
#: a core per 10K lines/s, measured.)
PUBLISH_CPU_PER_LINE_S = 3.5e-6
#: CPU (share of a core) that goes every second whatever the rate: the unit
#: cut once a second (window state, lake file, checkpoint), the reader's
#: polls, the main loop's ticks. It comes out of the budget above first,
#: so that at low rates (10K lines/s) the interval reaches its cap.
PER_SECOND_CPU_S = 0.02
MAX_PUBLISH_S = 1.0
#: Publishes whose CPU time gives a publish's cost (their median).
PUBLISH_SAMPLES = 8
#: A poll smaller than this that had to wait for its lines is a trickle:
#: the reader pauses half the current publish interval (at most
#: READ_PAUSE_S) from its start before the next one, so that a file
#: written every few ms is not read every few ms (each poll costs about a
#: millisecond of CPU however few lines it brings). The main loop cuts the
#: pause short when it takes the queued polls (see _gather), so the pause
#: costs no latency.
SMALL_POLL_BYTES = 256 << 10
READ_PAUSE_S = 0.5
#: Lines the reader lets come during one pause at most, at the rate it
#: last saw.
PAUSE_LINES = 5_000
#: A poll answered faster than this without a pause before it had lines
#: waiting (a backlog): the reader reads on at once.
BACKLOG_POLL_S = 0.002
#: Longest the main loop waits for the reader's last poll before it takes
#: the queued polls (see _gather).
LAST_POLL_WAIT_S = 0.01
#: Lines waiting that mean the rate jumped (see ``_gather``), at least.
RATE_JUMP_LINES = 5_000
#: Latency samples kept for the stats file (about 4 bytes each).
LATENCY_SAMPLES = 4_000_000


@dataclass
class _Polled:
    """One poll's batches and the source's positions right after it."""

    batches: list[SourceBatch]
    positions: Positions
    read_at: float


@dataclass
class _Barrier:
    """Flush and commit everything before me, then set ``done`` (a revoke)."""

    done: threading.Event
    streams: list[str]


@dataclass
class _Failed:
    error: BaseException


@dataclass
class _Part:
    """What a unit holds of one stream."""

    start: int
    end: int
    events: list[pl.DataFrame] = field(default_factory=list)
    rejects: list[pl.DataFrame] = field(default_factory=list)
    late: list[pl.DataFrame] = field(default_factory=list)


@dataclass
class _Unit:
    """Everything up to one poll, committed together (see the module docstring)."""

    parts: dict[str, _Part] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    stale: list[pl.DataFrame] = field(default_factory=list)
    size_bytes: int = 0
    polls: int = 0
    checkpoint: Checkpoint | None = None
    barrier: _Barrier | None = None


@dataclass
class _Stream:
    """The main loop's view of one stream."""

    name: str
    end: int
    max_us: int | None
    seen_at: float


@dataclass
class StreamCounters:
    """Totals since the first start (carried in the checkpoint)."""

    lines: int = 0
    events: int = 0
    rejects: int = 0
    skipped: int = 0
    late: int = 0
    untimed: int = 0
    bytes_read: int = 0
    windows: int = 0
    alerts: int = 0
    units: int = 0
    reject_reasons: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            name: getattr(self, name)
            for name in self.__dataclass_fields__
            if name != "reject_reasons"
        }
        values["reject_reasons"] = dict(self.reject_reasons)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StreamCounters:
        counters = cls()
        for name in cls.__dataclass_fields__:
            if name == "reject_reasons":
                counters.reject_reasons = Counter(values.get(name) or {})
            elif name in values:
                setattr(counters, name, int(values[name]))
        return counters


@dataclass(frozen=True)
class StreamStats:
    """Figures for the load test (``--stats``), measured in this process."""

    lines: int
    elapsed_s: float
    cpu_s: float
    peak_rss_bytes: int
    latency_s: dict[str, float]
    latency_samples: int
    thread_cpu_s: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "elapsed_s": round(self.elapsed_s, 3),
            "lines_per_s": round(self.lines / self.elapsed_s, 1)
            if self.elapsed_s
            else 0.0,
            "cpu_s": round(self.cpu_s, 3),
            "cpu_percent": round(100 * self.cpu_s / self.elapsed_s, 2)
            if self.elapsed_s
            else 0.0,
            "peak_rss_bytes": self.peak_rss_bytes,
            "latency_s": self.latency_s,
            "latency_samples": self.latency_samples,
            "thread_cpu_s": {k: round(v, 3) for k, v in self.thread_cpu_s.items()},
        }


def observe_many(histogram: Histogram, values: np.ndarray) -> None:
    """Add many observations to an unlabelled histogram at once.

    ``Histogram.observe`` takes one value; calling it per event would cost
    more than parsing the event. This counts the values per bucket with
    numpy and adds the counts to the histogram's own bucket values (the
    attributes ``observe`` itself updates, in prometheus_client 0.2x).
    """
    if not len(values):
        return
    bounds = np.asarray(histogram._upper_bounds, dtype=np.float64)
    slots = np.searchsorted(bounds, values, side="left")
    counts = np.bincount(slots, minlength=len(bounds))
    for index, count in enumerate(counts[: len(bounds)]):
        if count:
            histogram._buckets[index].inc(int(count))
    histogram._sum.inc(float(values.sum()))


def _settings(config: RunConfig) -> dict[str, Any]:
    """What a checkpoint's window state depends on."""
    return {
        "windows": ",".join(config.windows),
        "dimensions": ",".join(config.dimensions),
        "lateness": config.lateness_s,
        "top_n": config.top_n,
    }


class StreamPipeline:
    """Follow a :class:`StreamSource` into ``config.out``; see the module docstring.

    >>> checkpoint = recover(config.out)          # doctest: +SKIP
    >>> source = Follower(paths, checkpoint.positions if checkpoint else None)
    >>> pipeline = StreamPipeline(source, config, checkpoint=checkpoint)
    >>> summary = pipeline.run(stop)              # until stop is set

    ``checkpoint`` is what :func:`~logweir.pipeline.checkpoint.recover`
    returned (the source must have been built from its positions).
    ``.store`` is the open aggregate store (read it through
    ``store.cursor()`` from other threads while the pipeline runs) and
    ``.metrics`` the pipeline's Prometheus metrics.
    """

    def __init__(
        self,
        source: StreamSource,
        config: RunConfig,
        metrics: PipelineMetrics | None = None,
        checkpoint: Checkpoint | None = None,
        *,
        keep_latencies: bool = False,
    ) -> None:
        self.source = source
        self.config = config
        self.out = config.out
        self.metrics = metrics if metrics is not None else new_registry()
        check_writable(self.out)
        settings = _settings(config)
        if checkpoint is not None:
            check_settings(checkpoint, settings)
        self._options = ParseOptions(timezone=config.timezone)
        self.aggregator = self._restore_windows(checkpoint)
        self.engine = self._restore_engine(checkpoint)
        self.format = config.format or (checkpoint.format if checkpoint else None)
        self._detected = config.format is None
        self._parser: Parser | None = None
        self._sampled = (0, 0)
        if self.format is not None:
            self._parser = compiled_parser(self.format, self._options)
        self.counters = (
            StreamCounters.from_dict(checkpoint.counters)
            if checkpoint
            else StreamCounters()
        )
        now = time.monotonic()
        self._streams = {
            stream: _Stream(mark.name, mark.end, mark.max_us, now)
            for stream, mark in (checkpoint.streams if checkpoint else {}).items()
        }
        self._seq = checkpoint.seq if checkpoint else 0
        self._positions: Positions | None = checkpoint.positions if checkpoint else None
        self.store = AggregateStore(self.out / STORE_NAME)
        #: Guards the store: the main loop and the writer both write to it.
        self.store_lock = threading.Lock()
        #: Called, in order, before the store closes (``--serve`` stops its
        #: server here: DuckDB refuses to close a connection whose cursor
        #: is running a query).
        self.before_close: list[Callable[[], None]] = []
        self._lake = LakeWriter(self.out)
        self._late = LakeWriter(self.out)
        self._late.root = self.out / "late"  # the lake's layout, its own folder
        self._rejects = RejectWriter(self.out)
        self._read_queue: queue.Queue[_Polled | _Barrier | _Failed] = queue.Queue(
            READ_QUEUE_POLLS
        )
        self._write_queue: queue.Queue[_Unit | None] = queue.Queue(WRITE_QUEUE_UNITS)
        self._reading = threading.Event()
        self._commit_lock = threading.Lock()
        self._to_commit: Positions | None = None
        self._writer_error: BaseException | None = None
        self._unit = _Unit()
        self._pending: list[_Polled] = []
        self._unpublished: list[pl.Series] = []
        self._last_publish = time.monotonic()
        #: When the lines of the cycle under way were taken (see _gather):
        #: the next cycle's lines are taken an interval after it.
        self._taken_at: float | None = None
        #: Set by _gather when the lines it took are to be published now.
        self._publish_due = False
        #: Set by the main loop when it is about to take the queued polls:
        #: the reader cuts its pause short and polls once more.
        self._poll_now = threading.Event()
        #: Polls the reader has handed out (the main loop waits for the
        #: poll it asked for with _poll_now).
        self._polls_offered = 0
        #: Whether the reader's last poll came back empty: the source has
        #: nothing now, as opposed to a reader pausing between polls.
        self._reader_found_nothing = False
        self._last_full_publish = time.monotonic()
        #: Lines of the cycle under way, when its first poll was read, whether
        #: it found the pipeline behind; a running mean of the line rate; the
        #: interval it gives with the publishes' cost (see _next_interval_s).
        self._cycle_lines = 0
        self._cycle_read_at: float | None = None
        self._cycle_behind = False
        #: Set by the reader when the read queue was full (see _gather).
        self._reader_blocked = False
        #: CPU time of the last publishes; their median is a publish's cost
        #: (a slow one now and then, the first queries of a run or another
        #: process taking the core, does not stretch the interval).
        self._publish_cpu_s: deque[float] = deque(maxlen=PUBLISH_SAMPLES)
        self._rate = 0.0
        self._rate_seen = False
        self._interval_s = config.publish_interval_s
        self._held_item: _Polled | _Barrier | _Failed | None = None
        self._last_barrier: _Barrier | None = None
        pane_s = self.aggregator.config.pane_s
        #: Windows up to this size are refreshed at every publish, longer
        #: ones less often (they cost more to form; see LONG_PUBLISH_S).
        specs = self.aggregator.config.specs
        short = [spec.size_s for spec in specs if spec.size_s <= SHORT_PANES * pane_s]
        self._short_s = max(short) if short else 0
        self._last_cut = time.monotonic()
        self._last_data = time.monotonic()
        self._checkpoint_at = time.monotonic()
        self._keep_latencies = keep_latencies
        self._thread_cpu_s: dict[str, float] = {}
        self._main_cpu_start = 0.0
        self._latencies: list[np.ndarray] = []
        self._latency_count = 0
        self.started_at = datetime.now(UTC)
        self._clock = time.perf_counter()
        self._cpu_start = _cpu_s()
        self._lines_start = self.counters.lines
        source.on_revoke(self._on_revoke)

    # -- restoring -----------------------------------------------------------

    def _new_aggregator(self) -> WindowAggregator:
        return WindowAggregator(
            parse_windows(",".join(self.config.windows)),
            dimensions=self.config.dimensions,
            top_n=self.config.top_n,
            lateness_s=self.config.lateness_s,
        )

    def _restore_windows(self, checkpoint: Checkpoint | None) -> WindowAggregator:
        if checkpoint is None or not checkpoint.window_state:
            return self._new_aggregator()
        aggregator = WindowAggregator.from_bytes(checkpoint.window_state)
        # The store may hold open windows' rows older than this state (a
        # crash between a commit and the next full publish): form them all
        # again at the first publish.
        aggregator.mark_all_changed()
        return aggregator

    def _restore_engine(self, checkpoint: Checkpoint | None) -> AlertEngine | None:
        if not self.config.detect.enabled:
            return None
        if checkpoint is not None and checkpoint.detector_state is not None:
            return AlertEngine.from_state(checkpoint.detector_state)
        return build_engine(self.config.detect.options())

    # -- running -------------------------------------------------------------

    def run(self, stop: threading.Event) -> RunSummary:
        """Follow the source until ``stop`` is set (or the source is idle for
        ``exit_when_idle``); then flush, checkpoint and return a summary.

        Raises the first error of any thread as a
        :class:`~logweir.errors.LogweirError` after closing what it can;
        what was checkpointed before stays valid.
        """
        self._main_cpu_start = time.thread_time()
        reader = threading.Thread(target=self._read_loop, name="read", daemon=True)
        writer = threading.Thread(target=self._write_loop, name="write", daemon=True)
        self._reading.set()
        reader.start()
        writer.start()
        try:
            self._main_loop(stop)
            self._thread_cpu_s["main"] = time.thread_time() - self._main_cpu_start
            self._reading.clear()
            reader.join()
            self._drain_read_queue()
            self._finish_pending()
            self._publish(full=True)
            self._cut(force=True)
        except BaseException:
            self._reading.clear()
            self._stop_writer(writer)
            reader.join(timeout=5)
            self._close()
            raise
        self._stop_writer(writer)
        if self._writer_error is not None:
            self._close()
            raise self._writer_error
        committed = self._take_commit()
        if committed is not None:
            self.source.commit(committed)
        summary = self.summary()
        with self.store_lock:
            record_run(self.store, summary)
        self._close()
        return summary

    def _close(self) -> None:
        try:
            for hook in self.before_close:
                hook()
            self.source.close()
        finally:
            self.store.close()

    def _main_loop(self, stop: threading.Event) -> None:
        idle_s = self.config.exit_when_idle_s
        tick = self.config.publish_interval_s / 2
        while not stop.is_set():
            if self._writer_error is not None:
                raise self._writer_error
            item = self._held_item
            self._held_item = None
            if item is None:
                try:
                    item = self._read_queue.get(timeout=tick)
                except queue.Empty:
                    item = None
            if isinstance(item, _Failed):
                raise item.error
            if isinstance(item, _Polled):
                self._take_all(self._gather(item))
                self._last_data = time.monotonic()  # after the gather's wait
            elif isinstance(item, _Barrier):
                self._finish_pending()
                self._cut(force=True, barrier=item)
            self._tick()
            if idle_s is not None and self._idle_for(idle_s):
                logger.info("follow: no new lines for %.1f s; stopping", idle_s)
                return

    def _gather(self, first: _Polled) -> list[_Polled]:
        """``first`` and the polls queued behind it, taken together.

        Parsing and counting a batch has a fixed cost of a few ms however
        few lines it holds; a followed file hands out a poll every few ms
        under load. Waiting until the next publish is due and handling the
        queued polls as one batch per stream pays that cost once per cycle
        instead of once per poll. Lines become readable at the publish that
        follows, not before: taking them just before it costs no latency
        and gathers the most.

        The interval was set for the rate of the last cycles. When lines
        come much faster than that (a burst, or a busy file after a
        trickle: the first lines of a run), the wait is cut to the base
        ``publish_interval``, so that they do not wait a whole stretched
        interval.
        """
        base = self.config.publish_interval_s
        due = self._last_publish + min(self._interval_s, MAX_PUBLISH_S)
        polls = [first]
        lines = _lines_of(first)
        asked = False
        # At most a full read queue and one poll more: what the queue bounds
        # must stay bounded while this waits (the reader refills it).
        most = READ_QUEUE_POLLS + 1
        while True:
            while len(polls) < most:
                try:
                    item = self._read_queue.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(item, _Polled):
                    self._held_item = item  # a barrier or an error: after these
                    break
                polls.append(item)
                lines += _lines_of(item)
            now = time.monotonic()
            # far more lines than the measured rate brings in the time
            # waited so far: the rate jumped
            expected = self._rate * (now - self._last_publish)
            if lines >= max(RATE_JUMP_LINES, 2 * expected):
                due = min(due, self._last_publish + base)
            if self._held_item is not None or len(polls) >= most:
                break
            if now >= due:
                if asked:
                    self._publish_due = True  # (due may have been cut short)
                    break
                # The reader may be pausing (a trickle): have it poll now so
                # that lines written since its last poll come in this cycle
                # rather than an interval later; wait a moment for that poll.
                asked = True
                offered = self._polls_offered
                self._poll_now.set()
                until = now + min(LAST_POLL_WAIT_S, base / 4)
                while self._polls_offered == offered and time.monotonic() < until:
                    time.sleep(0.0005)
                continue
            time.sleep(min(due - now, base / 2))
        self._taken_at = time.monotonic()
        if self._reader_blocked:  # the reader waits on us: no stretching
            self._reader_blocked = False
            self._cycle_behind = True
        return polls

    def _idle_for(self, seconds: float) -> bool:
        # A source still settling (a Kafka consumer joining its group) has
        # not had the chance to deliver: its idle time starts afterwards.
        if getattr(self.source, "settling", False):
            self._last_data = time.monotonic()
            return False
        # A revoke under way blocks the reader until its barrier unit is
        # written: that is no idle source.
        barrier = self._last_barrier
        quiet = (
            time.monotonic() - self._last_data >= seconds
            and self._read_queue.empty()
            and not self._pending
            and (barrier is None or barrier.done.is_set())
        )
        if quiet and not self._reader_found_nothing:
            # The reader is pausing after a poll that brought lines (up to
            # READ_PAUSE_S, longer than a short idle time): more may be
            # waiting. Have it poll now; idle only once a poll finds nothing.
            self._poll_now.set()
            return False
        return quiet

    def _tick(self) -> None:
        """What is due whether or not a poll came: detection, publishing,
        closing windows, cutting a unit, metrics."""
        now = time.monotonic()
        if self._pending and now - self._pending[0].read_at >= DETECT_WAIT_S:
            self._finish_pending()
        if self._publish_due or now - self._last_publish >= self._interval_s:
            self._publish_due = False
            self._publish()
        self._cut(force=False)
        self.metrics.queue_depth.labels("read").set(self._read_queue.qsize())
        self.metrics.queue_depth.labels("write").set(self._write_queue.qsize())
        self.metrics.checkpoint_age_seconds.set(now - self._checkpoint_at)

    def _drain_read_queue(self) -> None:
        while True:
            try:
                item = self._read_queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Failed):
                raise item.error
            if isinstance(item, _Polled):
                self._take(item)
            elif isinstance(item, _Barrier):
                self._finish_pending()
                self._cut(force=True, barrier=item)

    # -- the reader thread -------------------------------------------------

    def _read_loop(self) -> None:
        paused = False
        last_read_at: float | None = None
        try:
            while self._reading.is_set():
                committed = self._take_commit()
                if committed is not None:
                    self.source.commit(committed)
                started = time.monotonic()
                batches = self.source.poll(POLL_TIMEOUT_S)
                self._reader_found_nothing = not batches
                if not batches:
                    continue
                read_at = time.monotonic()
                since_s = 0.0 if last_read_at is None else read_at - last_read_at
                last_read_at = read_at
                polled = _Polled(batches, self.source.positions(), read_at)
                self._offer(polled)
                self._polls_offered += 1
                small = sum(b.end - b.start for b in batches) < SMALL_POLL_BYTES
                # Lines that were there at once, with no pause before the
                # poll, are a backlog (or a batch size below what is
                # written): read on at once.
                backlog = not paused and read_at - started < BACKLOG_POLL_S
                paused = small and not backlog
                if paused:
                    # a trickle: let lines gather for a moment rather than
                    # hand out a poll per write; the main loop takes them
                    # only every interval anyway
                    pause_s = min(self._interval_s / 2, READ_PAUSE_S)
                    # ... but not so long that more than PAUSE_LINES come
                    # meanwhile at the rate of this poll (the interval may
                    # be stretched for a rate that just jumped)
                    lines = sum(len(batch.lines) for batch in batches)
                    if since_s > 0 and lines:
                        pause_s = min(pause_s, PAUSE_LINES * since_s / lines)
                    # (cut short when the main loop is about to take the
                    # queued polls: see _gather)
                    rest = started + pause_s - time.monotonic()
                    if rest > 0:
                        self._poll_now.wait(rest)
                self._poll_now.clear()
        except BaseException as error:  # handed to the main loop
            self._offer(_Failed(error), always=True)
        finally:
            self._thread_cpu_s["read"] = time.thread_time()

    def _offer(self, item: _Polled | _Barrier | _Failed, always: bool = False) -> bool:
        """Put ``item`` on the read queue, waiting while it is full (this is
        where backpressure stops the reader); give up once stopped."""
        while self._reading.is_set() or always:
            try:
                self._read_queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                self._reader_blocked = True
                if always and not self._reading.is_set():
                    return False
        return False

    def _on_revoke(self, streams: list[str]) -> None:
        """Runs in the reader thread, inside ``poll``: commit all we hold."""
        barrier = _Barrier(threading.Event(), list(streams))
        if not self._offer(barrier):
            return
        while not barrier.done.wait(0.1):
            if self._writer_error is not None or not self._reading.is_set():
                return
        committed = self._take_commit()
        if committed is not None:
            self.source.commit(committed)

    def _take_commit(self) -> Positions | None:
        with self._commit_lock:
            committed, self._to_commit = self._to_commit, None
        return committed

    # -- the main loop's work -----------------------------------------------

    def _take(self, polled: _Polled) -> None:
        self._take_all([polled])

    def _take_all(self, polls: list[_Polled]) -> None:
        if self._parser is None:
            self._pending.extend(polls)
            lines = sum(len(b.lines) for p in self._pending for b in p.batches)
            if lines >= DETECT_LINES:
                self._finish_pending()
            return
        if self._cycle_read_at is None:
            self._cycle_read_at = polls[0].read_at
        for batch in _joined([batch for polled in polls for batch in polled.batches]):
            self._take_batch(batch)
            self._cycle_lines += len(batch.lines)
        self._unit.polls += len(polls)
        self._positions = polls[-1].positions

    def _finish_pending(self) -> None:
        """Detect the format from the lines waiting, then process them."""
        if not self._pending:
            return
        if self._parser is None:
            self._detect([b for p in self._pending for b in p.batches])
        pending, self._pending = self._pending, []
        self._take_all(pending)

    def _detect(self, batches: list[SourceBatch]) -> None:
        from logweir.formats.detect import detect_format

        lines: list[str] = []
        for batch in batches:
            lines.extend(batch.lines.lines.head(DETECT_LINES - len(lines)).to_list())
            if len(lines) >= DETECT_LINES:
                break
        source = batches[0].lines.source if batches else "stream"
        detection = detect_format(lines, self._options, source=source)
        if detection.name is None:
            why = " ".join(detection.explanation.split())
            raise FormatError(f"cannot detect the format of {source!r}: {why}")
        logger.info("follow: detected format %s for %s", detection.name, source)
        self.format = detection.name
        self._sampled = (
            round(detection.match_rate * detection.sampled),
            detection.sampled,
        )
        self._parser = compiled_parser(detection.name, self._options)

    def _take_batch(self, batch: SourceBatch) -> None:
        started = time.perf_counter()
        assert self._parser is not None
        result = self._parser.parse(batch.lines)
        if self.config.strict and result.rejects.height:
            raise _strict_error(result.rejects)
        events = result.events
        late = self.aggregator.update(events)
        if late.height:
            self._amend(late)
        self._keep(batch, result, late)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)

    def _amend(self, late: pl.DataFrame) -> None:
        """Count late events where their windows' state is still held and
        correct the emitted windows holding them (see docs/streaming.md)."""
        self.metrics.events_late.inc(late.height)
        rows, stale = self.aggregator.amend(late)
        if rows.height:
            with self.store_lock:
                self.store.replace_windows(rows)
        if stale.height:
            self._unit.stale.append(stale)

    def _keep(
        self, batch: SourceBatch, result: ParseResult, late: pl.DataFrame
    ) -> None:
        """Buffer the batch's output for its unit; count it."""
        stream = self._streams.get(batch.stream)
        now = time.monotonic()
        if stream is None:
            stream = self._streams[batch.stream] = _Stream(
                stream_file_name(batch.stream), batch.start, None, now
            )
        stream.seen_at = now
        stream.end = batch.end
        events = result.events
        if events.height:
            batch_max = events.get_column("ts").dt.epoch("us").max()
            if isinstance(batch_max, int):
                stream.max_us = (
                    batch_max
                    if stream.max_us is None
                    else max(stream.max_us, batch_max)
                )
            self._unpublished.append(events.get_column("ts"))
        part = self._unit.parts.get(batch.stream)
        if part is None:
            part = self._unit.parts[batch.stream] = _Part(batch.start, batch.end)
        part.end = batch.end
        if events.height:
            part.events.append(events)
        if result.rejects.height:
            part.rejects.append(result.rejects)
        if late.height:
            part.late.append(late)
        size = batch.end - batch.start
        self._unit.size_bytes += size
        self._count(batch, result, late, size)

    def _count(
        self, batch: SourceBatch, result: ParseResult, late: pl.DataFrame, size: int
    ) -> None:
        counters = self.counters
        source = batch.lines.source
        lines = len(batch.lines)
        counters.lines += lines
        counters.events += result.events.height
        counters.rejects += result.rejects.height
        counters.skipped += result.skipped
        counters.late += late.height
        counters.bytes_read += size
        counters.untimed = self.aggregator.untimed_events
        metrics = self.metrics
        metrics.lines_read.labels(source).inc(lines)
        metrics.bytes_read.labels(source).inc(size)
        metrics.lines_parsed.labels(source).inc(result.events.height)
        if result.rejects.height:
            reasons = result.rejects.get_column("reason").value_counts()
            for reason, count in reasons.iter_rows():
                counters.reject_reasons[str(reason)] += int(count)
                metrics.lines_rejected.labels(source, str(reason)).inc(int(count))

    def _next_interval_s(self, elapsed_s: float, publish_cpu_s: float) -> float:
        """The time to the next publish, from the cycle that just ended.

        Publishing (forming the changed windows' rows, storing them) costs
        about the same CPU for 100 lines as for 10,000, so publishing every
        ``publish_interval`` would cost as much at 1K lines/s as at 100K.
        The interval is stretched so that publishing costs at most
        :data:`PUBLISH_CPU_PER_LINE_S` per line: at high rates that is the
        configured interval, at low ones up to ``max_publish_interval``. The
        rate is a running mean over a few cycles, the cost the median of the
        last :data:`PUBLISH_SAMPLES` publishes.
        """
        base = self.config.publish_interval_s
        if self._cycle_lines == 0:
            return base  # idle: the next lines are published at once
        read_at = self._cycle_read_at
        waited_s = 0.0 if read_at is None else time.monotonic() - read_at
        if self._cycle_behind or waited_s > 2 * (self._interval_s + base):
            # Behind: the read queue was full, or lines waited longer than
            # the interval allows. The rate seen is what was processed, not
            # what arrives; start over.
            self._rate = 0.0
            self._rate_seen = False
            return base
        rate = self._cycle_lines / max(elapsed_s, base)
        if not self._rate_seen:
            # The first cycle with lines (after a start or falling behind)
            # says little about the rate (a few lines written so far): the
            # next one gives it.
            self._rate_seen = True
            return base
        self._rate += (rate - self._rate) / 4 if self._rate else rate
        self._publish_cpu_s.append(publish_cpu_s)
        cost = float(np.median(self._publish_cpu_s))
        # What the budget leaves for cycles once the costs that come every
        # second whatever the rate are paid (see PER_SECOND_CPU_S): at low
        # rates little or nothing, and the interval goes to its cap.
        allowed = self._rate * PUBLISH_CPU_PER_LINE_S - PER_SECOND_CPU_S
        longest = max(base, self.config.max_publish_interval_s)
        if allowed <= cost / longest:
            return longest
        by_budget = cost / allowed
        return min(max(base, by_budget), longest)

    def _publish(self, full: bool = False) -> None:
        """Replace the changed open windows' rows in the store; close the
        windows the watermark has passed."""
        started = time.thread_time()
        began = time.monotonic()
        long_every_s = max(LONG_PUBLISH_S, LONG_PUBLISHES * self._interval_s)
        long_due = (
            full
            or not self._short_s  # every window spans panes: all are long
            or began - self._last_full_publish >= long_every_s
        )
        # The short windows first, then the lines' latency is measured: a
        # line is readable in its one-pane window now. The long windows (once
        # a second) come after, so that forming them does not hold up the
        # short windows' rows.
        if self._short_s:
            self._store_rows(self.aggregator.peek(self._short_s))
            self._observe_latency()
        if long_due:
            self._last_full_publish = began
            self._store_rows(self.aggregator.peek(None))
        self._close_windows()
        self._observe_latency()  # what was not observed above
        publish_cpu_s = time.thread_time() - started
        # Cycles start every interval, not an interval after the last one
        # ended: a cycle starts when its lines are taken (_gather), or with
        # the publish when none were.
        cycle_start = began if self._taken_at is None else self._taken_at
        self._taken_at = None
        self._interval_s = self._next_interval_s(
            cycle_start - self._last_publish, publish_cpu_s
        )
        self._cycle_lines = 0
        self._cycle_read_at = None
        self._cycle_behind = False
        self._last_publish = cycle_start

    def _store_rows(self, rows: pl.DataFrame) -> None:
        """Replace the windows ``rows`` hold in the store (timed)."""
        if not rows.height:
            return
        stored = time.perf_counter()
        with self.store_lock:
            self.store.replace_windows(rows)
        self.metrics.write_seconds.labels("store").observe(time.perf_counter() - stored)

    def _observe_latency(self) -> None:
        if not self._unpublished:
            return
        times = pl.concat(self._unpublished).drop_nulls()
        self._unpublished = []
        now_us = time.time_ns() // 1000
        latency = (now_us - times.dt.epoch("us").to_numpy()) / _US
        observe_many(self.metrics.event_latency_seconds, latency)
        if self._keep_latencies and self._latency_count < LATENCY_SAMPLES:
            self._latencies.append(latency.astype(np.float32))
            self._latency_count += len(latency)

    def _watermark_us(self) -> int | None:
        """The smallest watermark of the streams with data (idle ones aside)."""
        now = time.monotonic()
        lateness_us = self.config.lateness_s * _US
        marks = [
            (s.max_us - lateness_us, now - s.seen_at < STREAM_IDLE_S)
            for s in self._streams.values()
            if s.max_us is not None
        ]
        if not marks:
            return None
        active = [mark for mark, is_active in marks if is_active]
        return min(active) if active else min(mark for mark, _ in marks)

    def _close_windows(self) -> None:
        mark_us = self._watermark_us()
        if mark_us is None:
            return
        self.metrics.watermark_lag_seconds.set(time.time() - mark_us / _US)
        closed = self.aggregator.closed_until
        pane_us = self.aggregator.config.pane_s * _US
        if closed is not None and mark_us // pane_us <= _us_of(closed) // pane_us:
            return  # windows end on pane boundaries: none ends by mark_us
        rows = self.aggregator.close(_datetime_of(mark_us))
        if not rows.height:
            return
        with self.store_lock:
            self.store.replace_windows(rows)
        windows = rows.select("window_size_s", "window_step_s", "window_start")
        self.counters.windows += windows.unique().height
        if self.engine is None:
            return
        alerts = self.engine.update(rows)
        if alerts:
            with self.store_lock:
                self.store.upsert_table("alerts", alerts_table(alerts), key=["id"])
            self._unit.alerts.extend(alerts)
            self.counters.alerts += sum(1 for a in alerts if a.status == "open")
            for alert in alerts:
                if alert.status == "open":
                    self.metrics.alerts_fired.labels(alert.rule).inc()

    def _cut(self, force: bool, barrier: _Barrier | None = None) -> None:
        """Hand the unit to the writer when it is due (or ``force``)."""
        unit = self._unit
        due = (
            time.monotonic() - self._last_cut >= self.config.commit_interval_s
            or unit.size_bytes >= self.config.commit_bytes
        )
        if not (force or due):
            return
        if unit.polls == 0 and barrier is None and not unit.alerts and not unit.stale:
            self._last_cut = time.monotonic()
            return
        self._last_cut = time.monotonic()
        self._seq += 1
        self.counters.units += 1
        unit.checkpoint = Checkpoint(
            positions=self._positions or {},
            streams={
                key: StreamMark(s.name, s.end, s.max_us)
                for key, s in self._streams.items()
            },
            window_state=self.aggregator.to_bytes(),
            format=self.format,
            settings=_settings(self.config),
            counters=self.counters.to_dict(),
            detector_state=self.engine.state() if self.engine is not None else None,
            seq=self._seq,
        )
        unit.barrier = barrier
        if barrier is not None:
            self._last_barrier = barrier
        if barrier is not None:
            # Revoked streams stop holding the watermark back. They stay in
            # the checkpoint: recovery deletes the files of streams it does
            # not know.
            for stream in barrier.streams:
                known = self._streams.get(stream)
                if known is not None:
                    known.seen_at = float("-inf")
        self._unit = _Unit()
        self._hand_to_writer(unit)

    def _hand_to_writer(self, unit: _Unit) -> None:
        """Blocks while the writer is behind: backpressure on the main loop."""
        while True:
            if self._writer_error is not None:
                raise self._writer_error
            try:
                self._write_queue.put(unit, timeout=0.1)
                return
            except queue.Full:
                self.metrics.queue_depth.labels("write").set(self._write_queue.qsize())
                continue

    def _stop_writer(self, writer: threading.Thread) -> None:
        while writer.is_alive():
            try:
                self._write_queue.put(None, timeout=0.1)
                break
            except queue.Full:
                continue
        writer.join()

    # -- the writer thread ---------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            unit = self._write_queue.get()
            if unit is None:
                self._thread_cpu_s["write"] = time.thread_time()
                return
            if self._writer_error is not None:
                continue  # drain, so that the main loop never blocks for ever
            try:
                self._write_unit(unit)
            except BaseException as error:  # handed to the main loop
                self._writer_error = error

    def _write_unit(self, unit: _Unit) -> None:
        for stream, part in unit.parts.items():
            self._write_part(self._name_of(stream, unit), part)
        if unit.stale:
            self._recompute(pl.concat(unit.stale).unique())
        if unit.alerts:
            deliver(unit.alerts, self.config.alerts, self.out)
        assert unit.checkpoint is not None
        started = time.perf_counter()
        save_checkpoint(self.out, unit.checkpoint)
        self.metrics.write_seconds.labels("checkpoint").observe(
            time.perf_counter() - started
        )
        self._checkpoint_at = time.monotonic()
        with self._commit_lock:
            self._to_commit = unit.checkpoint.positions
        if unit.barrier is not None:
            unit.barrier.done.set()
        logger.debug("follow: checkpoint %d written", unit.checkpoint.seq)

    def _name_of(self, stream: str, unit: _Unit) -> str:
        assert unit.checkpoint is not None
        mark = unit.checkpoint.streams.get(stream)
        return mark.name if mark is not None else stream_file_name(stream)

    def _write_part(self, name: str, part: _Part) -> None:
        file_name = output_name(name, part.start, part.end)
        timed = self.metrics.write_seconds
        if part.events:
            started = time.perf_counter()
            self._lake.write(pl.concat(part.events), file_name)
            timed.labels("lake").observe(time.perf_counter() - started)
        if part.rejects:
            started = time.perf_counter()
            self._rejects.write(pl.concat(part.rejects), file_name)
            timed.labels("rejects").observe(time.perf_counter() - started)
        if part.late:
            started = time.perf_counter()
            self._late.write(pl.concat(part.late), file_name)
            timed.labels("late").observe(time.perf_counter() - started)

    def _recompute(self, windows: pl.DataFrame) -> None:
        """Form emitted windows again from every event the lake holds for them.

        For windows corrected by late events after their state was
        forgotten. It reads the lake's hour folders that the windows span,
        so it costs as much as a batch run over those hours (see
        docs/streaming.md); such events are rare.
        """
        started = time.perf_counter()
        first = int(windows.get_column("start_s").min())  # type: ignore[arg-type]
        last = int((windows.get_column("start_s") + windows.get_column("size_s")).max())  # type: ignore[arg-type]
        files = [
            path
            for hour in range(first // 3600, (last - 1) // 3600 + 1)
            for path in sorted(
                (self._lake.root / partition_dir(hour)).glob("*.parquet")
            )
        ]
        if not files:
            return
        events = pl.read_parquet(files, hive_partitioning=False).filter(
            pl.col("ts").dt.epoch("s").is_between(first, last - 1)
        )
        fresh = self._new_aggregator()
        fresh.update(events)
        rows = fresh.finish()
        keys = windows.select(
            pl.col("size_s").alias("window_size_s"),
            pl.col("step_s").alias("window_step_s"),
            pl.from_epoch(pl.col("start_s"), time_unit="s")
            .dt.replace_time_zone("UTC")
            .dt.cast_time_unit("us")
            .alias("window_start"),
        )
        rows = rows.join(
            keys.cast(
                {
                    "window_size_s": rows.schema["window_size_s"],
                    "window_step_s": rows.schema["window_step_s"],
                    "window_start": rows.schema["window_start"],
                }
            ),
            on=["window_size_s", "window_step_s", "window_start"],
            how="semi",
        )
        with self.store_lock:
            self.store.replace_windows(rows)
        self.metrics.write_seconds.labels("recompute").observe(
            time.perf_counter() - started
        )
        logger.info(
            "late data: recomputed %d windows from %d lake files",
            windows.height,
            len(files),
        )

    # -- results -------------------------------------------------------------

    def summary(self) -> RunSummary:
        """What the run did so far, for the report (counts since first start)."""
        counters = self.counters
        names = {stream.name for stream in self._streams.values()}
        alerts = None
        if self.engine is not None:
            with self.store_lock:
                alerts = _alerts_of(self.store)
        matched, sampled = self._sampled
        choice = FormatChoice(
            spec=self.format or "?",
            name=self.format or "?",
            detected=self._detected,
            matched=matched,
            sample_lines=sampled,
        )
        return RunSummary(
            run_id=uuid.uuid4().hex[:12],
            out=self.out,
            store_path=self.out / STORE_NAME,
            inputs=tuple(self.config.follow or self.config.inputs),
            formats=(choice,),
            workers=1,
            chunks=counters.units,
            lines=counters.lines,
            events=counters.events,
            rejects=counters.rejects,
            skipped=counters.skipped,
            late=counters.late,
            untimed=counters.untimed,
            bytes_read=counters.bytes_read,
            reject_reasons=dict(counters.reject_reasons.most_common()),
            windows=counters.windows,
            alerts=alerts,
            # every file of the streams, earlier runs' too: the counts
            # above are since the first start as well
            lake_files=tuple(stream_files(self.out, "events", names)),
            reject_files=tuple(stream_files(self.out, "rejects", names)),
            started_at=self.started_at,
            elapsed_s=time.perf_counter() - self._clock,
        )

    def stats(self) -> StreamStats:
        """Throughput, CPU, memory and latency of this process's run."""
        latencies = np.concatenate(self._latencies) if self._latencies else np.zeros(0)
        quantiles: dict[str, float] = {}
        if len(latencies):
            for name, q in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100)):
                quantiles[name] = round(float(np.percentile(latencies, q)), 4)
        return StreamStats(
            lines=self.counters.lines - self._lines_start,
            elapsed_s=time.perf_counter() - self._clock,
            cpu_s=_cpu_s() - self._cpu_start,
            peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            latency_s=quantiles,
            latency_samples=len(latencies),
            thread_cpu_s=dict(self._thread_cpu_s),
        )


def _lines_of(polled: _Polled) -> int:
    return sum(len(batch.lines) for batch in polled.batches)


def _joined(batches: list[SourceBatch]) -> list[SourceBatch]:
    """One batch per stream, in order: consecutive polls' lines joined."""
    by_stream: dict[tuple[str, str], list[SourceBatch]] = {}
    for batch in batches:
        by_stream.setdefault((batch.stream, batch.lines.source), []).append(batch)
    joined = []
    for (stream, source), parts in by_stream.items():
        if len(parts) == 1:
            joined.append(parts[0])
            continue
        lines = LineBatch(
            source=source,
            lines=pl.concat([part.lines.lines for part in parts], rechunk=True),
            offsets=pl.concat([part.lines.offsets for part in parts], rechunk=True),
            line_numbers=pl.concat(
                [part.lines.line_numbers for part in parts], rechunk=True
            ),
        )
        joined.append(SourceBatch(stream, parts[0].start, parts[-1].end, lines))
    return joined


def _alerts_of(store: AggregateStore) -> pl.DataFrame | None:
    try:
        return store.table("alerts")
    except Exception:  # no alerts table yet
        return None


def _cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def _us_of(moment: datetime) -> int:
    return int(moment.timestamp() * _US)


def _datetime_of(micros: int) -> datetime:
    seconds, rest = divmod(micros, _US)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=rest)


def _strict_error(rejects: pl.DataFrame) -> ParseError:
    first = rejects.row(0, named=True)
    return ParseError(
        first["reason"],
        line=first["raw"] or "",
        source=first["source"],
        line_number=int(first["line_number"]),
        offset=int(first["offset"]),
    )


def run_follow(
    config: RunConfig,
    make_source: Callable[[Positions | None], StreamSource],
    stop: threading.Event,
    metrics: PipelineMetrics | None = None,
    on_start: Callable[[StreamPipeline], None] | None = None,
    keep_latencies: bool = False,
) -> tuple[RunSummary, StreamPipeline]:
    """Recover ``config.out``, build the source from its positions, follow.

    ``on_start`` is called with the pipeline before it runs (the HTTP
    server takes ``.store`` and ``.metrics`` from it).
    """
    from logweir.pipeline.checkpoint import recover

    check_writable(config.out)
    checkpoint = recover(config.out)
    source = make_source(checkpoint.positions if checkpoint is not None else None)
    try:
        pipeline = StreamPipeline(
            source, config, metrics, checkpoint, keep_latencies=keep_latencies
        )
    except BaseException:
        source.close()
        raise
    if on_start is not None:
        on_start(pipeline)
    return pipeline.run(stop), pipeline


__all__ = [
    "StreamCounters",
    "StreamPipeline",
    "StreamStats",
    "observe_many",
    "run_follow",
]
