"""Deviation from a moving average: simple (relative) and exponential.

:class:`MovingAverage` scores a point by its relative distance from the mean
of the last ``window`` points: 1.0 means 100 % above it. That reads the way
people talk about traffic ("five times the usual") and needs no spread.

:class:`EWMA` keeps an exponentially weighted mean and variance, so recent
points count most and the memory is a single pair of numbers, and scores
in standard deviations like a z-score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from logweir.detectors._config import require
from logweir.detectors._rolling import mean_std
from logweir.detectors.base import (
    Detector,
    DeviationConfig,
    FloatArray,
    IntArray,
    register,
)
from logweir.detectors.zscore import RollingConfig, _Rolling


@dataclass(frozen=True)
class MovingAverageConfig(RollingConfig):
    """Settings of :class:`MovingAverage`.

    ``threshold`` is a relative change (1.0 = twice the average).
    ``min_base`` is the smallest average the change is measured against, so
    a series resting near zero does not turn every blip into infinity.
    """

    threshold: float = 1.0
    min_base: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.min_base > 0, "min_base", "must be > 0", self.min_base)


@register
class MovingAverage(_Rolling):
    """``(value - mean) / max(|mean|, min_base)`` over the last ``window`` points.

    ``spread`` is the history's standard deviation, reported for the alert
    text; it does not enter the score.
    """

    name = "moving_average"
    config_type = MovingAverageConfig
    statistic = staticmethod(mean_std)

    def _score(
        self, value: FloatArray, baseline: FloatArray, spread: FloatArray
    ) -> FloatArray:
        base = np.maximum(np.abs(baseline), self.config.min_base)
        result: FloatArray = (value - baseline) / base
        return result


@dataclass(frozen=True)
class EWMAConfig(DeviationConfig):
    """Settings of :class:`EWMA`.

    ``alpha`` is the weight of the newest point (0.1 remembers about the last
    20 points); a point is scored once ``min_history`` points came before it.
    """

    alpha: float = 0.1
    min_history: int = 20

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0 < self.alpha <= 1, "alpha", "must be in (0, 1]", self.alpha)
        require(self.min_history >= 2, "min_history", "must be >= 2", self.min_history)


@register
class EWMA(Detector[EWMAConfig]):
    """Exponentially weighted mean and variance; score in standard deviations.

    After each point ``x`` with ``d = x - mean``: ``mean = (1 - a) mean + a x``
    and ``var = (1 - a) var + a (1 - a) d²`` (the first point sets the mean
    and a variance of 0).
    """

    name = "ewma"
    config_type = EWMAConfig

    def _reset(self) -> None:
        self._count = 0
        self._mean = 0.0
        self._var = 0.0

    def _expected(self, ts_us: int) -> tuple[float, float] | None:
        if self._count < self.config.min_history:
            return None
        return self._mean, math.sqrt(self._var)

    def _learn(self, ts_us: int, value: float) -> None:
        alpha = self.config.alpha
        if self._count == 0:
            self._mean, self._var = value, 0.0
        else:
            deviation = value - self._mean
            self._mean = (1 - alpha) * self._mean + alpha * value
            self._var = (1 - alpha) * self._var + alpha * ((1 - alpha) * deviation**2)
        self._count += 1

    def _batch_expected(
        self, ts_us: IntArray, values: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        alpha = self.config.alpha
        size = values.size
        baseline = np.full(size, np.nan)
        spread = np.full(size, np.nan)
        if size == 0:
            return baseline, spread
        # Polars runs the recursion in compiled code; the variance is itself
        # an EWMA of (1 - a) d², with d measured against the previous mean.
        mean = _ewm(values, alpha)
        squared = np.zeros(size)
        squared[1:] = (1 - alpha) * (values[1:] - mean[:-1]) ** 2
        var = _ewm(squared, alpha)
        start = self.config.min_history
        baseline[start:] = mean[start - 1 : -1]
        spread[start:] = np.sqrt(var[start - 1 : -1])
        return baseline, spread

    def _learned_state(self) -> dict[str, Any]:
        return {"count": self._count, "mean": self._mean, "var": self._var}

    def _load_learned(self, learned: dict[str, Any]) -> None:
        self._count = int(learned["count"])
        self._mean = float(learned["mean"])
        self._var = float(learned["var"])


def _ewm(values: FloatArray, alpha: float) -> FloatArray:
    series = pl.Series(values).ewm_mean(alpha=alpha, adjust=False)
    result: FloatArray = series.to_numpy().astype(np.float64, copy=False)
    return result
