"""Synthetic events and a slow, obvious reference for the window tests."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import polars as pl

from logweir.schema import conform_events

EPOCH_2024 = 1_704_067_200  # 2024-01-01T00:00:00Z


def make_events(
    n: int,
    *,
    seed: int = 7,
    span_s: int = 900,
    paths: int = 40,
    clients: int = 60,
    start_s: int = EPOCH_2024,
) -> pl.DataFrame:
    """``n`` events over ``span_s`` seconds, shuffled in time.

    Zipf-ish paths and clients, a status mix with every class, a few null
    and zero durations, two hosts and three methods.
    """
    rng = np.random.default_rng(seed)
    ts_us = (start_s * 1_000_000 + rng.integers(0, span_s * 1_000_000, n)).astype(
        np.int64
    )
    statuses = rng.choice(
        [101, 200, 200, 200, 204, 301, 304, 404, 403, 500, 503, 0], n
    ).astype(np.uint16)
    durations = np.round(rng.lognormal(3.0, 1.2, n), 3)
    durations[rng.random(n) < 0.03] = 0.0
    duration_list: list[float | None] = durations.tolist()
    for index in np.flatnonzero(rng.random(n) < 0.05):
        duration_list[index] = None
    byte_values: list[int | None] = rng.integers(0, 50_000, n).tolist()
    for index in np.flatnonzero(rng.random(n) < 0.05):
        byte_values[index] = None
    path_ids = (rng.zipf(1.4, n) - 1) % paths
    client_ids = (rng.zipf(1.3, n) - 1) % clients
    frame = pl.DataFrame(
        {
            "ts": pl.Series(ts_us).cast(pl.Datetime("us", "UTC")),
            "client_ip": [f"10.0.{c // 250}.{c % 250}" for c in client_ids],
            "method": rng.choice(["GET", "GET", "GET", "POST", "HEAD"], n).tolist(),
            "path": [f"/p/{p}" for p in path_ids],
            "status": statuses,
            "bytes": pl.Series(byte_values, dtype=pl.UInt64),
            "user_agent": rng.choice(["curl/8", "Mozilla/5.0", "bot/1"], n).tolist(),
            "host": rng.choice(["a.example", "b.example"], n).tolist(),
            "duration_ms": pl.Series(duration_list, dtype=pl.Float64),
            "source": "test.log",
            "offset": pl.Series(np.arange(n) * 100, dtype=pl.UInt64),
        }
    )
    return conform_events(frame)


@dataclass
class RefGroup:
    """What the reference keeps for one (window, dimension, key)."""

    requests: int = 0
    bytes: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    durations: list[float] = field(default_factory=list)
    clients: set[str] = field(default_factory=set)
    items: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))


def status_class(status: int | None) -> str | None:
    if status is None or not 100 <= status < 600:
        return None
    return f"{status // 100}xx"


def reference(
    frame: pl.DataFrame, specs: list[tuple[int, int]], dimensions: list[str]
) -> dict[tuple[int, int, datetime, str, str], RefGroup]:
    """Every window row computed event by event, the slow obvious way."""
    groups: dict[tuple[int, int, datetime, str, str], RefGroup] = defaultdict(RefGroup)
    for event in frame.iter_rows(named=True):
        if event["ts"] is None:
            continue
        seconds = event["ts"].timestamp()
        keys = [("all", "")]
        for name in dimensions:
            value = (
                status_class(event["status"]) if name == "status_class" else event[name]
            )
            if value is not None:
                keys.append((name, value))
        for size, step in specs:
            start = math.floor(seconds / step) * step
            while start > seconds - size:
                begin = datetime.fromtimestamp(start, UTC)
                for dimension, key in keys:
                    _add(groups[(size, step, begin, dimension, key)], event)
                start -= step
    return groups


def _add(group: RefGroup, event: dict[str, object]) -> None:
    group.requests += 1
    group.bytes += int(event["bytes"] or 0)  # type: ignore[call-overload]
    klass = status_class(event["status"])  # type: ignore[arg-type]
    if klass:
        group.statuses[int(klass[0])] += 1
    duration = event["duration_ms"]
    if duration is not None:
        group.durations.append(float(duration))  # type: ignore[arg-type]
    if event["client_ip"] is not None:
        group.clients.add(str(event["client_ip"]))
    for column in ("path", "client_ip", "user_agent"):
        if event[column] is not None:
            group.items[column][str(event[column])] += 1


def nearest_rank(values: list[float], parts: int) -> float:
    """The ``ceil(q * n)``-th smallest value, q = parts / 10000."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * parts // 10000))
    return ordered[rank - 1]
