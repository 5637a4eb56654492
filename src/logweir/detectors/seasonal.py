"""A seasonal baseline: what this series did at the same time on earlier days.

Time is cut into buckets of ``bucket_s`` seconds. A point is compared with
the values at the same bucket (and ``neighbours`` buckets either side, to
tolerate a little jitter) in each of the last ``seasons`` periods, where a
period is a day or a week. The baseline is the median of those samples and
the spread 1.4826 × their MAD, floored at ``min_relative_spread`` × the
baseline because a handful of samples can agree by chance.

With ``period = "auto"`` a point uses the weekly baseline once samples from
at least ``min_seasons`` earlier weeks exist, else the daily one once
``min_seasons`` earlier days exist, else it is not scored: a Monday
morning is compared with Monday mornings once the detector has seen some.

Each bucket keeps the last value that fell into it, so the bucket should
match the step of the series (60 s for 1-minute windows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from logweir.detectors._config import require
from logweir.detectors._rolling import MAD_TO_SIGMA, MEAN_AD_TO_SIGMA
from logweir.detectors.base import (
    Detector,
    DeviationConfig,
    FloatArray,
    IntArray,
    register,
)

DAY_S = 86_400
WEEK_S = 7 * DAY_S


@dataclass(frozen=True)
class SeasonalConfig(DeviationConfig):
    """Settings of :class:`SeasonalBaseline` (see the module docstring)."""

    period: Literal["day", "week", "auto"] = "auto"
    bucket_s: int = 60
    seasons: int = 4
    neighbours: int = 1
    min_seasons: int = 2
    min_relative_spread: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            self.bucket_s > 0 and DAY_S % self.bucket_s == 0,
            "bucket_s",
            "must divide a day (86400) evenly",
            self.bucket_s,
        )
        require(self.seasons >= 1, "seasons", "must be >= 1", self.seasons)
        require(
            0 <= self.neighbours < DAY_S // self.bucket_s // 2,
            "neighbours",
            "must be >= 0 and less than half a day of buckets",
            self.neighbours,
        )
        require(
            1 <= self.min_seasons <= self.seasons,
            "min_seasons",
            f"must be between 1 and seasons ({self.seasons})",
            self.min_seasons,
        )
        require(
            self.min_relative_spread >= 0,
            "min_relative_spread",
            "must be >= 0",
            self.min_relative_spread,
        )


@register
class SeasonalBaseline(Detector[SeasonalConfig]):
    """Median of the same time of day (or week) in earlier periods."""

    name = "seasonal"
    config_type = SeasonalConfig

    def _reset(self) -> None:
        #: bucket index (ts // bucket) -> last value learned in that bucket
        self._buckets: dict[int, float] = {}
        self._newest = -(2**62)

    # -- geometry ----------------------------------------------------------

    def _periods(self) -> list[int]:
        """Period lengths in buckets, in the order they are preferred."""
        day = DAY_S // self.config.bucket_s
        return {"day": [day], "week": [7 * day], "auto": [7 * day, day]}[
            self.config.period
        ]

    def _offsets(self, period: int) -> IntArray:
        """Bucket offsets of the samples: ``seasons × (2 n + 1)``, by season."""
        n = self.config.neighbours
        lags = np.arange(1, self.config.seasons + 1, dtype=np.int64)[:, None] * period
        return (-lags + np.arange(-n, n + 1, dtype=np.int64)[None, :]).astype(np.int64)

    def _bucket(self, ts_us: int) -> int:
        return ts_us // (self.config.bucket_s * 1_000_000)

    # -- streaming ---------------------------------------------------------

    def _expected(self, ts_us: int) -> tuple[float, float] | None:
        bucket = self._bucket(ts_us)
        for period in self._periods():
            offsets = self._offsets(period)
            samples = np.array(
                [
                    [self._buckets.get(bucket + int(o), math.nan) for o in row]
                    for row in offsets
                ]
            )
            result = self._summarize(samples[None, :, :])
            if not math.isnan(result[0][0]):
                return float(result[0][0]), float(result[1][0])
        return None

    def _learn(self, ts_us: int, value: float) -> None:
        bucket = self._bucket(ts_us)
        self._buckets[bucket] = value
        if bucket > self._newest:
            self._newest = bucket
            horizon = (
                max(self._periods()) * self.config.seasons + self.config.neighbours
            )
            # Buckets arrive in time order, so the dict's oldest keys come
            # first and pruning stops at the first one still needed.
            while self._buckets:
                oldest = next(iter(self._buckets))
                if oldest >= bucket - horizon:
                    break
                del self._buckets[oldest]

    # -- batch -------------------------------------------------------------

    def _batch_expected(
        self, ts_us: IntArray, values: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        size = values.size
        baseline = np.full(size, np.nan)
        spread = np.full(size, np.nan)
        if size == 0:
            return baseline, spread
        buckets = ts_us // (self.config.bucket_s * 1_000_000)
        first = int(buckets[0])
        grid = np.full(int(buckets[-1]) - first + 1, np.nan)
        # The last value of a bucket wins, as in streaming; np.unique on the
        # reversed array finds each bucket's last occurrence.
        _, last = np.unique(buckets[::-1], return_index=True)
        last = size - 1 - last
        grid[buckets[last] - first] = values[last]
        for period in reversed(self._periods()):  # preferred period last wins
            where = buckets[:, None, None] + self._offsets(period)[None, :, :] - first
            valid = where >= 0
            samples = np.where(valid, grid[np.where(valid, where, 0)], np.nan)
            b, s = self._summarize(samples)
            found = ~np.isnan(b)
            baseline[found], spread[found] = b[found], s[found]
        return baseline, spread

    def _summarize(self, samples: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Median and floored robust sigma over axes 1–2; NaN if too few seasons.

        ``samples`` has shape ``(points, seasons, 2 n + 1)``, NaN where a
        bucket holds nothing.
        """
        config = self.config
        seasons_seen = (~np.isnan(samples)).any(axis=2).sum(axis=1)
        flat = samples.reshape(samples.shape[0], -1)
        enough = seasons_seen >= config.min_seasons
        baseline = np.full(flat.shape[0], np.nan)
        spread = np.full(flat.shape[0], np.nan)
        if not enough.any():
            return baseline, spread
        rows = flat[enough]
        median = np.nanmedian(rows, axis=1)
        deviation = np.abs(rows - median[:, None])
        mad = np.nanmedian(deviation, axis=1)
        sigma = np.where(
            mad > 0,
            MAD_TO_SIGMA * mad,
            MEAN_AD_TO_SIGMA * np.nanmean(deviation, axis=1),
        )
        baseline[enough] = median
        spread[enough] = np.maximum(sigma, config.min_relative_spread * np.abs(median))
        return baseline, spread

    def _learned_state(self) -> dict[str, Any]:
        return {
            "newest": self._newest,
            "buckets": [[b, v] for b, v in sorted(self._buckets.items())],
        }

    def _load_learned(self, learned: dict[str, Any]) -> None:
        self._newest = int(learned["newest"])
        self._buckets = {int(b): float(v) for b, v in learned["buckets"]}
