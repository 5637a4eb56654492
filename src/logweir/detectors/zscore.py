"""Rolling z-scores: how many spreads a point sits from its recent history.

:class:`ZScore` uses the mean and standard deviation of the last ``window``
points; :class:`RobustZScore` the median and the median absolute deviation,
which a few outliers in the history (a past incident) barely move.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from logweir.detectors._config import require
from logweir.detectors._rolling import RowStatistic, mean_std, median_mad, over_history
from logweir.detectors.base import (
    Detector,
    DeviationConfig,
    FloatArray,
    IntArray,
    register,
)


@dataclass(frozen=True)
class RollingConfig(DeviationConfig):
    """A deviation detector over the last ``window`` points.

    A point is scored once at least ``min_history`` points came before it.
    """

    window: int = 60
    min_history: int = 20

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.window >= 2, "window", "must be >= 2", self.window)
        require(
            2 <= self.min_history <= self.window,
            "min_history",
            f"must be between 2 and window ({self.window})",
            self.min_history,
        )


@dataclass(frozen=True)
class ZScoreConfig(RollingConfig):
    """Settings of :class:`ZScore`."""


@dataclass(frozen=True)
class RobustZScoreConfig(RollingConfig):
    """Settings of :class:`RobustZScore`."""


class _Rolling(Detector[Any]):
    """A detector whose baseline is a statistic of its last ``window`` points."""

    statistic: RowStatistic

    def _reset(self) -> None:
        self._history: deque[float] = deque(maxlen=self.config.window)

    def _expected(self, ts_us: int) -> tuple[float, float] | None:
        if len(self._history) < self.config.min_history:
            return None
        baseline, spread = type(self).statistic(np.array(self._history)[None, :])
        return float(baseline[0]), float(spread[0])

    def _learn(self, ts_us: int, value: float) -> None:
        self._history.append(value)

    def _batch_expected(
        self, ts_us: IntArray, values: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        config = self.config
        return over_history(
            values, config.window, config.min_history, type(self).statistic
        )

    def _learned_state(self) -> dict[str, Any]:
        return {"history": list(self._history)}

    def _load_learned(self, learned: dict[str, Any]) -> None:
        self._history.extend(float(v) for v in learned["history"])


@register
class ZScore(_Rolling):
    """``(value - mean) / std`` of the last ``window`` points."""

    name = "zscore"
    config_type = ZScoreConfig
    statistic = staticmethod(mean_std)


@register
class RobustZScore(_Rolling):
    """``(value - median) / (1.4826 × MAD)`` of the last ``window`` points."""

    name = "robust_zscore"
    config_type = RobustZScoreConfig
    statistic = staticmethod(median_mad)
