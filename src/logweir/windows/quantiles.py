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


def quantiles(
    group: np.ndarray, bucket: np.ndarray, count: np.ndarray, groups: int
) -> dict[str, np.ndarray]:
    """Percentiles for ``groups`` groups from rows (group, bucket, count).

    ``group`` holds indexes below ``groups``; a (group, bucket) pair may
    appear in many rows (several panes or cells). Returns, per percentile
    column, a Float64 array of length ``groups`` (NaN where a group has no
    duration).

    Counts go into a dense groups × buckets matrix (``np.bincount``), which
    is then summed along the buckets and searched for each target rank: a
    few vectorized passes, no sort and no hash table. The matrix is built
    for at most :data:`DENSE_CELLS` cells at a time.
    """
    result = {name: np.full(groups, np.nan) for name, _ in QUANTILES}
    if len(group) == 0:
        return result
    bucket = bucket.astype(np.int64)
    low = int(bucket.min())
    span = int(bucket.max()) - low + 1
    per_chunk = max(1, DENSE_CELLS // span)
    chunk_of = group // per_chunk
    chunks = int(chunk_of.max()) + 1
    if chunks == 1:
        _dense_chunk(result, group, bucket - low, count, (0, groups, span, low))
        return result
    order = np.argsort(chunk_of, kind="stable")
    bounds = np.searchsorted(chunk_of[order], np.arange(chunks + 1))
    for chunk in range(chunks):
        rows = order[bounds[chunk] : bounds[chunk + 1]]
        first = chunk * per_chunk
        size = min(per_chunk, groups - first)
        _dense_chunk(
            result,
            group[rows] - first,
            bucket[rows] - low,
            count[rows],
            (first, size, span, low),
        )
    return result


#: Cells of the dense groups × buckets matrix built at once (8 bytes each).
DENSE_CELLS = 4_000_000


def _dense_chunk(
    result: dict[str, np.ndarray],
    group: np.ndarray,
    offset: np.ndarray,
    count: np.ndarray,
    shape: tuple[int, int, int, int],
) -> None:
    """Fill ``result`` for groups ``first .. first + size`` of one chunk.

    One running count over the whole flattened matrix is monotone, so each
    group's target rank is found with one binary search in it, offset by
    the count before the group's row.
    """
    first, size, span, low = shape
    if len(group) == 0:
        return
    flat = np.bincount(
        group.astype(np.int64) * span + offset, weights=count, minlength=size * span
    )
    running = np.cumsum(flat)
    row_end = np.arange(1, size + 1) * span - 1
    after = running[row_end]
    before = np.r_[0.0, after[:-1]]
    totals = after - before
    present = totals > 0
    starts = np.arange(size) * span
    for name, parts in QUANTILES:
        rank = np.maximum(np.floor((totals * parts + 9999) / 10000), 1)
        found = np.searchsorted(running, before + rank, side="left")
        index = np.minimum(found, row_end) - starts + low
        values = np.where(index == ZERO_BUCKET, 0.0, _values(index))
        result[name][first : first + size] = np.where(present, values, np.nan)


def _values(bucket: np.ndarray) -> np.ndarray:
    return 2.0 * np.exp(bucket * _LOG_GAMMA) / (GAMMA + 1.0)
