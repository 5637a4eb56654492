"""Checks every detector's tests share: the two paths agree, state restores."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest

from logweir.detectors.base import Detector, Score
from logweir.schema import WINDOW_SCHEMA

Make = Callable[[], Detector[Any]]


def stream(
    detector: Detector[Any],
    ts_us: np.ndarray,
    values: np.ndarray,
    volumes: np.ndarray | None = None,
) -> list[Score | None]:
    """``update`` over every point, in order."""
    verdicts = []
    for i in range(values.size):
        volume = None if volumes is None else float(volumes[i])
        verdicts.append(detector.update(int(ts_us[i]), float(values[i]), volume))
    return verdicts


def _check_paths_agree(
    make: Make, ts_us: np.ndarray, values: np.ndarray, volumes: np.ndarray | None = None
) -> None:
    streamed = stream(make(), ts_us, values, volumes)
    batch = make().detect(ts_us, values, volumes)
    assert batch.scored.sum() > 0, "the series should get some scores"
    for i, verdict in enumerate(streamed):
        expected = batch.at(i, int(ts_us[i]), float(values[i]))
        if verdict is None or expected is None:
            assert verdict is None and expected is None, f"point {i}"
            continue
        assert verdict.score == pytest.approx(expected.score, rel=1e-9, abs=1e-9), i
        assert verdict.baseline == pytest.approx(
            expected.baseline, rel=1e-9, abs=1e-9
        ), i
        assert verdict.spread == pytest.approx(expected.spread, rel=1e-9, abs=1e-9), i
        assert verdict.anomalous == expected.anomalous, f"point {i}"


def _check_restored_continues(
    make: Make, ts_us: np.ndarray, values: np.ndarray, volumes: np.ndarray | None = None
) -> None:
    half = values.size // 2
    uninterrupted = stream(make(), ts_us, values, volumes)
    first = make()
    stream(
        first, ts_us[:half], values[:half], None if volumes is None else volumes[:half]
    )
    saved = json.loads(json.dumps(first.state()))  # must survive JSON
    restored = type(first).from_state(saved)
    rest = stream(
        restored,
        ts_us[half:],
        values[half:],
        None if volumes is None else volumes[half:],
    )
    assert rest == uninterrupted[half:]


@pytest.fixture
def paths_agree() -> Callable[..., None]:
    """Assert that ``update`` point by point gives what ``detect`` gives."""
    return _check_paths_agree


@pytest.fixture
def restored_continues() -> Callable[..., None]:
    """Assert that save at half-way, restore, continue == never stopping."""
    return _check_restored_continues


@pytest.fixture
def noisy_series() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A seeded daily-seasonal series with spikes and volumes (5-minute steps)."""
    rng = np.random.default_rng(11)
    count = 2 * 288 + 200
    ts_us = np.arange(count, dtype=np.int64) * 300_000_000
    values = (
        100 + 30 * np.sin(np.arange(count) / 288 * 2 * np.pi) + rng.normal(0, 3, count)
    )
    values[[400, 650, 700]] += [80.0, -60.0, 120.0]
    volumes = rng.integers(0, 40, count).astype(float)
    return ts_us, values, volumes


def _window_frame(rows: list[dict[str, Any]], size_s: int = 60) -> pl.DataFrame:
    """Window rows (WINDOW_SCHEMA) from short dicts.

    Each dict needs ``start`` (an aware datetime) and may give ``dimension``
    (default ``"all"``), ``key``, the counts, ``p95`` and ``top_*`` lists of
    ``(key, count)`` pairs.
    """
    full = []
    for row in rows:
        start = row["start"]
        requests = row.get("requests", 0)
        full.append(
            {
                "window_size_s": size_s,
                "window_step_s": row.get("step_s", size_s),
                "window_start": start,
                "window_end": start + timedelta(seconds=size_s),
                "dimension": row.get("dimension", "all"),
                "key": row.get("key", ""),
                "requests": requests,
                "bytes": row.get("bytes", requests * 1000),
                "status_1xx": 0,
                "status_2xx": requests
                - row.get("status_4xx", 0)
                - row.get("status_5xx", 0),
                "status_3xx": 0,
                "status_4xx": row.get("status_4xx", 0),
                "status_5xx": row.get("status_5xx", 0),
                "error_rate": None,
                "duration_p50_ms": None,
                "duration_p95_ms": row.get("p95"),
                "duration_p99_ms": None,
                "unique_clients": row.get("unique_clients"),
                "top_paths": None,
                "top_clients": _top(row.get("top_clients")),
                "top_user_agents": _top(row.get("top_user_agents")),
            }
        )
    return pl.DataFrame(full, schema=WINDOW_SCHEMA)


def _top(pairs: list[tuple[str, int]] | None) -> str | None:
    if pairs is None:
        return None
    return json.dumps([{"key": key, "count": count} for key, count in pairs])


@pytest.fixture
def window_frame() -> Callable[..., pl.DataFrame]:
    """Build window rows from short dicts (see ``_window_frame``)."""
    return _window_frame
