"""StaticThreshold: fixed upper and lower bounds."""

from __future__ import annotations

import numpy as np
import pytest

from logweir.detectors import StaticConfig, StaticThreshold
from logweir.errors import ConfigError


def test_bounds_crossed_scores_and_baselines() -> None:
    detector = StaticThreshold(StaticConfig(upper=10.0, lower=2.0))
    verdicts = [detector.update(i, v) for i, v in enumerate([5.0, 12.0, 1.0, 10.0])]
    assert [v.score for v in verdicts] == [0.0, 2.0, -1.0, 0.0]
    assert [v.anomalous for v in verdicts] == [False, True, True, False]
    # the crossed bound, or the nearer one while inside
    assert [v.baseline for v in verdicts] == [2.0, 10.0, 2.0, 10.0]


def test_upper_only() -> None:
    scores = StaticThreshold(StaticConfig(upper=100.0)).detect([0, 1], [-1e9, 101.0])
    assert scores.anomalous.tolist() == [False, True]
    assert scores.baseline.tolist() == [100.0, 100.0]


def test_min_volume_and_min_change_guards() -> None:
    config = StaticConfig(upper=0.05, min_volume=20, min_change=0.01)
    detector = StaticThreshold(config)
    assert detector.update(0, 1.0, volume=1) is None  # 1 error of 1 request
    assert not detector.update(1, 0.055, volume=100).anomalous  # just over the bound
    assert detector.update(2, 0.2, volume=100).anomalous


def test_batch_path_equals_streaming(paths_agree, noisy_series) -> None:
    ts_us, values, volumes = noisy_series
    paths_agree(
        lambda: StaticThreshold(StaticConfig(upper=130.0, lower=70.0, min_volume=5)),
        ts_us,
        values,
        volumes,
    )


def test_restored_state_continues_exactly(restored_continues, noisy_series) -> None:
    ts_us, values, _ = noisy_series
    restored_continues(
        lambda: StaticThreshold(StaticConfig(upper=130.0)), ts_us, values
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "static.upper: give upper, lower or both, got None"),
        ({"upper": 1, "lower": 2}, "static.lower: must be below upper, got 2.0"),
        ({"upper": "high"}, "static.upper: expected a number, got 'high'"),
    ],
)
def test_bad_bounds(settings: dict, message: str) -> None:
    with pytest.raises(
        ConfigError, match=f"^{message}$".replace("(", r"\(").replace(")", r"\)")
    ):
        StaticThreshold.from_config(settings)


def test_nan_values_are_not_scored() -> None:
    scores = StaticThreshold(StaticConfig(upper=1.0)).detect([0, 1], [np.nan, 2.0])
    assert np.isnan(scores.score[0]) and scores.anomalous.tolist() == [False, True]
