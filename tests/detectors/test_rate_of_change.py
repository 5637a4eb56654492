"""RateOfChange: log2 ratio (or difference) against the point ``lag`` before."""

from __future__ import annotations

import math

import pytest

from logweir.detectors import RateOfChange, RateOfChangeConfig

MINUTE_US = 60_000_000


def run(detector: RateOfChange, values: list[float]) -> list:
    return [detector.update(i * MINUTE_US, v) for i, v in enumerate(values)]


def test_ratio_mode_is_symmetric_in_log2() -> None:
    verdicts = run(RateOfChange(RateOfChangeConfig(offset=1.0)), [10.0, 21.0, 10.0])
    assert verdicts[0] is None
    assert verdicts[1].baseline == 10.0
    assert verdicts[1].score == pytest.approx(math.log2(22 / 11))  # doubling: +1
    assert verdicts[2].score == pytest.approx(-1.0)  # halving: -1
    assert verdicts[1].anomalous and verdicts[2].anomalous


def test_difference_mode_and_lag() -> None:
    config = RateOfChangeConfig(mode="difference", lag=2, threshold=10.0)
    verdicts = run(RateOfChange(config), [10.0, 20.0, 5.0, 50.0])
    assert verdicts[2].baseline == 10.0 and verdicts[2].score == -5.0
    assert (verdicts[3].score, verdicts[3].anomalous) == (30.0, True)


def test_one_request_becoming_two_is_not_a_hundred_percent_spike() -> None:
    config = RateOfChangeConfig(threshold=0.5, min_change=5.0)
    assert not run(RateOfChange(config), [1.0, 2.0])[1].anomalous
    assert run(RateOfChange(config), [100.0, 200.0])[1].anomalous


def test_values_below_minus_offset_are_not_scored() -> None:
    verdicts = run(RateOfChange(RateOfChangeConfig(offset=1.0)), [5.0, -3.0, 5.0])
    assert verdicts[1] is None and verdicts[2] is None


def test_batch_path_equals_streaming(paths_agree, noisy_series) -> None:
    ts_us, values, volumes = noisy_series
    paths_agree(
        lambda: RateOfChange(RateOfChangeConfig(lag=3, threshold=0.3, min_volume=4)),
        ts_us,
        values,
        volumes,
    )


def test_restored_state_continues_exactly(restored_continues, noisy_series) -> None:
    ts_us, values, volumes = noisy_series
    restored_continues(
        lambda: RateOfChange(RateOfChangeConfig(lag=3)), ts_us, values, volumes
    )
