"""``logweir spark --source kafka://HOST:PORT/TOPIC``: a Structured Streaming job.

Needs Spark's Kafka connector on the classpath. ``logweir spark`` adds
``org.apache.spark:spark-sql-kafka-0-10_2.13:<PySpark's version>`` to
``spark.jars.packages`` itself (Spark fetches it from Maven Central on the
first run and caches it in ``~/.ivy2``); ``--packages`` names another.

The query:

1. reads the topic (``readStream.format("kafka")``, from the earliest
   offsets on the first run, then from Spark's checkpoint);
2. parses each task's records with logweir's parsers in ``mapInArrow``
   (:func:`logweir.spark.tasks.process_records`), writing the lake with
   file names derived from topic, partition and offset range;
3. aggregates every window spec with ``window()`` after
   ``withWatermark("ts", lateness)``, in *append* mode: Spark emits a
   window once the watermark (largest event time seen minus the lateness)
   passes its end. Spark *drops* events for windows already emitted:
   it has no side output for them, where ``logweir run`` keeps them in
   its late output;
4. upserts each micro-batch's emitted rows into ``OUT/logweir.duckdb``
   (``foreachBatch``, on the driver).

Delivery: Spark's checkpoint (``OUT/spark-checkpoint`` by default) records
each micro-batch's offset ranges before it runs and replays an unfinished
one over the same ranges after a crash. The lake files of a replay have the
same names (the same ranges cut into the same Arrow batches, of
``spark.sql.execution.arrow.maxRecordsPerBatch`` records: keep that
setting across restarts), and store rows are upserted by key, so results
are exactly once. Offsets are *not* committed to Kafka's consumer group: Spark keeps
them in its checkpoint (Spark's own design), so ``logweir run --source``
consumers and this job do not share progress.

Known cost: Spark plans one scan of the micro-batch per window spec (the
union of the specs' aggregations), so each spec parses the records again;
only the first writes the lake. One or two specs keep this small.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import TYPE_CHECKING

from logweir.errors import ConfigError
from logweir.formats.base import ParseOptions
from logweir.sinks import STORE_NAME, AggregateStore
from logweir.spark.tasks import KAFKA_RECORD_COLUMNS, TALLY_COLUMNS, TaskSettings
from logweir.windows import WindowSpec, parse_windows

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from logweir.spark.job import SparkJobConfig, SparkSummary

logger = logging.getLogger(__name__)


def connector_package() -> str:
    """The Maven coordinate of the Kafka connector matching this PySpark."""
    import pyspark

    return f"org.apache.spark:spark-sql-kafka-0-10_2.13:{pyspark.__version__}"


def run_kafka_job(
    config: SparkJobConfig, spark: SparkSession | None = None
) -> SparkSummary:
    """Run the streaming job until stopped (or, with ``available_now``,
    until what the topic held at the start is processed)."""
    from logweir.sources.kafka import parse_kafka_url
    from logweir.spark.job import build_session, session_running

    assert config.source is not None
    url = parse_kafka_url(config.source)
    _check_stream_config(config)
    own_session = spark is None and not session_running()
    session = spark or build_session(
        config.master, packages=config.packages or connector_package()
    )
    try:
        records = (
            session.readStream.format("kafka")
            .option("kafka.bootstrap.servers", url.bootstrap)
            .option("subscribe", url.topic)
            .option("startingOffsets", "earliest")
            .load()
        )
        return run_record_stream(records, config)
    finally:
        if own_session:
            session.stop()


def _check_stream_config(config: SparkJobConfig) -> None:
    if config.format is None:
        raise ConfigError(
            "--source kafka://... needs --format: a stream has no file to detect "
            "the format from"
        )


def run_record_stream(records: DataFrame, config: SparkJobConfig) -> SparkSummary:
    """Parse, window and store a stream of Kafka-shaped records.

    ``records`` is a streaming DataFrame with at least the columns of
    Spark's Kafka source that matter here (``topic``, ``partition``,
    ``offset``, ``value``); :func:`run_kafka_job` gives it Kafka's, and any
    other streaming source with those columns works the same.
    """
    from logweir.spark.job import SparkSummary, task_errors, to_window_frame
    from logweir.spark.windows import check_dimensions

    _check_stream_config(config)
    assert config.format is not None
    specs = parse_windows(config.windows)
    settings = TaskSettings(
        options=ParseOptions(timezone=config.timezone),
        out=config.out.resolve(),
        batch_bytes=config.batch_bytes,
        dimensions=check_dimensions(config.dimensions),
    )
    checkpoint = config.checkpoint or config.out / "spark-checkpoint"
    started = time.perf_counter()
    summary = SparkSummary(
        formats={config.source or "stream": config.format}, out=config.out
    )
    records = records.select(*KAFKA_RECORD_COLUMNS)
    rows = _window_stream(records, config, settings, config.format, specs)
    with AggregateStore(config.out / STORE_NAME) as store:

        def upsert(frame: DataFrame, batch_id: int) -> None:
            window_frame = to_window_frame(frame.toArrow())
            store.upsert_windows(window_frame)
            summary.window_rows += window_frame.height
            logger.info(
                "spark: micro-batch %d: %d window rows", batch_id, window_frame.height
            )

        writer = (
            rows.writeStream.outputMode("append")
            .foreachBatch(upsert)
            .option("checkpointLocation", str(checkpoint))
        )
        if config.available_now:
            writer = writer.trigger(availableNow=True)
        query = writer.start()
        with task_errors():
            query.awaitTermination()
        for progress in query.recentProgress:
            # Spark counts the source's rows once per scan, and the query
            # scans it once per window spec (see the module docstring).
            summary.lines += int(progress["numInputRows"]) // len(specs)
    summary.elapsed_s = time.perf_counter() - started
    return summary


def _window_stream(
    records: DataFrame,
    config: SparkJobConfig,
    settings: TaskSettings,
    spec: str,
    specs: list[WindowSpec],
) -> DataFrame:
    from pyspark.sql import functions as F

    from logweir.spark.job import union_all
    from logweir.spark.tasks import process_records
    from logweir.spark.windows import window_rows

    frames = []
    for index, window in enumerate(specs):
        # Only the first branch writes the lake (see the module docstring).
        branch = settings if index == 0 else _no_lake(settings)
        events = records.mapInArrow(
            partial(process_records, branch, spec), branch.spark_schema()
        ).drop(*TALLY_COLUMNS)
        frames += window_rows(
            events.where(F.col("ts").isNotNull()),
            [window],
            settings.dimensions,
            config.lateness_s,
            accuracy=config.percentile_accuracy,
            rsd=config.distinct_rsd,
        )
    return union_all(frames)


def _no_lake(settings: TaskSettings) -> TaskSettings:
    from dataclasses import replace

    return replace(settings, write_lake=False)
