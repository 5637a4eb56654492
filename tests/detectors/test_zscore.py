"""ZScore: mean and standard deviation of the last ``window`` points."""

from __future__ import annotations

import math

import numpy as np
import pytest

from logweir.detectors import ZScore, ZScoreConfig
from logweir.errors import ConfigError

MINUTE_US = 60_000_000


def run(
    detector: ZScore, values: list[float], volumes: list[float] | None = None
) -> list:
    return [
        detector.update(i * MINUTE_US, v, None if volumes is None else volumes[i])
        for i, v in enumerate(values)
    ]


def test_scores_against_the_history_before_the_point() -> None:
    detector = ZScore(ZScoreConfig(window=4, min_history=3, threshold=4.0))
    verdicts = run(detector, [10.0, 12.0, 14.0, 12.0, 30.0])
    assert verdicts[:3] == [None, None, None]
    # history 10, 12, 14: mean 12, population std sqrt(8/3)
    assert verdicts[3].baseline == 12.0
    assert verdicts[3].spread == pytest.approx(math.sqrt(8 / 3))
    assert verdicts[3].score == 0.0
    # history 12, 14, 12 and 10 (window 4): mean 12, std sqrt(2); 18 / sqrt(2)
    assert verdicts[4].score == pytest.approx(9 * math.sqrt(2))
    assert verdicts[4].anomalous


def test_direction_up_ignores_drops() -> None:
    detector = ZScore(ZScoreConfig(window=4, min_history=3, direction="up"))
    verdicts = run(detector, [10.0, 12.0, 14.0, 12.0, -30.0])
    assert verdicts[4].score < -4 and not verdicts[4].anomalous


def test_min_volume_point_is_neither_scored_nor_learned() -> None:
    config = ZScoreConfig(window=4, min_history=3, min_volume=5)
    guarded = run(ZScore(config), [10, 12, 14, 1000, 12], [9, 9, 9, 1, 9])
    assert guarded[3] is None
    # The 1000 was not learned: the last point sees 10, 12, 14 only.
    assert guarded[4].baseline == 12.0 and guarded[4].score == 0.0


def test_min_change_keeps_small_moves_quiet() -> None:
    # One request becoming two is 40 standard deviations of a flat history,
    # but a change of one request.
    config = ZScoreConfig(window=5, min_history=3, min_change=5.0)
    verdicts = run(ZScore(config), [1.0, 1.0, 1.0, 1.0, 2.0])
    assert verdicts[4].score > 1e6 and not verdicts[4].anomalous
    loud = run(ZScore(config), [100.0, 100.0, 100.0, 100.0, 200.0])
    assert loud[4].anomalous


def test_batch_path_equals_streaming(paths_agree, noisy_series) -> None:
    ts_us, values, volumes = noisy_series
    paths_agree(
        lambda: ZScore(ZScoreConfig(window=50, min_history=10, min_volume=5)),
        ts_us,
        values,
        volumes,
    )


def test_restored_state_continues_exactly(restored_continues, noisy_series) -> None:
    ts_us, values, volumes = noisy_series
    restored_continues(
        lambda: ZScore(ZScoreConfig(window=50, min_volume=5)), ts_us, values, volumes
    )


def test_nan_values_are_skipped() -> None:
    detector = ZScore(ZScoreConfig(window=3, min_history=2))
    verdicts = run(detector, [1.0, float("nan"), 2.0, 3.0])
    assert verdicts[1] is None and verdicts[3].baseline == 1.5
    batch = ZScore(ZScoreConfig(window=3, min_history=2)).detect(
        np.arange(4) * MINUTE_US, [1.0, np.nan, 2.0, 3.0]
    )
    assert batch.baseline[3] == 1.5 and np.isnan(batch.score[1])


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"window": 1}, "zscore.window: must be >= 2, got 1"),
        (
            {"min_history": 80},
            "zscore.min_history: must be between 2 and window (60), got 80",
        ),
        ({"threshold": 0}, "zscore.threshold: must be > 0, got 0.0"),
        (
            {"direction": "sideways"},
            "zscore.direction: expected one of 'up', 'down', 'both'",
        ),
        (
            {"windw": 5},
            "zscore.windw: unknown key (known keys: direction, min_change, ",
        ),
        ({"window": "60"}, "zscore.window: expected an integer, got '60'"),
    ],
)
def test_bad_settings_name_the_key(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ZScore.from_config(settings)
    assert str(caught.value).startswith(message)


def test_decreasing_timestamps_are_refused_in_batch() -> None:
    with pytest.raises(ValueError, match="timestamps must not decrease"):
        ZScore().detect([2, 1], [1.0, 2.0])
