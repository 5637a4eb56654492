"""SeasonalBaseline: the same time of day (or week) in earlier periods."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from logweir.detectors import SeasonalBaseline, SeasonalConfig
from logweir.errors import ConfigError

HOUR_US = 3_600_000_000
#: A Monday, 00:00 UTC.
MONDAY_US = int(datetime(2024, 6, 3, tzinfo=UTC).timestamp()) * 1_000_000


def hourly(days: int) -> np.ndarray:
    return MONDAY_US + np.arange(days * 24, dtype=np.int64) * HOUR_US


def test_same_hour_on_earlier_days() -> None:
    config = SeasonalConfig(
        period="day", bucket_s=3600, seasons=2, neighbours=0, min_relative_spread=0.0
    )
    ts_us = hourly(3)
    values = np.full(ts_us.size, 50.0)
    values[[9, 33, 57]] = [100.0, 110.0, 300.0]  # 09:00 on days 0, 1 and 2
    detector = SeasonalBaseline(config)
    verdicts = [
        detector.update(int(t), float(v)) for t, v in zip(ts_us, values, strict=True)
    ]
    assert all(v is None for v in verdicts[:48])  # one earlier day is not enough
    nine = verdicts[57]
    # samples 110 and 100: median 105, MAD 5
    assert (nine.baseline, nine.spread) == (105.0, pytest.approx(1.4826 * 5))
    assert nine.score == pytest.approx(195 / (1.4826 * 5)) and nine.anomalous
    assert verdicts[58].baseline == 50.0 and not verdicts[58].anomalous


def test_auto_uses_the_same_weekday_once_two_weeks_exist() -> None:
    ts_us = hourly(15)
    weekday = (np.arange(ts_us.size) // 24) % 7
    values = np.where(weekday == 0, 100.0, 10.0) + (np.arange(ts_us.size) % 3)
    monday = slice(14 * 24, 15 * 24)  # the third Monday
    weekly = SeasonalBaseline(SeasonalConfig(period="auto", bucket_s=3600)).detect(
        ts_us, values
    )
    assert not weekly.anomalous[monday].any()
    assert weekly.baseline[14 * 24] == 100.0
    daily = SeasonalBaseline(SeasonalConfig(period="day", bucket_s=3600)).detect(
        ts_us, values
    )
    assert daily.anomalous[monday].all()


def test_min_volume_guard() -> None:
    detector = SeasonalBaseline(SeasonalConfig(bucket_s=3600, min_volume=10))
    assert detector.update(MONDAY_US, 5.0, volume=2) is None
    assert detector.state()["learned"]["buckets"] == []


def test_batch_path_equals_streaming(paths_agree, noisy_series) -> None:
    ts_us, values, volumes = noisy_series
    paths_agree(
        lambda: SeasonalBaseline(SeasonalConfig(bucket_s=300, min_volume=5, seasons=2)),
        ts_us,
        values,
        volumes,
    )


def test_restored_state_continues_exactly(restored_continues, noisy_series) -> None:
    ts_us, values, _ = noisy_series
    restored_continues(
        lambda: SeasonalBaseline(SeasonalConfig(bucket_s=300, seasons=2)), ts_us, values
    )


def test_bucket_must_divide_a_day() -> None:
    with pytest.raises(ConfigError, match=r"^seasonal.bucket_s: must divide a day"):
        SeasonalBaseline.from_config({"bucket_s": 7})
