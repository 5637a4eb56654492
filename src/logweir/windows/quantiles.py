"""Duration percentiles from a log-bucketed histogram with exact merges.

Each duration ``d`` (milliseconds) falls in bucket ``ceil(log_gamma(d))``,
with ``gamma = (1 + alpha) / (1 - alpha)``; a bucket is reported as
``2 * gamma**i / (gamma + 1)``, which is within ``alpha`` (relative) of
every value in it. This is the bucketing of DDSketch (Masson, Rim and Lee,
VLDB 2019), kept as Polars rows ``(…group…, bucket, count)``.

Why not a KLL sketch from Apache DataSketches, as for the other metrics:
KLL compacts with a random coin, so two workers that split the same input
get slightly different percentiles, and the pipeline promises that one
worker and two workers give identical windows. Bucket counts merge by
addition, so any split gives the same answer; the whole update is one
vectorized ``group_by`` instead of a sketch call per group; and the bound
is on the value, which is what a latency alert needs. Memory is bounded
by the number of buckets a group's durations span: about 115 per factor
of ten at 1 %, so 1 µs to 3 h is at most 1 150 buckets.

Bound: for the nearest-rank quantile (the ``ceil(q * n)``-th smallest
duration) the reported value ``v`` satisfies ``|v - d| <= alpha * d``.
Durations under :data:`MIN_MS` count as zero, so the absolute error below
that is under ``MIN_MS``. Negative, NaN and infinite durations are not
counted (no format produces them on purpose).
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

#: Relative accuracy of every reported percentile.
ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LOG_GAMMA = math.log(GAMMA)

#: Smallest duration told apart from zero: one microsecond.
MIN_MS = 0.001
#: The bucket of durations below :data:`MIN_MS`; sorts before all others.
ZERO_BUCKET = -32768
_MAX_BUCKET = 32767
_BUCKET_SPAN = 1 << 16

#: Reported percentiles as (column, parts per ten thousand). Integer parts
#: keep ``ceil(q * n)`` exact (0.95 * 100 is 95.00000000000001 in floats).
QUANTILES: tuple[tuple[str, int], ...] = (
    ("duration_p50_ms", 5000),
    ("duration_p95_ms", 9500),
    ("duration_p99_ms", 9900),
)


def bucket_expr(duration: pl.Expr) -> pl.Expr:
    """The bucket (Int16) of each duration; null for unusable values."""
    valid = duration.is_finite() & (duration >= 0)
    index = (duration.log() / _LOG_GAMMA).ceil().clip(ZERO_BUCKET + 1, _MAX_BUCKET)
    return (
        pl.when(~valid)
        .then(None)
        .when(duration < MIN_MS)
        .then(ZERO_BUCKET)
        .otherwise(index)
        .cast(pl.Int16)
        .alias("bucket")
    )


def bucket_value(bucket: pl.Expr) -> pl.Expr:
    """The value reported for a bucket (Float64 milliseconds)."""
    value = 2.0 * (bucket.cast(pl.Float64) * _LOG_GAMMA).exp() / (GAMMA + 1.0)
    return pl.when(bucket == ZERO_BUCKET).then(0.0).otherwise(value)


def quantiles(hist: pl.DataFrame) -> pl.DataFrame:
    """Percentile columns per ``group`` from rows ``(group, bucket, count)``.

    ``group`` is a UInt64 below 2**48; a (group, bucket) pair may appear in
    several rows (from several panes), which are summed. The percentiles
    are found for all groups at once: one sort, one running sum, and a
    binary search per percentile for each group's target rank.
    """
    if hist.is_empty():
        schema: dict[str, pl.DataType] = {"group": pl.UInt64()}
        schema.update({name: pl.Float64() for name, _ in QUANTILES})
        return pl.DataFrame(schema=schema)
    packed = pl.col("group") * _BUCKET_SPAN + (
        pl.col("bucket").cast(pl.Int64) - ZERO_BUCKET
    ).cast(pl.UInt64)
    summed = (
        hist.group_by(packed.alias("packed"))
        .agg(pl.col("count").sum())
        .sort("packed")
    )
    keys = summed.get_column("packed").to_numpy()
    counts = summed.get_column("count").to_numpy()
    running = np.cumsum(counts)
    groups = keys // _BUCKET_SPAN
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    ends = np.r_[starts[1:], len(keys)]
    before = running[starts] - counts[starts]
    totals = running[ends - 1] - before
    columns: dict[str, object] = {"group": groups[starts]}
    for name, parts in QUANTILES:
        rank = np.maximum((totals * parts + 9999) // 10000, 1)
        index = np.searchsorted(running, before + rank, side="left")
        columns[name] = (keys[index] % _BUCKET_SPAN).astype(np.int64) + ZERO_BUCKET
    picked = pl.DataFrame(columns).cast({"group": pl.UInt64})
    return picked.with_columns(
        [bucket_value(pl.col(name)).alias(name) for name, _ in QUANTILES]
    )
