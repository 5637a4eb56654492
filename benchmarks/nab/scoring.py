"""NAB scoring, written from the benchmark's published description.

The Numenta Anomaly Benchmark (Lavin & Ahmad, 2015) scores a detector that
gives every point of a series an anomaly score; a point is a *detection*
when its score is at least a threshold. Per file:

* Each labelled anomaly has a *window* of rows around it
  (``labels/combined_windows.json``). The first detection inside a window
  earns ``A_TP × σ(y)``, where ``y`` is its position relative to the
  window's end: ``y = -(end - i + 1) / length`` runs from -1 at the first
  row to just below 0 at the last, and ``σ(y) = 2 / (1 + e^{5y}) - 1``
  rewards early detection (0.987 at the start, near 0 at the end). Later
  detections in the same window neither earn nor cost anything.
* A window with no detection costs ``A_FN``.
* A detection outside every window is a false positive. It costs
  ``A_FP × σ(y)`` (σ is negative there) with ``y = (i - end) / length``
  of the window before it, so a detection just after a window costs
  little and one far after costs nearly ``A_FP``; one before the first
  window costs ``A_FP`` in full.
* The first 15 % of each file is the *probationary period* (at most 750
  rows): detections there are not scored at all, and windows that end
  inside it are left out.

The raw scores of all files are summed, and the sum is normalized between
the *null* detector (never detects: every window missed, 0) and the
*perfect* detector (detects every window on its first row, no false
positives, 100). The weights ``A`` come from the profiles in
``config/profiles.json`` (standard, reward_low_FP_rate, reward_low_FN_rate),
and for each profile the threshold is the one that maximizes that
profile's normalized score over the corpus: the benchmark reports each
detector at its best threshold per profile. This module evaluates *every*
distinct score value as a threshold, so the optimum is exact.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

PROBATION_FRACTION = 0.15
PROBATION_MAX_ROWS = 750


@dataclass(frozen=True)
class Profile:
    """Weights of one NAB scoring profile."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


def load_profiles(path: Path) -> dict[str, Profile]:
    """The profiles of NAB's ``config/profiles.json``."""
    raw = json.loads(path.read_text())
    return {
        name: Profile(
            name=name,
            tp_weight=float(entry["CostMatrix"]["tpWeight"]),
            fp_weight=float(entry["CostMatrix"]["fpWeight"]),
            fn_weight=float(entry["CostMatrix"]["fnWeight"]),
        )
        for name, entry in raw.items()
    }


def sigma(y: FloatArray | float) -> FloatArray:
    """The scaled sigmoid, ``2 / (1 + e^{5y}) - 1``, in (-1, 1)."""
    # Clip the exponent: beyond |5y| = 50 the result is ±1 to double precision.
    exponent = np.clip(5.0 * np.asarray(y, dtype=np.float64), -50.0, 50.0)
    result: FloatArray = 2.0 / (1.0 + np.exp(exponent)) - 1.0
    return result


def probation_rows(length: int) -> int:
    """Rows of the probationary period of a file of ``length`` rows."""
    return min(math.floor(PROBATION_FRACTION * length), PROBATION_MAX_ROWS)


