"""The driver of ``logweir spark``: plan, run the tasks, window, store.

A run over files:

1. **Inputs and formats**, as ``logweir run`` finds them: files, globs and
   folders are expanded, and each input's format is the one given or the
   one detected from its first lines (the same detection, so both commands
   parse a file the same way).
2. **Plan.** Each plain file is cut into line-aligned byte ranges
   (:func:`~logweir.sources.plan_chunks`, 64 MiB by default); a compressed
   file is one range. The driver reads each file once, counting newlines,
   to find the cuts and the number of each range's first line.
3. **Tasks.** One Spark partition per range: ``mapInArrow`` runs
   :func:`logweir.spark.tasks.process_chunks`, which reads the range with
   logweir's reader (exact byte offsets), parses it, writes the lake and
   the rejects (same layout, types and file names as ``logweir run``) and
   hands the window columns back to Spark. Spark keeps that result
   (``persist``, memory then disk) so that the lake is written once.
4. **Windows**, with Spark's ``window()`` and ``withWatermark``
   (:mod:`logweir.spark.windows`); the rows (one per window, dimension and
   key: a small table) are collected on the driver and upserted into
   ``OUT/logweir.duckdb``, the store ``logweir run`` writes and
   ``logweir query`` reads.

The files must be readable under the same path on every executor: in
local mode they are; on a cluster, put them on a shared file system (NFS,
a mounted bucket) and give ``OUT`` there too.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial, reduce
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from logweir import errors
from logweir.errors import LogweirError, MissingExtraError, SourceError
from logweir.formats.base import ParseOptions
from logweir.schema import WINDOW_SCHEMA
from logweir.sinks import STORE_NAME, AggregateStore
from logweir.sources import (
    DEFAULT_CHUNK_BYTES,
    STDIN,
    Chunk,
    InputFile,
    expand_inputs,
    plan_chunks,
)
from logweir.spark.tasks import (
    CHUNK_ROW_SCHEMA,
    TALLY_COLUMNS,
    TaskSettings,
    chunk_rows,
    process_chunks,
)
from logweir.windows import (
    DEFAULT_DIMENSIONS,
    DEFAULT_WINDOWS,
    WindowSpec,
    parse_windows,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

#: Bytes per parsed batch: ``logweir run``'s default, so that both commands
#: cut the same batches and name the same lake files.
DEFAULT_BATCH_BYTES = 32 * 1024 * 1024

#: ``percentile_approx``'s accuracy: rank error at most n / 10 000.
DEFAULT_PERCENTILE_ACCURACY = 10_000
#: ``approx_count_distinct``'s rsd: 4 096 registers, 1.6 % (see windows.py).
DEFAULT_DISTINCT_RSD = 0.02

#: Window rows sorted by their store key, so the driver's table is stable.
_ROW_ORDER = ["window_size_s", "window_step_s", "window_start", "dimension", "key"]


@dataclass(frozen=True)
class SparkJobConfig:
    """What ``logweir spark`` is asked to do (flags, see the CLI)."""

    inputs: tuple[str, ...] = ()
    out: Path = Path("logweir-out")
    format: str | None = None
    timezone: str = "UTC"
    windows: str = DEFAULT_WINDOWS
    dimensions: tuple[str, ...] = DEFAULT_DIMENSIONS
    lateness_s: int = 300
    master: str = "local[*]"
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    batch_bytes: int = DEFAULT_BATCH_BYTES
    percentile_accuracy: int = DEFAULT_PERCENTILE_ACCURACY
    distinct_rsd: float = DEFAULT_DISTINCT_RSD
    #: Entries of each top list (files only; 0: no top lists).
    top_n: int = 10
    #: ``kafka://HOST:PORT/TOPIC`` to read Kafka instead of files.
    source: str | None = None
    #: Kafka: Spark's checkpoint folder (default ``OUT/spark-checkpoint``).
    checkpoint: Path | None = None
    #: Kafka: process what the topic holds at the start, then stop.
    available_now: bool = False
    #: Maven coordinates for ``spark.jars.packages`` (Kafka: the connector
    #: matching PySpark's version when not given).
    packages: str | None = None


@dataclass
class SparkSummary:
    """What a run did, for the CLI to print."""

    inputs: int = 0
    chunks: int = 0
    formats: dict[str, str] = field(default_factory=dict)
    lines: int = 0
    events: int = 0
    rejects: int = 0
    skipped: int = 0
    lake_files: int = 0
    window_rows: int = 0
    elapsed_s: float = 0.0
    out: Path = Path()

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["out"] = str(self.out)
        return data


def require_pyspark() -> None:
    """Raise :class:`MissingExtraError` when PySpark cannot be imported, or
    pandas, which PySpark's ``mapInArrow`` needs although no pandas frame is
    ever built."""
    for module in ("pyspark", "pandas"):
        try:
            __import__(module)
        except ImportError as error:
            raise MissingExtraError(module, "spark") from error


def build_session(
    master: str = "local[*]", app_name: str = "logweir", packages: str | None = None
) -> SparkSession:
    """A SparkSession for logweir's jobs (or the active one, reconfigured).

    In local mode the Python workers run the driver's interpreter, so they
    see the same logweir; on a cluster, logweir must be installed on every
    executor (``PYSPARK_PYTHON`` names its interpreter). Session time is
    UTC, so windows align on the epoch in UTC as in ``logweir run``.
    ``packages`` (Maven coordinates, comma-separated) go to
    ``spark.jars.packages``.
    """
    require_pyspark()
    from pyspark.errors import PySparkException
    from pyspark.sql import SparkSession

    local = master.startswith("local")
    if local:
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.showConsoleProgress", "false")
    )
    if packages:
        builder = builder.config("spark.jars.packages", packages)
    if local:
        # Adaptive execution merges small shuffle partitions anyway; start
        # from the cores, not Spark's 200, for small local runs.
        builder = builder.config(
            "spark.sql.shuffle.partitions", str(max(2, os.cpu_count() or 2))
        )
    try:
        session = builder.getOrCreate()
    except PySparkException as error:
        fetch = (
            f", and could Spark fetch {packages} from Maven Central (--packages "
            "names another version)?"
            if packages
            else "?"
        )
        raise LogweirError(
            f"cannot start Spark ({master}): {_first_line(str(error))}; "
            f"is Java 17 or later installed (JAVA_HOME){fetch}"
        ) from error
    session.sparkContext.setLogLevel("ERROR")
    return session


def session_running() -> bool:
    """Whether a SparkSession is active already (a notebook's, a test's):
    a job that finds one uses it and leaves it running."""
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession() is not None


def run_spark_job(
    config: SparkJobConfig, spark: SparkSession | None = None
) -> SparkSummary:
    """Run the job over ``config.inputs`` (files); see the module docstring.

    ``spark`` is a session to use (and leave running); without it the
    active session is used, or one is built for ``config.master`` and
    stopped at the end.
    """
    require_pyspark()
    if config.source is not None:
        from logweir.spark.kafka import run_kafka_job

        return run_kafka_job(config, spark)
    # Imported here: it imports PySpark, which require_pyspark checked.
    from logweir.spark.windows import check_dimensions

    started = time.perf_counter()
    specs = parse_windows(config.windows)
    dimensions = check_dimensions(config.dimensions)
    options = ParseOptions(timezone=config.timezone)
    inputs = expand_inputs(list(config.inputs))
    if any(inp.path == STDIN for inp in inputs):
        raise SourceError(
            "logweir spark cannot read standard input: Spark tasks read files "
            "by path (use logweir run for -)"
        )
    formats = _choose_formats(inputs, config.format, options)
    chunks = [c for inp in inputs for c in plan_chunks(inp, config.chunk_bytes)]
    summary = SparkSummary(
        inputs=len(inputs),
        chunks=len(chunks),
        formats=formats,
        out=config.out,
    )
    _check_out(config.out)
    settings = TaskSettings(
        options=options,
        out=config.out.resolve(),
        batch_bytes=config.batch_bytes,
        dimensions=dimensions,
        top_lists=config.top_n > 0,
    )
    own_session = spark is None and not session_running()
    session = spark or build_session(config.master, packages=config.packages)
    try:
        rows = _run(session, config, settings, chunks, formats, specs, summary)
    finally:
        if own_session:
            session.stop()
    with AggregateStore(config.out / STORE_NAME) as store:
        store.upsert_windows(rows)
    summary.window_rows = rows.height
    summary.elapsed_s = time.perf_counter() - started
    logger.info(
        "spark: %d lines, %d events, %d window rows in %.1f s",
        summary.lines,
        summary.events,
        summary.window_rows,
        summary.elapsed_s,
    )
    return summary


def _choose_formats(
    inputs: list[InputFile], spec: str | None, options: ParseOptions
) -> dict[str, str]:
    """Each input's format spec: the one given, or the one ``logweir run``
    would detect (its own detection, so both parse a file alike)."""
    from logweir.pipeline.choose import choose_formats

    return {path: c.spec for path, c in choose_formats(inputs, spec, options).items()}


def _check_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise errors.SinkError(
            f"cannot write to {str(out)!r}: {os.strerror(error.errno or 0).lower()}"
        ) from error


def _run(
    session: SparkSession,
    config: SparkJobConfig,
    settings: TaskSettings,
    chunks: list[Chunk],
    formats: dict[str, str],
    specs: list[WindowSpec],
    summary: SparkSummary,
) -> pl.DataFrame:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from logweir.spark.windows import window_rows

    if not chunks:
        return pl.DataFrame(schema=WINDOW_SCHEMA)
    rows = chunk_rows(chunks, formats)
    # One partition per chunk, so each range is one task.
    planned = session.createDataFrame(
        session.sparkContext.parallelize(rows, len(rows)), CHUNK_ROW_SCHEMA
    )
    parsed = planned.mapInArrow(
        partial(process_chunks, settings), settings.spark_schema()
    ).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with task_errors():
            tally = (
                parsed.where(F.col("chunk_lines").isNotNull())
                .agg(*(F.sum(name).alias(name) for name in TALLY_COLUMNS))
                .first()
            )
        assert tally is not None
        summary.lines = int(tally["chunk_lines"] or 0)
        summary.events = int(tally["chunk_events"] or 0)
        summary.rejects = int(tally["chunk_rejects"] or 0)
        summary.skipped = int(tally["chunk_skipped"] or 0)
        summary.lake_files = int(tally["chunk_lake_files"] or 0)
        events = parsed.where(F.col("chunk_lines").isNull()).drop(*TALLY_COLUMNS)
        frames = window_rows(
            events,
            specs,
            settings.dimensions,
            config.lateness_s,
            accuracy=config.percentile_accuracy,
            rsd=config.distinct_rsd,
            top_n=config.top_n,
        )
        with task_errors():
            table = union_all(frames).toArrow()
    finally:
        parsed.unpersist()
    return to_window_frame(table)


def to_window_frame(table: Any) -> pl.DataFrame:
    """Spark's window rows (an Arrow table) in ``WINDOW_SCHEMA``, sorted."""
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.select(
        [pl.col(name).cast(dtype, strict=True) for name, dtype in WINDOW_SCHEMA.items()]
    )
    return frame.sort(_ROW_ORDER)


_TASK_ERROR = re.compile(r"logweir\.errors\.(\w+): (.+)")


@contextmanager
def task_errors() -> Iterator[None]:
    """Give a logweir error raised inside a Spark task back as itself.

    Spark wraps a Python worker's exception in its own, with the worker's
    traceback as text; the last ``logweir.errors.X: message`` line in it is
    the error the task raised (an unreadable file, a full disk).
    """
    from pyspark.errors import PySparkException

    try:
        yield
    except PySparkException as error:
        found = _TASK_ERROR.findall(str(error))
        if not found:
            raise
        name, message = found[-1]
        kind = getattr(errors, name, LogweirError)
        if not (isinstance(kind, type) and issubclass(kind, LogweirError)):
            kind = LogweirError
        raise _rebuild(kind, message.strip()) from error


def _rebuild(kind: type[LogweirError], message: str) -> LogweirError:
    """An instance of ``kind`` with ``message``, whatever its constructor."""
    error = kind.__new__(kind)
    Exception.__init__(error, message)
    return error


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"


def union_all(frames: list[DataFrame]) -> DataFrame:
    """The union of ``frames`` by column name (they share one schema)."""
    return reduce(lambda a, b: a.unionByName(b), frames)
