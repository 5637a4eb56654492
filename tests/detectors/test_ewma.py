"""EWMA: exponentially weighted mean and variance."""

from __future__ import annotations

import math

import pytest

from logweir.detectors import EWMA, EWMAConfig
from logweir.errors import ConfigError

MINUTE_US = 60_000_000


def run(detector: EWMA, values: list[float]) -> list:
    return [detector.update(i * MINUTE_US, v) for i, v in enumerate(values)]


def test_recursion_by_hand() -> None:
    verdicts = run(EWMA(EWMAConfig(alpha=0.5, min_history=2)), [10.0, 14.0, 12.0, 30.0])
    # after 10: mean 10, var 0; after 14: mean 12, var 0.5 * 0.5 * 16 = 4
    assert (verdicts[2].baseline, verdicts[2].spread, verdicts[2].score) == (
        12.0,
        2.0,
        0.0,
    )
    # after 12: mean 12, var 0.5 * 4 = 2
    assert verdicts[3].baseline == 12.0
    assert verdicts[3].spread == pytest.approx(math.sqrt(2))
    assert verdicts[3].score == pytest.approx(18 / math.sqrt(2))
    assert verdicts[3].anomalous


def test_min_spread_floors_a_flat_history() -> None:
    verdicts = run(
        EWMA(EWMAConfig(alpha=0.5, min_history=2, min_spread=2.0)), [5.0, 5.0, 5.0, 9.0]
    )
    assert verdicts[3].score == 2.0 and not verdicts[3].anomalous


def test_min_volume_guard_skips_the_point() -> None:
    detector = EWMA(EWMAConfig(alpha=0.5, min_history=2, min_volume=10))
    assert detector.update(0, 10.0, 50) is None
    assert detector.update(1, 99.0, 2) is None
    assert detector.state()["learned"] == {"count": 1, "mean": 10.0, "var": 0.0}


def test_batch_path_equals_streaming(paths_agree, noisy_series) -> None:
    ts_us, values, volumes = noisy_series
    paths_agree(
        lambda: EWMA(EWMAConfig(alpha=0.05, min_volume=5)), ts_us, values, volumes
    )


def test_restored_state_continues_exactly(restored_continues, noisy_series) -> None:
    ts_us, values, volumes = noisy_series
    restored_continues(lambda: EWMA(EWMAConfig(alpha=0.05)), ts_us, values, volumes)


def test_alpha_must_be_a_weight() -> None:
    with pytest.raises(
        ConfigError, match=r"^ewma.alpha: must be in \(0, 1\], got 1.5$"
    ):
        EWMA.from_config({"alpha": 1.5})
