"""RobustZScore: median and MAD of the last ``window`` points."""

from __future__ import annotations

import pytest

from logweir.detectors import RobustZScore, RobustZScoreConfig

MINUTE_US = 60_000_000


def run(detector: RobustZScore, values: list[float]) -> list:
    return [detector.update(i * MINUTE_US, v) for i, v in enumerate(values)]


def test_median_and_mad_of_the_history() -> None:
    verdicts = run(
        RobustZScore(RobustZScoreConfig(window=5, min_history=3)),
        [10.0, 11.0, 9.0, 10.0, 50.0],
    )
    # history 10, 11, 9: median 10, MAD 1
    assert (verdicts[3].baseline, verdicts[3].spread, verdicts[3].score) == (
        10.0,
        pytest.approx(1.4826),
        0.0,
    )
    # history 10, 11, 9, 10: median 10, deviations 0, 1, 1, 0: MAD 0.5
    assert verdicts[4].spread == pytest.approx(1.4826 * 0.5)
    assert verdicts[4].score == pytest.approx(40 / (1.4826 * 0.5))
    assert verdicts[4].anomalous


def test_one_outlier_in_the_history_barely_moves_the_baseline() -> None:
    verdicts = run(
        RobustZScore(RobustZScoreConfig(window=6, min_history=5)),
        [10.0, 11.0, 500.0, 9.0, 10.0, 10.0],
    )
    assert verdicts[5].baseline == 10.0


def test_flat_history_falls_back_to_the_mean_absolute_deviation() -> None:
    verdicts = run(
        RobustZScore(RobustZScoreConfig(window=4, min_history=4)),
        [5.0, 5.0, 5.0, 6.0, 7.0],
    )
    # MAD of 5, 5, 5, 6 is 0; mean absolute deviation 0.25, times 1.2533
    assert verdicts[4].spread == pytest.approx(0.25 * 1.2533)
    assert verdicts[4].score == pytest.approx(2 / (0.25 * 1.2533))


def test_min_volume_guard() -> None:
    detector = RobustZScore(RobustZScoreConfig(window=4, min_history=3, min_volume=10))
    assert detector.update(0, 1.0, 3) is None
    assert detector.state()["learned"]["history"] == []


def test_batch_path_equals_streaming(paths_agree, noisy_series) -> None:
    ts_us, values, volumes = noisy_series
    paths_agree(
        lambda: RobustZScore(RobustZScoreConfig(window=40, min_volume=5)),
        ts_us,
        values,
        volumes,
    )


def test_restored_state_continues_exactly(restored_continues, noisy_series) -> None:
    ts_us, values, _ = noisy_series
    restored_continues(
        lambda: RobustZScore(RobustZScoreConfig(window=40)), ts_us, values
    )
