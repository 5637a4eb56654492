"""Ensemble: record ratios of level, change, log level and shape novelty."""

from __future__ import annotations

import math

import numpy as np
import pytest

from logweir.detectors import Ensemble, EnsembleConfig
from logweir.detectors.ensemble import (
    _Cooldown,
    _Record,
    _shape_distance,
    _shape_distances,
    _WinsorizedZ,
    likelihood,
)
from logweir.errors import ConfigError

SMALL = EnsembleConfig(
    window=100,
    min_history=20,
    shape_history=60,
    record_window=100,
    warmup=50,
    cooldown=10,
)


def test_record_ratio_by_hand() -> None:
    record = _Record(window=3, clip=1.5, warmup=1)
    ratios = [record.step(m) for m in (2.0, 3.0, 10.0, 4.0)]
    # warm-up; 3 over 2; 10 over 3 (learned as 1.5 x 3 = 4.5); 4 over 4.5
    assert ratios == [0.0, 1.5, 10 / 3, pytest.approx(4 / 4.5)]


def test_record_forgets_after_its_window() -> None:
    record = _Record(window=2, clip=10.0, warmup=0)
    ratios = [record.step(m) for m in (8.0, 1.0, 1.0, 2.0)]
    assert ratios[3] == 2.0  # the 8 is more than 2 steps back


def test_cooldown_keeps_only_new_highs() -> None:
    cooldown = _Cooldown(length=2)
    steps = (1.0, 3.0, 2.0, 2.5, 1.0, 0.5, 1.5)
    # 1.5 beats the last two scores (1.0 and 0.5); 2.5 did not beat 3.0
    assert [cooldown.step(s) for s in steps] == [1.0, 3.0, 0.0, 0.0, 0.0, 0.0, 1.5]


def test_winsorized_z_learns_clipped_values() -> None:
    part = _WinsorizedZ(window=10, clip=2.0, min_history=2)
    assert part.step(10.0) == 0.0 and part.step(12.0) == 0.0
    # mean 11, std 1: 111 is 100 sigmas, learned as 11 + 2 = 13
    assert part.step(111.0) == pytest.approx(100.0)
    assert list(part.values) == [10.0, 12.0, 13.0]


def test_shape_distance_finds_the_nearest_earlier_stretch() -> None:
    buffer = np.array([1.0, 2.0, 9.0, 9.0, 1.0, 2.5])
    # query (1, 2.5); candidates ending before it: (1, 2), (2, 9), (9, 9)
    assert _shape_distance(buffer, 2) == pytest.approx(0.5)
    assert _shape_distances(buffer, 2, history=10)[5] == pytest.approx(0.5)


def test_warmup_then_a_spike_is_a_record_then_cooldown() -> None:
    rng = np.random.default_rng(5)
    values = 50 + rng.normal(0, 1, 200)
    values[120] = 90.0
    values[125] = 90.0
    scores = Ensemble(SMALL).detect(np.arange(200), values)
    assert np.isnan(scores.score[:50]).all()
    assert scores.score[120] > 2 and scores.anomalous[120]
    assert scores.score[125] == 0.0  # within the cooldown, not a new high
    assert np.flatnonzero(scores.anomalous[100:]).tolist() == [20]


def test_batch_path_equals_streaming(paths_agree, noisy_series) -> None:
    ts_us, values, volumes = noisy_series
    paths_agree(
        lambda: Ensemble(EnsembleConfig(**{**SMALL.__dict__, "min_volume": 3})),
        ts_us,
        values,
        volumes,
    )


def test_restored_state_continues_exactly(restored_continues, noisy_series) -> None:
    ts_us, values, volumes = noisy_series
    restored_continues(lambda: Ensemble(SMALL), ts_us, values, volumes)


def test_likelihood_is_in_zero_one_and_keeps_order() -> None:
    assert likelihood([0.0, 1.0, 3.0, math.nan]).tolist() == [0.0, 0.5, 0.75, 0.0]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"weights": [1.0]},
            "ensemble.weights: needs one weight per component, got (1.0,)",
        ),
        ({"components": ["level", "tea"]}, "ensemble.components: must be among"),
        ({"record_clip": 0.5}, "ensemble.record_clip: must be >= 1, got 0.5"),
    ],
)
def test_bad_settings(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Ensemble.from_config(settings)
    assert str(caught.value).startswith(message)