@dataclass
class FileScorer:
    """Everything about one file that does not depend on the detector.

    ``windows`` are inclusive row ranges. Built once per file, then asked
    for the score of any detections or of every threshold at once.
    """

    name: str
    length: int
    windows: list[tuple[int, int]]
    probation: int = -1
    #: rows outside every window (after probation) and their FP weight σ(y) ≤ 0
    fp_rows: npt.NDArray[np.int64] = field(init=False)
    fp_weights: FloatArray = field(init=False)
    #: per scored window: its rows (after probation) and their TP weights σ(y) > 0
    window_rows: list[npt.NDArray[np.int64]] = field(init=False)
    tp_weights: list[FloatArray] = field(init=False)

    def __post_init__(self) -> None:
        if self.probation < 0:
            self.probation = probation_rows(self.length)
        weights = np.full(self.length, -1.0)  # before any window: full cost
        inside = np.zeros(self.length, dtype=bool)
        self.window_rows, self.tp_weights = [], []
        ordered = sorted(self.windows)
        for number, (start, end) in enumerate(ordered):
            span = end - start + 1
            rows = np.arange(start, end + 1)
            inside[rows] = True
            until = ordered[number + 1][0] if number + 1 < len(ordered) else self.length
            after = np.arange(end + 1, until)
            weights[after] = sigma((after - end) / span)
            if end < self.probation:
                continue
            kept = rows[rows >= self.probation]
            self.window_rows.append(kept)
            self.tp_weights.append(sigma(-(end - kept + 1) / span))
        every = np.arange(self.length)
        outside = ~inside & (every >= self.probation)
        self.fp_rows = every[outside]
        self.fp_weights = weights[outside]

    # -- reference points --------------------------------------------------

    def null_score(self, profile: Profile) -> float:
        return -profile.fn_weight * len(self.window_rows)

    def perfect_score(self, profile: Profile) -> float:
        return profile.tp_weight * float(sum(w[0] for w in self.tp_weights))

    # -- scoring -----------------------------------------------------------

    def score(
        self, detections: npt.ArrayLike, profile: Profile
    ) -> tuple[float, Counts]:
        """Raw score and counts of a boolean detection per row."""
        flags = np.asarray(detections, dtype=bool)
        if flags.shape != (self.length,):
            raise ValueError(f"{self.name}: expected {self.length} detections")
        fp = flags[self.fp_rows]
        total = profile.fp_weight * float(self.fp_weights[fp].sum())
        counts = Counts(fp=int(fp.sum()))
        for rows, weights in zip(self.window_rows, self.tp_weights, strict=True):
            hits = np.flatnonzero(flags[rows])
            if hits.size:
                total += profile.tp_weight * float(weights[hits[0]])
                counts.tp += 1
            else:
                total -= profile.fn_weight
                counts.fn += 1
        return total, counts

    def sweep(
        self, scores: npt.ArrayLike, thresholds: FloatArray, profile: Profile
    ) -> FloatArray:
        """Raw score at every threshold of ``thresholds`` (ascending) at once.

        Detection is ``score >= threshold``. The false-positive part is a sum
        over the scores above the threshold (a suffix sum of sorted scores);
        a window's part depends on its first row whose score reaches the
        threshold, which is the first row where the running maximum does.
        """
        values = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
        if values.shape != (self.length,):
            raise ValueError(f"{self.name}: expected {self.length} scores")
        outside = values[self.fp_rows]
        order = np.argsort(outside, kind="stable")
        suffix = np.concatenate([np.cumsum(self.fp_weights[order][::-1])[::-1], [0.0]])
        total: FloatArray = (
            profile.fp_weight
            * suffix[np.searchsorted(outside[order], thresholds, side="left")]
        )
        for rows, weights in zip(self.window_rows, self.tp_weights, strict=True):
            running = np.maximum.accumulate(values[rows])
            first = np.searchsorted(running, thresholds, side="left")
            gains = np.concatenate([profile.tp_weight * weights, [-profile.fn_weight]])
            total += gains[first]
        return total


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0


@dataclass(frozen=True)
class ProfileResult:
    """A detector's result on one profile at its best threshold."""

    profile: str
    score: float
    threshold: float
    raw: float
    counts: Counts


def normalize(raw: float, null: float, perfect: float) -> float:
    """The 0–100 NAB score: 0 for the null detector, 100 for the perfect one."""
    return 100.0 * (raw - null) / (perfect - null)


def best_threshold(
    files: list[FileScorer], scores: list[FloatArray], profile: Profile
) -> ProfileResult:
    """Sweep every distinct score as a threshold; keep the best normalized score."""
    finite = [np.asarray(s, dtype=np.float64) for s in scores]
    pooled = np.unique(np.concatenate([s[np.isfinite(s)] for s in finite] or [[]]))
    # +inf stands for "never detect", so the null detector is a candidate.
    thresholds = np.concatenate([pooled, [np.inf]])
    totals = np.zeros(thresholds.size)
    for scorer, values in zip(files, finite, strict=True):
        totals += scorer.sweep(values, thresholds, profile)
    best = int(np.argmax(totals))
    threshold = float(thresholds[best])
    null = sum(f.null_score(profile) for f in files)
    perfect = sum(f.perfect_score(profile) for f in files)
    counts = Counts()
    for scorer, values in zip(files, finite, strict=True):
        detected = np.nan_to_num(values, nan=-np.inf) >= threshold
        _, file_counts = scorer.score(detected, profile)
        counts.tp += file_counts.tp
        counts.fp += file_counts.fp
        counts.fn += file_counts.fn
    raw = float(totals[best])
    return ProfileResult(
        profile.name, normalize(raw, null, perfect), threshold, raw, counts
    )


def rows_of_windows(
    timestamps: npt.NDArray[np.datetime64], windows: list[list[str]]
) -> list[tuple[int, int]]:
    """Inclusive row ranges of label windows given as ``[start, end]`` strings."""
    ranges = []
    for start_text, end_text in windows:
        start = np.datetime64(datetime.fromisoformat(start_text))
        end = np.datetime64(datetime.fromisoformat(end_text))
        first = int(np.searchsorted(timestamps, start, side="left"))
        last = int(np.searchsorted(timestamps, end, side="right")) - 1
        if first <= last:
            ranges.append((first, last))
    return ranges
