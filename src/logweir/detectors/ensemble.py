"""An ensemble that scores novelty: is this the most unusual thing lately?

A single z-score threshold cannot serve a flat CPU graph and a spiky tweet
count at once: what is normal noise for one is an outage for the other.
This detector compares each point with the series' own history twice.
First each *component* measures how unusual the point is in one sense:

``level``
    z-score of the value against the last ``window`` points;
``change``
    z-score of the step from the previous value;
``log_level``
    z-score of ``sign(x) log(1 + |x|)``, which sees relative jumps in a
    series whose level varies over orders of magnitude;
``shape``
    distance from the last ``shape_length`` values to the nearest earlier
    stretch of the same length within ``shape_history`` points: a pattern
    the series has not shown before.

The z-score components learn *winsorized* values (clipped to mean ± ``clip``
standard deviations), so that one incident does not widen the notion of
normal for thousands of points after it.

Then each component's magnitude is divided by the largest magnitude it
reached in the last ``record_window`` points (a *record ratio*: above 1 is
a new record) and by the component's weight; the score is the largest of
these. Records are learned clipped to ``record_clip`` × the previous record,
so one huge spike does not hide the next incident. Finally a score is kept
only if it exceeds every score of the previous ``cooldown`` points, which
reports a long incident once, at its start, for any threshold at once.

The score is unbounded (1.0 = as unusual as the recent record);
:func:`likelihood` squashes it into [0, 1) without changing its order.
No point is scored during the first ``warmup`` points.

The defaults were tuned on the NAB corpus (``benchmarks/nab``), where this
configuration scores best among logweir's detectors; see BENCHMARKS.md.
Everything but the ``shape`` distances is a recursion over the points, so
the batch path runs the same step function in a loop; the ``shape``
distances, the costly part, are computed for the whole series at once
with matrix products.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from logweir.detectors._config import require
from logweir.detectors.base import (
    Detector,
    DetectorConfig,
    FloatArray,
    IntArray,
    Score,
    Scores,
    register,
)

Component = Literal["level", "change", "log_level", "shape"]
COMPONENTS: tuple[Component, ...] = ("level", "change", "log_level", "shape")

#: Query rows per matrix product in the batch shape distances.
_SHAPE_BLOCK = 256


@dataclass(frozen=True)
class EnsembleConfig(DetectorConfig):
    """Settings of :class:`Ensemble` (see the module docstring).

    ``weights`` go with ``components``, in order: a component with weight
    1.4 must beat its record by 40 % more to decide the score.
    ``threshold`` applies to the score (1.0 = equal to the recent record).
    """

    components: tuple[str, ...] = COMPONENTS
    weights: tuple[float, ...] = (1.0, 1.4, 1.0, 1.2)
    window: int = 4000
    clip: float = 2.0
    min_history: int = 100
    shape_length: int = 8
    shape_history: int = 2000
    record_window: int = 1200
    record_clip: float = 1.3
    warmup: int = 300
    cooldown: int = 100
    threshold: float = 1.3

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            len(self.components) >= 1,
            "components",
            "name at least one",
            self.components,
        )
        for name in self.components:
            require(
                name in COMPONENTS, "components", f"must be among {COMPONENTS}", name
            )
        require(
            len(set(self.components)) == len(self.components),
            "components",
            "must not repeat",
            self.components,
        )
        require(
            len(self.weights) == len(self.components),
            "weights",
            "needs one weight per component",
            self.weights,
        )
        for weight in self.weights:
            require(weight > 0, "weights", "must all be > 0", self.weights)
        require(self.window >= 2, "window", "must be >= 2", self.window)
        require(self.clip > 0, "clip", "must be > 0", self.clip)
        require(
            2 <= self.min_history <= self.window,
            "min_history",
            "must be between 2 and window",
            self.min_history,
        )
        require(
            self.shape_length >= 2, "shape_length", "must be >= 2", self.shape_length
        )
        require(
            self.shape_history > self.shape_length,
            "shape_history",
            "must be above shape_length",
            self.shape_history,
        )
        require(
            self.record_window >= 1, "record_window", "must be >= 1", self.record_window
        )
        require(self.record_clip >= 1, "record_clip", "must be >= 1", self.record_clip)
        require(self.warmup >= 0, "warmup", "must be >= 0", self.warmup)
        require(self.cooldown >= 0, "cooldown", "must be >= 0", self.cooldown)
        require(self.threshold > 0, "threshold", "must be > 0", self.threshold)


def likelihood(score: npt.ArrayLike) -> FloatArray:
    """``s / (1 + s)``: the score in [0, 1), same order; NaN counts as 0.

    A monotone squashing for outputs that want [0, 1], not a calibrated
    probability.
    """
    values = np.nan_to_num(np.asarray(score, dtype=np.float64), nan=0.0)
    values = np.maximum(values, 0.0)
    result: FloatArray = values / (1.0 + values)
    return result


# -- the parts ----------------------------------------------------------------


class _WinsorizedZ:
    """z-score over the last ``window`` learned values; learns them clipped.

    Running sums make each step O(1); the same floating-point operations run
    in both paths, so they agree to the last bit.
    """

    def __init__(self, window: int, clip: float, min_history: int) -> None:
        self.window, self.clip, self.min_history = window, clip, min_history
        self.values: deque[float] = deque()
        self.total = 0.0
        self.squares = 0.0

    def step(self, x: float) -> float:
        """The z-score of ``x`` (0 while the history is short); learn ``x``."""
        count = len(self.values)
        z = 0.0
        learned = x
        if count >= self.min_history:
            mean = self.total / count
            var = max(self.squares / count - mean * mean, 0.0)
            spread = max(math.sqrt(var), 0.05 * abs(mean), 1e-9)
            z = (x - mean) / spread
            learned = min(max(x, mean - self.clip * spread), mean + self.clip * spread)
        self.values.append(learned)
        self.total += learned
        self.squares += learned * learned
        if len(self.values) > self.window:
            old = self.values.popleft()
            self.total -= old
            self.squares -= old * old
        return z

    def mean_spread(self) -> tuple[float, float]:
        count = len(self.values)
        if count == 0:
            return math.nan, math.nan
        mean = self.total / count
        return mean, math.sqrt(max(self.squares / count - mean * mean, 0.0))

    def state(self) -> dict[str, Any]:
        return {
            "values": list(self.values),
            "total": self.total,
            "squares": self.squares,
        }

    def load(self, state: dict[str, Any]) -> None:
        self.values = deque(float(v) for v in state["values"])
        self.total = float(state["total"])
        self.squares = float(state["squares"])


class _Record:
    """Magnitude over the largest learned magnitude of the last ``window`` steps.

    A monotone deque of (step, value) keeps the running maximum in O(1)
    amortized. Values are learned clipped to ``clip`` × the record once the
    warm-up is over.
    """

    def __init__(self, window: int, clip: float, warmup: int) -> None:
        self.window, self.clip, self.warmup = window, clip, warmup
        self.maxima: deque[tuple[int, float]] = deque()
        self.steps = 0

    def step(self, magnitude: float) -> float:
        t = self.steps
        self.steps += 1
        while self.maxima and self.maxima[0][0] < t - self.window:
            self.maxima.popleft()
        record = self.maxima[0][1] if self.maxima else 0.0
        ratio = magnitude / max(record, 1e-9) if t >= self.warmup else 0.0
        learned = magnitude
        if t >= self.warmup and record > 0:
            learned = min(magnitude, self.clip * record)
        while self.maxima and self.maxima[-1][1] <= learned:
            self.maxima.pop()
        self.maxima.append((t, learned))
        return ratio

    def state(self) -> dict[str, Any]:
        return {"steps": self.steps, "maxima": [list(m) for m in self.maxima]}

    def load(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        self.maxima = deque((int(t), float(v)) for t, v in state["maxima"])


class _Cooldown:
    """Keep a score only if it beats every score of the last ``length`` steps."""

    def __init__(self, length: int) -> None:
        self.length = length
        self.maxima: deque[tuple[int, float]] = deque()
        self.steps = 0

    def step(self, score: float) -> float:
        t = self.steps
        self.steps += 1
        while self.maxima and self.maxima[0][0] < t - self.length:
            self.maxima.popleft()
        kept = score if (not self.maxima or score > self.maxima[0][1]) else 0.0
        if self.length > 0:
            while self.maxima and self.maxima[-1][1] <= score:
                self.maxima.pop()
            self.maxima.append((t, score))
        return kept

    def state(self) -> dict[str, Any]:
        return {"steps": self.steps, "maxima": [list(m) for m in self.maxima]}

    def load(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        self.maxima = deque((int(t), float(v)) for t, v in state["maxima"])


def _shape_distance(buffer: FloatArray, length: int) -> float:
    """Nearest-neighbour distance of the buffer's last ``length`` values.

    Candidates are the stretches of ``buffer`` that end at least ``length``
    points before its end (so they do not overlap the query). Squared
    distances use ``|a|² + |b|² - 2 a·b``, as the batch path does.
    """
    query = buffer[-length:]
    candidates = sliding_window_view(buffer[:-length], length)
    if candidates.shape[0] == 0:
        return 0.0
    squared = (query @ query) + np.einsum("ij,ij->i", candidates, candidates)
    squared -= 2.0 * (candidates @ query)
    return math.sqrt(max(float(squared.min()), 0.0))


def _shape_distances(values: FloatArray, length: int, history: int) -> FloatArray:
    """``_shape_distance`` at every point of a series, by blocks of queries."""
    size = values.size
    result = np.zeros(size)
    if size < 2 * length:
        return result
    rows = sliding_window_view(values, length)  # row r ends at point r + length - 1
    norms = np.einsum("ij,ij->i", rows, rows)
    for first in range(length, rows.shape[0], _SHAPE_BLOCK):
        last = min(rows.shape[0], first + _SHAPE_BLOCK)
        low = max(0, first - history)
        high = last - length  # candidates c <= query - length
        products = rows[first:last] @ rows[low:high].T
        squared = norms[first:last, None] + norms[None, low:high] - 2.0 * products
        queries = np.arange(first, last)[:, None]
        candidates = np.arange(low, high)[None, :]
        allowed = (candidates <= queries - length) & (candidates >= queries - history)
        nearest = np.where(allowed, squared, np.inf).min(axis=1)
        result[first + length - 1 : last + length - 1] = np.sqrt(
            np.maximum(nearest, 0.0)
        )
    return result


def _symlog(value: float) -> float:
    return math.copysign(math.log1p(abs(value)), value)


# -- the detector --------------------------------------------------------------


@register
class Ensemble(Detector[EnsembleConfig]):
    """Novelty of the level, the change, the log level and the shape."""

    name = "ensemble"
    config_type = EnsembleConfig

    def _reset(self) -> None:
        config = self.config
        self._z = {
            name: _WinsorizedZ(config.window, config.clip, config.min_history)
            for name in ("level", "change", "log_level")
        }
        self._records = {
            name: _Record(config.record_window, config.record_clip, config.warmup)
            for name in config.components
        }
        self._cooldown = _Cooldown(config.cooldown)
        span = config.shape_history + config.shape_length
        self._recent: deque[float] = deque(maxlen=span)
        self._previous: float | None = None

    # -- one point ---------------------------------------------------------

    def _features(self, value: float, shape: float | None) -> dict[str, float]:
        """Every component's magnitude for one point; learns the z-scores."""
        change = 0.0 if self._previous is None else value - self._previous
        self._previous = value
        magnitudes = {
            "level": abs(self._z["level"].step(value)),
            "change": abs(self._z["change"].step(change)),
            "log_level": abs(self._z["log_level"].step(_symlog(value))),
        }
        if shape is None:
            self._recent.append(value)
            enough = len(self._recent) >= 2 * self.config.shape_length
            length = self.config.shape_length
            shape = _shape_distance(np.array(self._recent), length) if enough else 0.0
        magnitudes["shape"] = shape
        return magnitudes

    def _step(self, value: float, shape: float | None) -> float:
        magnitudes = self._features(value, shape)
        config = self.config
        best = 0.0
        for name, weight in zip(config.components, config.weights, strict=True):
            best = max(best, self._records[name].step(magnitudes[name]) / weight)
        return self._cooldown.step(best)

    def update(
        self, ts_us: int, value: float, volume: float | None = None
    ) -> Score | None:
        """Score and learn one point; ``None`` during the warm-up or if guarded."""
        if not self._admitted(value, volume):
            return None
        mean, spread = self._z["level"].mean_spread()
        steps = self._cooldown.steps
        score = self._step(value, None)
        if steps < self.config.warmup:
            return None
        anomalous = (
            score >= self.config.threshold
            and abs(value - mean) >= self.config.min_change
        )
        return Score(ts_us, value, mean, spread, score, bool(anomalous))

    def detect(
        self,
        ts_us: npt.ArrayLike,
        values: npt.ArrayLike,
        volumes: npt.ArrayLike | None = None,
    ) -> Scores:
        """The same scores as ``update`` over a whole series, from scratch."""
        times = np.asarray(ts_us, dtype=np.int64)
        points = np.asarray(values, dtype=np.float64)
        if times.shape != points.shape or times.ndim != 1:
            raise ValueError("ts_us and values must be 1-D arrays of one length")
        admitted = self._admitted_mask(points, volumes)
        kept = points[admitted]
        fresh = type(self)(self.config)
        config = self.config
        shapes = _shape_distances(kept, config.shape_length, config.shape_history)
        size = kept.size
        baseline, spread, score = (np.full(size, np.nan) for _ in range(3))
        level = fresh._z["level"]
        for i in range(size):
            baseline[i], spread[i] = level.mean_spread()
            score[i] = fresh._step(float(kept[i]), float(shapes[i]))
        cold = slice(0, min(config.warmup, size))
        baseline[cold], spread[cold], score[cold] = np.nan, np.nan, np.nan
        full = [np.full(points.shape, np.nan) for _ in range(3)]
        for target, source in zip(full, (baseline, spread, score), strict=True):
            target[admitted] = source
        with np.errstate(invalid="ignore"):
            anomalous = (full[2] >= config.threshold) & (
                np.abs(points - full[0]) >= config.min_change
            )
        return Scores(full[0], full[1], full[2], anomalous)

    # -- unused hooks of the base class (update and detect are overridden) --

    def _expected(self, ts_us: int) -> tuple[float, float] | None:
        return self._z["level"].mean_spread()

    def _learn(self, ts_us: int, value: float) -> None:
        self._step(value, None)

    def _batch_expected(
        self, ts_us: IntArray, values: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        raise NotImplementedError("Ensemble overrides detect()")

    # -- state -------------------------------------------------------------

    def _learned_state(self) -> dict[str, Any]:
        return {
            "z": {name: part.state() for name, part in self._z.items()},
            "records": {name: part.state() for name, part in self._records.items()},
            "cooldown": self._cooldown.state(),
            "recent": list(self._recent),
            "previous": self._previous,
        }

    def _load_learned(self, learned: dict[str, Any]) -> None:
        for name, part in self._z.items():
            part.load(learned["z"][name])
        for name, record in self._records.items():
            record.load(learned["records"][name])
        self._cooldown.load(learned["cooldown"])
        self._recent.extend(float(v) for v in learned["recent"])
        previous = learned["previous"]
        self._previous = None if previous is None else float(previous)
