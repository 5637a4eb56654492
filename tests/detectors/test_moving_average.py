"""MovingAverage: relative deviation from the mean of the last points."""

from __future__ import annotations

import pytest

from logweir.detectors import MovingAverage, MovingAverageConfig

MINUTE_US = 60_000_000


def run(detector: MovingAverage, values: list[float]) -> list:
    return [detector.update(i * MINUTE_US, v) for i, v in enumerate(values)]


def test_score_is_the_relative_change_from_the_average() -> None:
    verdicts = run(
        MovingAverage(MovingAverageConfig(window=3, min_history=2)),
        [10.0, 20.0, 45.0, 25.0],
    )
    assert verdicts[:2] == [None, None]
    assert (verdicts[2].baseline, verdicts[2].score, verdicts[2].anomalous) == (
        15.0,
        2.0,
        True,
    )
    # history 10, 20, 45: mean 25
    assert (verdicts[3].baseline, verdicts[3].score, verdicts[3].anomalous) == (
        25.0,
        0.0,
        False,
    )


def test_min_base_keeps_a_near_zero_average_from_exploding() -> None:
    verdicts = run(
        MovingAverage(MovingAverageConfig(window=3, min_history=2, min_base=1.0)),
        [0.0, 0.0, 3.0],
    )
    assert verdicts[2].score == 3.0


def test_one_request_becoming_two_is_not_a_spike_with_min_change() -> None:
    config = MovingAverageConfig(window=3, min_history=2, min_change=10.0)
    assert not run(MovingAverage(config), [1.0, 1.0, 2.0])[2].anomalous
    assert run(MovingAverage(config), [100.0, 100.0, 250.0])[2].anomalous


def test_spread_is_reported_but_not_scored() -> None:
    verdict = run(
        MovingAverage(MovingAverageConfig(window=2, min_history=2)), [10.0, 20.0, 15.0]
    )[2]
    assert verdict.spread == pytest.approx(5.0) and verdict.score == 0.0


def test_batch_path_equals_streaming(paths_agree, noisy_series) -> None:
    ts_us, values, volumes = noisy_series
    paths_agree(
        lambda: MovingAverage(MovingAverageConfig(window=30, min_volume=3)),
        ts_us,
        values,
        volumes,
    )


def test_restored_state_continues_exactly(restored_continues, noisy_series) -> None:
    ts_us, values, _ = noisy_series
    restored_continues(
        lambda: MovingAverage(MovingAverageConfig(window=30)), ts_us, values
    )
