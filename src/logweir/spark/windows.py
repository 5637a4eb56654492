"""Window rows computed by Spark: its own ``window()`` and ``withWatermark``.

:func:`window_rows` turns the events Spark got from the tasks into rows of
:data:`~logweir.schema.WINDOW_SCHEMA`, one per window, dimension and key,
with the columns ``logweir run`` gives them (docs/windows.md), computed
by Spark's own functions:

* ``requests``, ``bytes``, ``status_1xx`` … ``status_5xx``, ``error_rate``:
  ``count`` and ``sum``, exact, as in ``logweir run``.
* ``duration_p50_ms`` / ``p95`` / ``p99``: ``percentile_approx`` with
  ``accuracy`` (default 10 000). Its bound is on the *rank*: the value
  returned is an actual duration whose rank is within ``n / accuracy``
  (rounded up) of the nearest rank ``ceil(q·n)``. logweir's own bound is
  on the *value* (within 1 %). With the default accuracy, Spark returned
  the exact nearest-rank value for every window of a test run (up to
  9,040 durations); that is what was measured, not what is promised.
* ``unique_clients``: ``approx_count_distinct`` (HyperLogLog++) asked for
  a relative standard deviation ``rsd`` of 0.02, which gives it 4 096
  registers and a standard error of 1.04/√4096 ≈ 1.6 %: the same register
  count and bound as logweir's own HyperLogLog. (``rsd`` 0.01 means
  16 384 registers and made the whole aggregation two to three times
  slower, measured.)
* ``top_paths``, ``top_clients``, ``top_user_agents`` (a batch job over
  files): the overall and status-class rows list their ``top_n`` items,
  most frequent first, ties by item, as JSON text in ``logweir run``'s
  shape. Spark counts every (window, row, item) exactly and ranks them
  (``row_number``), one more aggregation per list; ``logweir run`` keeps
  Misra–Gries summaries, exact while a pane holds at most their capacity
  of distinct items (docs/windows.md), so both give the same counts there
  (an item tied with another at the cut may differ: logweir breaks such
  ties by hash). A streaming (Kafka) query cannot hold a second
  aggregation of the same window in append mode: its lists are null.

Only the small dimensions (``status_class``, ``host``, ``method``,
``service``, ``level``) are supported; each event is given once to its
overall row and once per dimension (``explode``), so one aggregation per
window spec computes every row of that spec.

Spark allows one ``window()`` per aggregation, so each spec is its own
aggregation and the rows of all specs are their union.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from logweir.errors import ConfigError
from logweir.schema import WINDOW_SCHEMA
from logweir.spark.job import DEFAULT_DISTINCT_RSD, DEFAULT_PERCENTILE_ACCURACY
from logweir.windows.dimensions import ALL, SMALL_DIMENSIONS, STATUS_CLASSES
from logweir.windows.spec import WindowSpec

#: Percentiles reported, in the order of the ``duration_p*_ms`` columns.
QUANTILES: tuple[float, ...] = (0.5, 0.95, 0.99)


def check_dimensions(dimensions: Sequence[str]) -> tuple[str, ...]:
    """The dimensions, or a :class:`ConfigError` naming one Spark cannot do."""
    for name in dimensions:
        if name not in SMALL_DIMENSIONS:
            raise ConfigError(
                f"--dimensions: {name!r} is not supported by logweir spark "
                f"(it supports {', '.join(SMALL_DIMENSIONS)}; heavy dimensions "
                "need top-N lists, which only logweir run keeps)"
            )
    return tuple(dict.fromkeys(dimensions))


def status_class(status: Column) -> Column:
    """``"2xx"`` for 200-299 and so on; null outside 100-599 (as in run)."""
    inside = (status >= 100) & (status < 600)
    return F.when(inside, F.concat(F.floor(status / 100).cast("string"), F.lit("xx")))


def _dimension_key(name: str) -> Column:
    if name == "status_class":
        return status_class(F.col("status"))
    return F.col(name)


def _keyed(events: DataFrame, dimensions: Sequence[str]) -> DataFrame:
    """Each event once per row it counts in: overall, then each dimension."""
    pairs = [F.struct(F.lit(ALL).alias("dimension"), F.lit("").alias("key"))]
    pairs += [
        F.struct(F.lit(name).alias("dimension"), _dimension_key(name).alias("key"))
        for name in dimensions
    ]
    exploded = events.withColumn("_row", F.explode(F.array(*pairs)))
    return exploded.where(F.col("_row.key").isNotNull()).select(
        "*",
        F.col("_row.dimension").alias("dimension"),
        F.col("_row.key").alias("key"),
    )


def _aggregates(accuracy: int, rsd: float) -> list[Column]:
    status = F.col("status")
    classes = [
        F.sum(F.when((status >= 100 * c) & (status < 100 * (c + 1)), 1).otherwise(0))
        .cast("long")
        .alias(f"status_{c}xx")
        for c in STATUS_CLASSES
    ]
    duration = F.col("duration_ms")
    # As in logweir run: negative, NaN and infinite durations are ignored.
    valid = duration >= 0.0
    valid &= ~F.isnan(duration) & (duration < float("inf"))
    percentiles = F.percentile_approx(
        F.when(valid, duration), list(QUANTILES), accuracy
    )
    return [
        F.count(F.lit(1)).alias("requests"),
        F.coalesce(F.sum("bytes"), F.lit(0)).cast("long").alias("bytes"),
        *classes,
        percentiles.alias("_percentiles"),
        F.approx_count_distinct("client_ip", rsd).alias("unique_clients"),
    ]


#: Top-list columns and the event column each ranks.
TOP_LISTS: tuple[tuple[str, str], ...] = (
    ("top_paths", "path"),
    ("top_clients", "client_ip"),
    ("top_user_agents", "user_agent"),
)


def _window(spec: WindowSpec) -> Column:
    return F.window("ts", f"{spec.size_s} seconds", f"{spec.step_s} seconds").alias(
        "window"
    )


def top_lists(
    events: DataFrame, spec: WindowSpec, dimensions: Sequence[str], top_n: int
) -> DataFrame:
    """``window, dimension, key`` and the three top-list columns for the
    overall and status-class rows of one spec (as ``logweir run`` has them).
    """
    from pyspark.sql import Window

    chosen = [name for name in dimensions if name == "status_class"]
    keyed = _keyed(events.where(F.col("ts").isNotNull()), chosen)
    row = ["window", "dimension", "key"]
    lists: DataFrame | None = None
    for column, item in TOP_LISTS:
        counted = (
            keyed.where(F.col(item).isNotNull())
            .groupBy(_window(spec), "dimension", "key", F.col(item).alias("item"))
            .agg(F.count(F.lit(1)).alias("count"))
        )
        rank = F.row_number().over(
            Window.partitionBy(*row).orderBy(F.desc("count"), F.asc("item"))
        )
        ranked = counted.withColumn("rank", rank).where(F.col("rank") <= top_n)
        entries = F.array_sort(F.collect_list(F.struct("rank", "item", "count")))
        listed = ranked.groupBy(*row).agg(
            F.to_json(
                F.transform(
                    entries,
                    lambda entry: F.struct(
                        entry["item"].alias("key"), entry["count"].alias("count")
                    ),
                )
            ).alias(column)
        )
        lists = listed if lists is None else lists.join(listed, row, "full")
    assert lists is not None
    return lists


def spec_rows(
    events: DataFrame,
    spec: WindowSpec,
    dimensions: Sequence[str],
    *,
    accuracy: int = DEFAULT_PERCENTILE_ACCURACY,
    rsd: float = DEFAULT_DISTINCT_RSD,
    top_n: int = 0,
) -> DataFrame:
    """The rows of one window spec (``events`` may carry a watermark).

    With ``top_n``, the top lists too (a batch query only: a streaming
    query cannot join a second aggregation of the same window).
    """
    window = _window(spec)
    grouped = _keyed(events.where(F.col("ts").isNotNull()), dimensions).groupBy(
        window, "dimension", "key"
    )
    rows = grouped.agg(*_aggregates(accuracy, rsd))
    top_columns = [F.lit(None).cast("string").alias(c) for c, _ in TOP_LISTS]
    if top_n > 0:
        rows = rows.join(
            top_lists(events, spec, dimensions, top_n),
            ["window", "dimension", "key"],
            "left",
        )
        top_columns = [F.col(column) for column, _ in TOP_LISTS]
    classified = sum(
        (F.col(f"status_{c}xx") for c in STATUS_CLASSES[1:]), F.col("status_1xx")
    )
    percentiles = F.col("_percentiles")
    return rows.select(
        F.lit(spec.size_s).cast("long").alias("window_size_s"),
        F.lit(spec.step_s).cast("long").alias("window_step_s"),
        F.col("window.start").alias("window_start"),
        F.col("window.end").alias("window_end"),
        "dimension",
        "key",
        "requests",
        "bytes",
        *(f"status_{c}xx" for c in STATUS_CLASSES),
        F.when(classified > 0, F.col("status_5xx") / classified).alias("error_rate"),
        *(
            percentiles.getItem(i).alias(column)
            for i, column in enumerate(
                ("duration_p50_ms", "duration_p95_ms", "duration_p99_ms")
            )
        ),
        F.col("unique_clients").cast("long").alias("unique_clients"),
        *top_columns,
    )


def window_rows(
    events: DataFrame,
    specs: Sequence[WindowSpec],
    dimensions: Sequence[str],
    lateness_s: int,
    *,
    accuracy: int = DEFAULT_PERCENTILE_ACCURACY,
    rsd: float = DEFAULT_DISTINCT_RSD,
    top_n: int = 0,
) -> list[DataFrame]:
    """One DataFrame of rows per spec, columns in ``WINDOW_SCHEMA`` order.

    ``top_n`` > 0 adds the top lists (a batch query over files only).

    ``withWatermark`` sets the allowed lateness: in a streaming query
    (Kafka) Spark drops state and emits a window once the watermark passes
    its end; in a batch query over files Spark ignores it, as ``logweir
    run`` does in a batch run (everything is read before windows are
    emitted, so nothing is late).
    """
    watermarked = events.withWatermark("ts", f"{lateness_s} seconds")
    frames = [
        spec_rows(
            watermarked, spec, dimensions, accuracy=accuracy, rsd=rsd, top_n=top_n
        )
        for spec in specs
    ]
    for frame in frames:
        assert tuple(frame.columns) == tuple(WINDOW_SCHEMA), frame.columns
    return frames
