"""A static threshold: a value above ``upper`` or below ``lower`` is anomalous.

No history is needed. The baseline reported is the bound that was crossed
(the nearer one while inside), and the score how far past it the value is,
in the series' units: positive above ``upper``, negative below ``lower``,
0 in between.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from logweir.detectors._config import require
from logweir.detectors.base import (
    BoolArray,
    Detector,
    DetectorConfig,
    FloatArray,
    IntArray,
    register,
)


@dataclass(frozen=True)
class StaticConfig(DetectorConfig):
    """Settings of :class:`StaticThreshold`: at least one bound."""

    upper: float | None = None
    lower: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            self.upper is not None or self.lower is not None,
            "upper",
            "give upper, lower or both",
            None,
        )
        if self.upper is not None and self.lower is not None:
            require(self.lower < self.upper, "lower", "must be below upper", self.lower)


@register
class StaticThreshold(Detector[StaticConfig]):
    """Fixed bounds; learning is a no-op, so the state is the config alone."""

    name = "static"
    config_type = StaticConfig

    def _reset(self) -> None:
        pass

    def _bounds(self) -> tuple[float, float]:
        upper = self.config.upper
        lower = self.config.lower
        return (
            np.inf if upper is None else upper,
            -np.inf if lower is None else lower,
        )

    def _expected(self, ts_us: int) -> tuple[float, float] | None:
        return 0.0, 0.0  # the baseline depends on the value; see _score

    def _learn(self, ts_us: int, value: float) -> None:
        pass

    def _batch_expected(
        self, ts_us: IntArray, values: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        return np.zeros(values.size), np.zeros(values.size)

    def _resolve(self, value: FloatArray, baseline: FloatArray) -> FloatArray:
        """The bound crossed, or the nearer one while inside."""
        upper, lower = self._bounds()
        nearer = np.where(np.abs(value - upper) <= np.abs(value - lower), upper, lower)
        bound: FloatArray = np.where(
            value > upper, upper, np.where(value < lower, lower, nearer)
        )
        bound[np.isnan(baseline)] = np.nan
        return bound

    def _score(
        self, value: FloatArray, baseline: FloatArray, spread: FloatArray
    ) -> FloatArray:
        upper, lower = self._bounds()
        score: FloatArray = np.where(
            value > upper, value - upper, np.where(value < lower, value - lower, 0.0)
        )
        return score

    def _anomalous(
        self, value: FloatArray, baseline: FloatArray, score: FloatArray
    ) -> BoolArray:
        with np.errstate(invalid="ignore"):
            result: BoolArray = (score != 0) & (np.abs(score) >= self.config.min_change)
        return result

    def _learned_state(self) -> dict[str, Any]:
        return {}

    def _load_learned(self, learned: dict[str, Any]) -> None:
        pass
