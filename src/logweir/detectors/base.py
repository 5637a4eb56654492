"""What every detector is: one verb set, one verdict type, shared guards.

A detector watches one numeric series. :meth:`Detector.update` takes the
next point, scores it against the history *before* that point, then learns
it; :meth:`Detector.detect` does the same over a whole series at once with
numpy, from an empty history, and gives the same numbers (the tests hold
the two paths to each other). :meth:`Detector.state` snapshots what the
detector has learned as a JSON-ready dict and :meth:`Detector.from_state`
rebuilds it, so that a restored detector continues exactly where the saved
one stopped.

Two guards keep small numbers from raising alarms, in every detector:

``min_volume``
    A point carries an optional ``volume``, the number of events behind its
    value (the requests of a window for a 5xx share). A point whose volume is
    below ``min_volume`` is neither scored nor learned: 1 error out of 1
    request is not a 100 % error rate worth learning.
``min_change``
    A point is anomalous only if it differs from its baseline by at least
    this much, in the series' own units: 1 request becoming 2 is not a
    100 % spike.

Example::

    >>> from logweir.detectors import ZScore, ZScoreConfig
    >>> detector = ZScore(ZScoreConfig(window=5, min_history=3, threshold=3.0))
    >>> for minute, value in enumerate([10.0, 11.0, 9.0, 10.0]):
    ...     verdict = detector.update(minute * 60_000_000, value)
    >>> verdict.baseline, verdict.anomalous
    (10.0, False)
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, Self, TypeVar

import numpy as np
import numpy.typing as npt

from logweir.detectors._config import build_config, config_to_dict, require
from logweir.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

Direction = Literal["up", "down", "both"]

#: Spreads below this are treated as this, so that a flat history gives a
#: large finite score to any change instead of a division by zero.
SPREAD_FLOOR = 1e-9


@dataclass(frozen=True)
class Score:
    """The verdict on one point.

    ``baseline`` is what the history expected, ``spread`` how much the
    history usually varies around it (0 where a detector has no notion of
    spread), ``score`` the detector's signed measure of the difference
    (positive above the baseline), ``anomalous`` whether it crosses the
    configured threshold in the configured direction and passes the guards.
    """

    ts_us: int
    value: float
    baseline: float
    spread: float
    score: float
    anomalous: bool


@dataclass(frozen=True)
class Scores:
    """Verdicts on a whole series, aligned with the input points.

    Points that were not scored (too little history, or stopped by the
    volume guard) have NaN ``baseline``, ``spread`` and ``score`` and are not
    ``anomalous``.
    """

    baseline: FloatArray
    spread: FloatArray
    score: FloatArray
    anomalous: BoolArray

    @property
    def scored(self) -> BoolArray:
        return ~np.isnan(self.score)

    def at(self, index: int, ts_us: int, value: float) -> Score | None:
        """The verdict on point ``index`` as :meth:`Detector.update` gives it."""
        if math.isnan(self.score[index]):
            return None
        return Score(
            ts_us=ts_us,
            value=value,
            baseline=float(self.baseline[index]),
            spread=float(self.spread[index]),
            score=float(self.score[index]),
            anomalous=bool(self.anomalous[index]),
        )


@dataclass(frozen=True)
class DetectorConfig:
    """The guards every detector has (see the module docstring)."""

    min_volume: float = 0.0
    min_change: float = 0.0

    def __post_init__(self) -> None:
        require(self.min_volume >= 0, "min_volume", "must be >= 0", self.min_volume)
        require(self.min_change >= 0, "min_change", "must be >= 0", self.min_change)


@dataclass(frozen=True)
class DeviationConfig(DetectorConfig):
    """Settings of a detector that measures deviation from a learned baseline.

    ``threshold`` is in the detector's score units (standard deviations for
    the z-scores); ``direction`` says which side counts; ``min_spread`` is a
    floor on the spread, in the series' units, for series that are nearly
    flat in normal times.
    """

    threshold: float = 4.0
    direction: Direction = "both"
    min_spread: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.threshold > 0, "threshold", "must be > 0", self.threshold)
        require(self.min_spread >= 0, "min_spread", "must be >= 0", self.min_spread)


C = TypeVar("C", bound=DetectorConfig)

#: Detector classes by name, filled by :func:`register`.
DETECTORS: dict[str, type[Detector[Any]]] = {}


def register(cls: type[Detector[C]]) -> type[Detector[C]]:
    """Class decorator: make a detector known by its ``name``."""
    DETECTORS[cls.name] = cls
    return cls


class Detector(ABC, Generic[C]):
    """Base of every detector; subclasses fill in the baseline and learning."""

    #: Name used in configs, states and alerts (``"robust_zscore"``).
    name: ClassVar[str]
    #: The config dataclass this detector takes.
    config_type: ClassVar[type[DetectorConfig]]

    def __init__(self, config: C | None = None) -> None:
        if config is None:
            config = self.config_type()  # type: ignore[assignment]
        elif not isinstance(config, self.config_type):
            raise ConfigError(
                f"{self.name}: expected a {self.config_type.__name__}, "
                f"got {type(config).__name__}"
            )
        self.config: C = config  # type: ignore[assignment]
        self._reset()

    @classmethod
    def from_config(cls, data: dict[str, Any], where: str = "") -> Self:
        """Build from a config table; errors name ``where.<key>``."""
        config = build_config(cls.config_type, data, where or cls.name)
        return cls(config)  # type: ignore[arg-type]

    # -- the verbs ---------------------------------------------------------

    def update(
        self, ts_us: int, value: float, volume: float | None = None
    ) -> Score | None:
        """Score ``value`` at ``ts_us`` against the history so far, then learn it.

        Returns ``None`` when the point is not scored: its value is not a
        finite number or its volume is below ``min_volume`` (then it is not
        learned either), or the history is still too short (then it is).
        """
        if not self._admitted(value, volume):
            return None
        expected = self._expected(ts_us)
        self._learn(ts_us, value)
        if expected is None:
            return None
        point = np.array([value], dtype=np.float64)
        baseline = float(self._resolve(point, np.array([expected[0]]))[0])
        spread = expected[1]
        with np.errstate(invalid="ignore", divide="ignore"):
            score = self._score(point, np.array([baseline]), np.array([spread]))
        if math.isnan(score[0]):
            return None
        anomalous = self._anomalous(point, np.array([baseline]), score)
        return Score(
            ts_us, value, baseline, spread, float(score[0]), bool(anomalous[0])
        )

    def detect(
        self,
        ts_us: npt.ArrayLike,
        values: npt.ArrayLike,
        volumes: npt.ArrayLike | None = None,
    ) -> Scores:
        """Score a whole series from an empty history, as ``update`` would.

        ``volumes`` may hold NaN for points without a volume. This detector's
        own state is neither read nor changed. Timestamps must not decrease.
        """
        times = np.asarray(ts_us, dtype=np.int64)
        points = np.asarray(values, dtype=np.float64)
        if times.shape != points.shape or times.ndim != 1:
            raise ValueError("ts_us and values must be 1-D arrays of one length")
        if times.size > 1 and bool(np.any(np.diff(times) < 0)):
            raise ValueError("timestamps must not decrease")
        admitted = self._admitted_mask(points, volumes)
        baseline = np.full(points.shape, np.nan)
        spread = np.full(points.shape, np.nan)
        fresh = type(self)(self.config)
        kept_b, kept_s = fresh._batch_expected(times[admitted], points[admitted])
        baseline[admitted] = kept_b
        spread[admitted] = kept_s
        with np.errstate(invalid="ignore", divide="ignore"):
            baseline = self._resolve(points, baseline)
            score = self._score(points, baseline, spread)
        score[np.isnan(baseline)] = np.nan
        unscored = np.isnan(score)
        baseline[unscored] = np.nan
        spread[unscored] = np.nan
        anomalous = self._anomalous(points, baseline, score) & ~np.isnan(score)
        return Scores(baseline, spread, score, anomalous)

    def state(self) -> dict[str, Any]:
        """A JSON-ready snapshot: the config and everything learned."""
        return {
            "detector": self.name,
            "config": config_to_dict(self.config),
            "learned": self._learned_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild a detector from :meth:`state`; it continues exactly."""
        if state.get("detector") != cls.name:
            raise ConfigError(
                f"state is for detector {state.get('detector')!r}, not {cls.name!r}"
            )
        detector = cls.from_config(state["config"], cls.name)
        detector._load_learned(state["learned"])
        return detector

    # -- shared scoring ----------------------------------------------------

    def _admitted(self, value: float, volume: float | None) -> bool:
        if not math.isfinite(value):
            return False
        return volume is None or math.isnan(volume) or volume >= self.config.min_volume

    def _admitted_mask(
        self, points: FloatArray, volumes: npt.ArrayLike | None
    ) -> BoolArray:
        admitted: BoolArray = np.isfinite(points)
        if volumes is not None:
            vols = np.asarray(volumes, dtype=np.float64)
            if vols.shape != points.shape:
                raise ValueError("volumes must have the length of values")
            admitted &= np.isnan(vols) | (vols >= self.config.min_volume)
        return admitted

    def _resolve(self, value: FloatArray, baseline: FloatArray) -> FloatArray:
        """The baseline to report, given the value; most detectors keep theirs."""
        return baseline

    def _score(
        self, value: FloatArray, baseline: FloatArray, spread: FloatArray
    ) -> FloatArray:
        """Signed deviation in spreads; subclasses with other units override."""
        floor = max(getattr(self.config, "min_spread", 0.0), SPREAD_FLOOR)
        result: FloatArray = (value - baseline) / np.maximum(spread, floor)
        return result

    def _anomalous(
        self, value: FloatArray, baseline: FloatArray, score: FloatArray
    ) -> BoolArray:
        config = self.config
        threshold = float(getattr(config, "threshold", 0.0))
        direction = getattr(config, "direction", "both")
        with np.errstate(invalid="ignore"):
            if direction == "up":
                crossed = score >= threshold
            elif direction == "down":
                crossed = score <= -threshold
            else:
                crossed = np.abs(score) >= threshold
            big_enough = np.abs(value - baseline) >= config.min_change
        result: BoolArray = crossed & big_enough
        return result

    # -- what subclasses provide -------------------------------------------

    @abstractmethod
    def _reset(self) -> None:
        """Start from an empty history."""

    @abstractmethod
    def _expected(self, ts_us: int) -> tuple[float, float] | None:
        """``(baseline, spread)`` for a point at ``ts_us``, or ``None`` if unsure."""

    @abstractmethod
    def _learn(self, ts_us: int, value: float) -> None:
        """Add an admitted point to the history."""

    @abstractmethod
    def _batch_expected(
        self, ts_us: IntArray, values: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """``_expected`` for every point of an admitted series, NaN if unsure."""

    @abstractmethod
    def _learned_state(self) -> dict[str, Any]:
        """What has been learned, JSON-ready."""

    @abstractmethod
    def _load_learned(self, learned: dict[str, Any]) -> None:
        """Restore what :meth:`_learned_state` gave."""


def detector_from_state(state: dict[str, Any]) -> Detector[Any]:
    """Rebuild any registered detector from its :meth:`Detector.state`."""
    name = state.get("detector")
    if name not in DETECTORS:
        raise ConfigError(f"state names an unknown detector {name!r}")
    return DETECTORS[str(name)].from_state(state)


def build_detector(name: str, data: dict[str, Any], where: str = "") -> Detector[Any]:
    """A detector by registered name, configured from a table."""
    if name not in DETECTORS:
        known = ", ".join(sorted(DETECTORS))
        raise ConfigError(
            f"{where or 'detector'}: unknown detector {name!r} (known: {known})"
        )
    return DETECTORS[name].from_config(data, where or name)
