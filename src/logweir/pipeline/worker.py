"""What one worker does with one chunk: read, parse, write, aggregate.

:func:`process_chunk` runs in a worker process (or in the main process when
the run has one worker). A reading thread fetches the chunk's line batches
ahead (:func:`prefetch`); the worker's own thread parses each batch and
hands events and rejects to a writing thread, and the events to an
aggregating thread that updates a fresh
:class:`~logweir.windows.WindowAggregator` (:class:`BoundedStage`). It
returns the aggregator's serialized state with the chunk's counts, so the
main process can merge chunks in chunk order whatever the number of
workers.

Every queue between these threads holds at most :data:`QUEUE_BATCHES`
batches: when the disk is slower than the parser, ``put`` blocks and
reading waits, so memory stays bounded by a few batches per worker.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar

import polars as pl

from logweir.errors import LogweirError, ParseError
from logweir.formats.base import ParseOptions, Parser
from logweir.formats.registry import compile_format
from logweir.pipeline.choose import STANDARD_INPUT
from logweir.pipeline.tally import Tally
from logweir.schema import LineBatch, ParseResult
from logweir.sinks import LakeWriter, RejectWriter
from logweir.sources import STDIN, Chunk, read_chunk, read_stream
from logweir.windows import WindowAggregator, parse_windows

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Batches waiting in each bounded queue of a worker (read, write, aggregate).
QUEUE_BATCHES = 2

#: Events the aggregating thread gathers before counting them: parsed
#: batches of 32 MiB hold about 77,000 combined lines, and counting two at
#: once costs 15 % less per event than one at a time (every grouping has a
#: fixed cost; measured on 1M ``logweir gen`` lines). The held batches
#: share their buffers with the writer's, so this holds little memory.
AGGREGATE_ROWS = 150_000

#: The stages whose seconds a chunk reports (see :attr:`ChunkOutcome.stage_s`).
STAGES = ("read", "parse", "aggregate", "write", "wait")

#: A chunk index no chunk has: "nothing failed yet".
NO_FAILURE = 1 << 62


@dataclass(frozen=True)
class ChunkTask:
    """Everything a worker needs for one chunk; small and picklable."""

    index: int
    chunk: Chunk
    format_spec: str
    options: ParseOptions
    out: Path
    windows: str
    dimensions: tuple[str, ...]
    top_n: int
    lateness_s: int
    strict: bool
    batch_bytes: int


@dataclass
class ChunkOutcome:
    """What a worker hands back for one chunk."""

    index: int
    state: bytes
    #: The chunk's report counts (:class:`~logweir.pipeline.tally.Tally`).
    tally: bytes = b""
    lines: int = 0
    events: int = 0
    rejects: int = 0
    skipped: int = 0
    late: int = 0
    untimed: int = 0
    reject_reasons: Counter[str] = field(default_factory=Counter)
    lake_files: list[str] = field(default_factory=list)
    reject_files: list[str] = field(default_factory=list)
    #: Seconds spent per stage: read, parse, aggregate, write (the writer
    #: thread), wait (the parser blocked on a full write queue).
    stage_s: dict[str, float] = field(default_factory=dict)
    #: In the main process (one worker, or standard input), the aggregator
    #: and tally themselves instead of ``state`` and ``tally``: turning
    #: them into bytes only to read them back cost a sixth of the windows
    #: stage (measured). The aggregator is compacted first, so a merge
    #: gives what a merge of its bytes would.
    aggregator: WindowAggregator | None = None
    tally_counts: Tally | None = None


class Shared:
    """Counters and the stop flag shared by the main process and workers.

    ``failed_index`` is the lowest chunk index that failed so far; a worker
    on a later chunk stops at its next batch, one on an earlier chunk goes
    on, so the error reported is the first in input order, every time.
    """

    def __init__(self, context: Any) -> None:
        self.failed_index = context.Value("q", NO_FAILURE)
        self.bytes_done = context.Value("q", 0)
        self.lines_done = context.Value("q", 0)

    def fail(self, index: int) -> None:
        with self.failed_index.get_lock():
            if index < self.failed_index.value:
                self.failed_index.value = index

    def should_stop(self, index: int) -> bool:
        return bool(index > self.failed_index.value)

    def advance(self, size_bytes: int, lines: int) -> None:
        with self.bytes_done.get_lock():
            self.bytes_done.value += size_bytes
        with self.lines_done.get_lock():
            self.lines_done.value += lines


_shared: Shared | None = None


def init_worker(shared: Shared) -> None:
    """Pool initializer: keep the shared counters for :func:`process_chunk`."""
    global _shared
    _shared = shared


class ChunkStopped(Exception):
    """An earlier chunk failed, so this one stopped without finishing."""


class RemoteError(Exception):
    """Carries a logweir error out of a worker process intact.

    Some errors (``ParseError``) take keyword-only arguments, which
    pickling cannot rebuild; this wrapper rebuilds them from their class,
    message and attributes.
    """

    def __init__(self, error: LogweirError) -> None:
        super().__init__(str(error))
        self.error = error

    def __reduce__(self) -> tuple[Any, ...]:
        error = self.error
        return (_rebuild, (type(error), str(error), dict(error.__dict__)))


def _rebuild(
    kind: type[LogweirError], message: str, attributes: dict[str, Any]
) -> RemoteError:
    error = kind.__new__(kind)
    Exception.__init__(error, message)
    error.__dict__.update(attributes)
    return RemoteError(error)


_parsers: dict[tuple[str, str], Parser] = {}


def compiled_parser(spec: str, options: ParseOptions) -> Parser:
    """Compile each format once per process, not once per chunk.

    Keyed by the options' repr: they hold a dict, so they cannot be hashed.
    """
    key = (spec, repr(options))
    parser = _parsers.get(key)
    if parser is None:
        parser = _parsers[key] = compile_format(spec, options)
    return parser


class BoundedStage(Generic[T]):
    """A thread that handles items in order, fed through a bounded queue.

    Use as a context manager; :meth:`put` blocks while the queue is full,
    which is how a slow stage slows the one feeding it. An error in the
    thread is raised by the next :meth:`put` or at exit. Leaving the block
    with an error of its own drops what is still queued.
    """

    def __init__(self, name: str, handle: Callable[[T], None]) -> None:
        self._handle = handle
        self._queue: queue.Queue[tuple[T] | None] = queue.Queue(QUEUE_BATCHES)
        self._error: BaseException | None = None
        self._abort = False
        self.busy_s = 0.0
        self.wait_s = 0.0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> BoundedStage[T]:
        self._thread.start()
        return self

    def put(self, item: T) -> None:
        if self._error is not None:
            raise self._error
        started = time.perf_counter()
        self._queue.put((item,))
        self.wait_s += time.perf_counter() - started

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._abort = error is not None
        self._queue.put(None)
        self._thread.join()
        if error is None and self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None or self._abort:
                continue  # keep draining so that put never blocks for ever
            started = time.perf_counter()
            try:
                self._handle(item[0])
            except BaseException as error:  # handed to the feeding thread
                self._error = error
            self.busy_s += time.perf_counter() - started


def prefetch(batches: Iterator[LineBatch]) -> Generator[LineBatch, None, None]:
    """Read ``batches`` ahead in a thread, so that reading overlaps parsing.

    Holds at most :data:`QUEUE_BATCHES` batches; an error while reading is
    raised where the batch would have come. Closing the generator (or
    leaving it) stops the thread.
    """
    Item = tuple[LineBatch | None, BaseException | None]
    ready: queue.Queue[Item] = queue.Queue(QUEUE_BATCHES)
    stop = threading.Event()

    def offer(item: Item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for batch in batches:
                if not offer((batch, None)):
                    return
            offer((None, None))
        except BaseException as error:  # handed to the consumer
            offer((None, error))

    thread = threading.Thread(target=read, name="read", daemon=True)
    thread.start()
    try:
        while True:
            batch, error = ready.get()
            if error is not None:
                raise error
            if batch is None:
                return
            yield batch
    finally:
        stop.set()
        thread.join()


class LakeStage:
    """Writes each parsed batch's events and rejects (the writer thread's job)."""

    def __init__(self, out: Path) -> None:
        self._lake = LakeWriter(out)
        self._rejects = RejectWriter(out)
        self.lake_files: list[str] = []
        self.reject_files: list[str] = []

    def write(self, item: tuple[pl.DataFrame, pl.DataFrame, str]) -> None:
        events, rejects, name = item
        if events.height:
            self.lake_files.extend(str(p) for p in self._lake.write(events, name))
        if rejects.height:
            self.reject_files.extend(str(p) for p in self._rejects.write(rejects, name))


def _strict_error(rejects: pl.DataFrame) -> ParseError:
    first = rejects.row(0, named=True)
    return ParseError(
        first["reason"],
        line=first["raw"] or "",
        source=first["source"],
        line_number=int(first["line_number"]),
        offset=int(first["offset"]),
    )


def _batch_size_bytes(batch: LineBatch) -> int:
    """The raw bytes a batch spans, newlines included (near enough for progress).

    From the first and last offsets, so it costs nothing per line.
    """
    count = len(batch)
    if not count:
        return 0
    first = int(batch.offsets[0])
    last = int(batch.offsets[count - 1])
    tail = batch.lines[count - 1]
    return last - first + len(tail.encode("utf-8", "replace")) + 1


class _ChunkRun:
    """One chunk's run inside a worker: the loop and its bookkeeping."""

    def __init__(self, task: ChunkTask, shared: Shared, in_process: bool) -> None:
        self.task = task
        self.shared = shared
        self.in_process = in_process
        self.parser = compiled_parser(task.format_spec, task.options)
        self.aggregator = WindowAggregator(
            parse_windows(task.windows),
            dimensions=task.dimensions,
            top_n=task.top_n,
            lateness_s=task.lateness_s,
        )
        self.tally = Tally()
        self._held: list[pl.DataFrame] = []
        self._held_rows = 0
        self.outcome = ChunkOutcome(index=task.index, state=b"")
        self.outcome.stage_s = dict.fromkeys(STAGES, 0.0)
        self.chunk_bytes = _chunk_size(task.chunk)
        self.reported_bytes = 0

    def _time(self, stage: str, started: float) -> float:
        now = time.perf_counter()
        self.outcome.stage_s[stage] += now - started
        return now

    def run(self) -> ChunkOutcome:
        """Read, parse, write and aggregate the chunk; four threads overlap.

        Reading runs one batch ahead (:func:`prefetch`); writing and
        aggregating each take batches from their own bounded queue, in
        order, so the slowest of them sets the pace and memory stays at a
        few batches.
        """
        return self.start()()

    def start(self) -> Callable[[], ChunkOutcome]:
        """Parse the whole chunk, leaving its last batches to the writing and
        aggregating threads; returns what waits for them and finishes.

        Splitting the two lets a caller parse the next chunk while this
        one's stages drain and its state is serialized (:func:`start_chunk`).
        """
        task = self.task
        lake = LakeStage(task.out)
        writer = BoundedStage("write", lake.write)
        aggregate = BoundedStage("aggregate", self._aggregate)
        stages = ExitStack()
        stages.enter_context(writer)
        stages.enter_context(aggregate)
        try:
            with closing(prefetch(_batches(task))) as batches:
                for batch_index in itertools.count():
                    started = time.perf_counter()
                    batch = next(batches, None)
                    self._time("read", started)
                    if batch is None:
                        break
                    if self.shared.should_stop(task.index):
                        raise ChunkStopped
                    result = self._parse(batch)
                    writer.put((result.events, result.rejects, self._name(batch_index)))
                    aggregate.put(result.events)
        except BaseException as error:
            stages.__exit__(type(error), error, error.__traceback__)
            raise

        def complete() -> ChunkOutcome:
            stages.close()  # the stages drain; an error of theirs is raised
            self._advance(self.chunk_bytes - self.reported_bytes, 0)
            return self._finish(lake, writer, aggregate)

        return complete

    def _name(self, batch_index: int) -> str:
        return f"{self.task.chunk.name}-{batch_index:04d}"

    def _parse(self, batch: LineBatch) -> ParseResult:
        started = time.perf_counter()
        result = self.parser.parse(batch)
        self._time("parse", started)
        if self.task.strict and result.rejects.height:
            raise _strict_error(result.rejects)
        _count(self.outcome, batch, result)
        size = min(_batch_size_bytes(batch), self.chunk_bytes - self.reported_bytes)
        self._advance(size, len(batch))
        return result

    def _aggregate(self, events: pl.DataFrame) -> None:
        """Runs in the aggregating thread, one batch at a time, in order;
        counts them :data:`AGGREGATE_ROWS` events at a time."""
        self._held.append(events)
        self._held_rows += events.height
        if self._held_rows >= AGGREGATE_ROWS:
            self._count_held()

    def _count_held(self) -> None:
        """Count the batches held so far (as one frame, in their order)."""
        if not self._held:
            return
        held = self._held
        events = held[0] if len(held) == 1 else pl.concat(held, rechunk=False)
        self._held = []
        self._held_rows = 0
        late = self.aggregator.update(events)
        self.outcome.late += late.height
        self.tally.add(events)

    def _advance(self, size_bytes: int, lines: int) -> None:
        self.reported_bytes += size_bytes
        self.shared.advance(size_bytes, lines)

    def _finish(
        self,
        lake: LakeStage,
        writer: BoundedStage[Any],
        aggregate: BoundedStage[Any],
    ) -> ChunkOutcome:
        outcome = self.outcome
        started = time.perf_counter()
        self._count_held()
        outcome.untimed = self.aggregator.untimed_events
        if self.in_process:
            self.aggregator.compact()
            outcome.aggregator = self.aggregator
            outcome.tally_counts = self.tally
        else:
            outcome.state = self.aggregator.to_bytes()
            outcome.tally = self.tally.to_bytes()
        self._time("aggregate", started)
        outcome.stage_s["aggregate"] += aggregate.busy_s
        outcome.stage_s["write"] += writer.busy_s
        outcome.stage_s["wait"] += writer.wait_s + aggregate.wait_s
        outcome.lake_files = lake.lake_files
        outcome.reject_files = lake.reject_files
        return outcome


