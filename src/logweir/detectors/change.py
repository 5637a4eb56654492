"""Rate of change: how far a point moved from the one ``lag`` points before.

In ``ratio`` mode the score is ``log2((value + offset) / (before + offset))``,
so doubling scores +1 and halving -1 whichever way the series moved, and
``offset`` keeps a count that falls to zero finite. Values below
``-offset`` are not scored in this mode. In ``difference`` mode the score
is ``value - before`` in the series' own units.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from logweir.detectors._config import require
from logweir.detectors.base import (
    Detector,
    DeviationConfig,
    FloatArray,
    IntArray,
    register,
)


@dataclass(frozen=True)
class RateOfChangeConfig(DeviationConfig):
    """Settings of :class:`RateOfChange`; ``threshold`` 1.0 = doubling or halving."""

    threshold: float = 1.0
    lag: int = 1
    mode: Literal["ratio", "difference"] = "ratio"
    offset: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.lag >= 1, "lag", "must be >= 1", self.lag)
        require(self.offset > 0, "offset", "must be > 0", self.offset)


@register
class RateOfChange(Detector[RateOfChangeConfig]):
    """Change against the point ``lag`` admitted points earlier (the baseline)."""

    name = "rate_of_change"
    config_type = RateOfChangeConfig

    def _reset(self) -> None:
        self._recent: deque[float] = deque(maxlen=self.config.lag)

    def _expected(self, ts_us: int) -> tuple[float, float] | None:
        if len(self._recent) < self.config.lag:
            return None
        return self._recent[0], 0.0

    def _learn(self, ts_us: int, value: float) -> None:
        self._recent.append(value)

    def _batch_expected(
        self, ts_us: IntArray, values: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        lag = self.config.lag
        baseline = np.full(values.size, np.nan)
        spread = np.full(values.size, np.nan)
        if values.size > lag:
            baseline[lag:] = values[:-lag]
            spread[lag:] = 0.0
        return baseline, spread

    def _score(
        self, value: FloatArray, baseline: FloatArray, spread: FloatArray
    ) -> FloatArray:
        if self.config.mode == "difference":
            difference: FloatArray = value - baseline
            return difference
        offset = self.config.offset
        now, before = value + offset, baseline + offset
        ok = (now > 0) & (before > 0)
        ratio: FloatArray = np.full(value.shape, np.nan)
        ratio[ok] = np.log2(now[ok] / before[ok])
        return ratio

    def _learned_state(self) -> dict[str, Any]:
        return {"recent": list(self._recent)}

    def _load_learned(self, learned: dict[str, Any]) -> None:
        self._recent.extend(float(v) for v in learned["recent"])
