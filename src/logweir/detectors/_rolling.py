"""Statistics over the ``window`` points before each point, for a whole series.

The streaming path of a rolling detector calls a statistic on its buffer
(one row); the batch path calls the *same* statistic on many rows at once,
a strided view of the series cut into chunks so that memory stays bounded.
Using one function for both is what keeps the two paths equal.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from logweir.detectors.base import FloatArray

#: Takes rows of equal-length histories, gives (baseline, spread) per row.
RowStatistic = Callable[[FloatArray], tuple[FloatArray, FloatArray]]

#: Rows per chunk: bounds the temporary arrays a statistic makes to about
#: ``_CHUNK_ELEMENTS`` floats whatever the window.
_CHUNK_ELEMENTS = 1 << 21


def over_history(
    values: FloatArray, window: int, min_history: int, statistic: RowStatistic
) -> tuple[FloatArray, FloatArray]:
    """``statistic`` of ``values[max(0, i - window):i]`` for every ``i``.

    Positions with fewer than ``min_history`` points before them get NaN.
    """
    size = values.size
    baseline = np.full(size, np.nan)
    spread = np.full(size, np.nan)
    # Warm-up: the history is still growing, one length per point.
    for i in range(min_history, min(window, size)):
        b, s = statistic(values[None, :i])
        baseline[i], spread[i] = b[0], s[0]
    if size <= window:
        return baseline, spread
    rows = sliding_window_view(values, window)[: size - window]
    step = max(1, _CHUNK_ELEMENTS // window)
    for start in range(0, rows.shape[0], step):
        chunk = rows[start : start + step]
        b, s = statistic(chunk)
        baseline[window + start : window + start + chunk.shape[0]] = b
        spread[window + start : window + start + chunk.shape[0]] = s
    return baseline, spread


def mean_std(rows: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Mean and population standard deviation of each row."""
    mean: FloatArray = rows.mean(axis=1)
    std: FloatArray = np.sqrt(((rows - mean[:, None]) ** 2).mean(axis=1))
    return mean, std


#: Scale of the median absolute deviation to a normal standard deviation.
MAD_TO_SIGMA = 1.4826
#: Same for the mean absolute deviation (sqrt(pi / 2)).
MEAN_AD_TO_SIGMA = 1.2533


def median_mad(rows: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Median of each row and a robust sigma: 1.4826 × MAD.

    When more than half of a row is one value its MAD is 0, which would make
    every other value infinitely surprising; such rows fall back to the mean
    absolute deviation around the median (scaled to a sigma), which sees the
    minority of values that differ.
    """
    median: FloatArray = np.median(rows, axis=1)
    deviation = np.abs(rows - median[:, None])
    mad = np.median(deviation, axis=1)
    fallback = MEAN_AD_TO_SIGMA * deviation.mean(axis=1)
    sigma: FloatArray = np.where(mad > 0, MAD_TO_SIGMA * mad, fallback)
    return median, sigma