def _batches(task: ChunkTask) -> Iterator[LineBatch]:
    if task.chunk.input.path == STDIN:  # only ever in the main process
        return read_stream(STANDARD_INPUT.stream(), STDIN, task.batch_bytes)
    return read_chunk(task.chunk, batch_bytes=task.batch_bytes)


def _chunk_size(chunk: Chunk) -> int:
    """Bytes of input the chunk covers on disk, for the progress bar."""
    size = chunk.size_bytes
    if size is None:  # compressed or a stream: the whole file's size, if known
        size = chunk.input.size_bytes
    return size or 0


def _count(outcome: ChunkOutcome, batch: LineBatch, result: ParseResult) -> None:
    rejects = result.rejects
    outcome.lines += len(batch)
    outcome.events += result.events.height
    outcome.rejects += rejects.height
    outcome.skipped += result.skipped
    if rejects.height:
        reasons = rejects.get_column("reason").value_counts()
        for reason, count in reasons.iter_rows():
            outcome.reject_reasons[str(reason)] += int(count)


def process_chunk(task: ChunkTask) -> ChunkOutcome:
    """Process one chunk; runs in a worker process (or the main one).

    Raises :class:`ChunkStopped` when an earlier chunk failed, and a
    :class:`RemoteError` wrapping any logweir error (after marking this
    chunk as failed, so later chunks stop).
    """
    return start_chunk(task)()


def start_chunk(
    task: ChunkTask, in_process: bool = False
) -> Callable[[], ChunkOutcome]:
    """:func:`process_chunk` in two steps: this call parses the chunk; the
    callable it returns waits for the chunk's writing and aggregating
    threads and gives its outcome. Both raise as :func:`process_chunk` does.
    ``in_process``: the outcome stays in this process, so it carries the
    aggregator and tally as objects (see :class:`ChunkOutcome`).
    """
    shared = _shared
    if shared is None:
        raise RuntimeError("process_chunk called before init_worker")
    run = _ChunkRun(task, shared, in_process)
    complete = _failing_as_chunk(task, shared, run.start)
    return lambda: _failing_as_chunk(task, shared, complete)


def _failing_as_chunk(task: ChunkTask, shared: Shared, step: Callable[[], T]) -> T:
    try:
        return step()
    except LogweirError as error:
        shared.fail(task.index)
        raise RemoteError(error) from None
    except ChunkStopped:
        raise
    except BaseException:
        shared.fail(task.index)
        raise
