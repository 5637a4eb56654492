"""NAB scoring (benchmarks/nab/scoring.py) on cases worked out by hand."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "nab" / "scoring.py"
_SPEC = importlib.util.spec_from_file_location("nab_scoring", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
scoring = importlib.util.module_from_spec(_SPEC)
sys.modules["nab_scoring"] = scoring
_SPEC.loader.exec_module(scoring)

STANDARD = scoring.Profile("standard", tp_weight=1.0, fp_weight=0.11, fn_weight=1.0)
LOW_FN = scoring.Profile(
    "reward_low_FN_rate", tp_weight=1.0, fp_weight=0.11, fn_weight=2.0
)


def sigma(y: float) -> float:
    return 2 / (1 + math.exp(5 * y)) - 1


def one_window_file() -> object:
    # 100 rows: probation 15 rows; one window, rows 50..59 (10 rows)
    return scoring.FileScorer("f.csv", 100, [(50, 59)])


def test_probation_is_fifteen_percent_capped_at_750_rows() -> None:
    assert scoring.probation_rows(100) == 15
    assert scoring.probation_rows(4032) == 604
    assert scoring.probation_rows(15902) == 750


def test_sigmoid_rewards_early_detection() -> None:
    assert scoring.sigma(-1.0) == pytest.approx(0.986614, abs=1e-6)
    assert scoring.sigma(0.0) == 0.0
    assert scoring.sigma(1.0) == pytest.approx(-0.986614, abs=1e-6)


def test_first_detection_in_window_and_false_positives() -> None:
    detections = np.zeros(100, dtype=bool)
    detections[[5, 20, 50, 55, 70]] = True
    raw, counts = one_window_file().score(detections, STANDARD)
    # row 5: probation, ignored; row 20: before any window, -A_FP;
    # row 50: first row of the window, y = -1; row 55: later in the same
    # window, ignored; row 70: 11 rows after the window end, y = 1.1
    expected = sigma(-1.0) - 0.11 + 0.11 * sigma(1.1)
    assert raw == pytest.approx(expected)
    assert (counts.tp, counts.fp, counts.fn) == (1, 2, 0)


def test_missed_window_costs_the_fn_weight() -> None:
    nothing = np.zeros(100, dtype=bool)
    assert one_window_file().score(nothing, STANDARD)[0] == -1.0
    assert one_window_file().score(nothing, LOW_FN)[0] == -2.0


def test_late_detection_earns_little() -> None:
    detections = np.zeros(100, dtype=bool)
    detections[59] = True  # the window's last row: y = -1/10
    assert one_window_file().score(detections, STANDARD)[0] == pytest.approx(
        sigma(-0.1)
    )


def test_sweep_equals_scoring_each_threshold() -> None:
    rng = np.random.default_rng(3)
    scores = rng.random(100)
    thresholds = np.array([0.0, 0.5, 0.9, 0.99, np.inf])
    file = one_window_file()
    swept = file.sweep(scores, thresholds, STANDARD)
    for threshold, value in zip(thresholds, swept, strict=True):
        assert value == pytest.approx(file.score(scores >= threshold, STANDARD)[0])


def corpus() -> list:
    return [
        scoring.FileScorer("a.csv", 200, [(60, 79), (150, 169)]),
        scoring.FileScorer("b.csv", 100, [(40, 49)]),
        scoring.FileScorer("quiet.csv", 100, []),
    ]


@pytest.mark.parametrize("profile", [STANDARD, LOW_FN])
def test_null_detector_scores_zero(profile) -> None:
    files = corpus()
    result = scoring.best_threshold(files, [np.zeros(f.length) for f in files], profile)
    # with all scores equal, the best threshold is "never detect"
    assert result.score == 0.0 and result.threshold == math.inf


@pytest.mark.parametrize("profile", [STANDARD, LOW_FN])
def test_perfect_detector_scores_hundred(profile) -> None:
    files = corpus()
    scores = []
    for f in files:
        s = np.zeros(f.length)
        for rows in f.window_rows:
            s[rows[0]] = 1.0
        scores.append(s)
    result = scoring.best_threshold(files, scores, profile)
    assert result.score == pytest.approx(100.0)
    assert (result.counts.tp, result.counts.fp, result.counts.fn) == (3, 0, 0)


def test_threshold_is_chosen_to_maximize_the_score() -> None:
    files = corpus()
    scores = [np.zeros(f.length) for f in files]
    scores[0][65] = 0.8  # a hit in a.csv's first window
    scores[2][[30, 40, 50]] = 0.9  # three false positives in quiet.csv
    result = scoring.best_threshold(files, scores, STANDARD)
    # detecting at 0.8 also takes the three 0.9 false positives: worth it
    assert result.threshold == 0.8
    assert (result.counts.tp, result.counts.fp, result.counts.fn) == (1, 3, 2)


def test_windows_are_read_as_row_ranges() -> None:
    stamps = np.array(
        ["2014-01-01T00:00", "2014-01-01T00:05", "2014-01-01T00:10"],
        dtype="datetime64[us]",
    )
    windows = [["2014-01-01 00:04:00.000000", "2014-01-01 00:10:00.000000"]]
    assert scoring.rows_of_windows(stamps, windows) == [(1, 2)]
