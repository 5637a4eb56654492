"""What the API, the dashboard and the HTML report read from the store.

Every function takes an open cursor (:meth:`StoreReader.cursor`) and runs
a few small SQL queries over the ``windows`` and ``alerts`` tables; none
reads the lake, so a dashboard refresh costs milliseconds however large
the lake grows.

Top lists over a time range are the sums of each window's own top list
(the ``top_*`` columns hold the ``top_n`` heaviest keys of a window). A key
that is heavy over the range but never among a window's heaviest is
missing, and a key's count misses the windows where it was not listed, so
these are lower bounds; the HTML report of a batch run takes its top
tables from the lake instead, which is exact.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import duckdb
import orjson
import polars as pl

from logweir.pipeline.query import frame_of
from logweir.schema import WINDOW_SCHEMA
from logweir.sinks.alerts import ALERT_COLUMNS

TopKind = Literal["paths", "clients", "user_agents"]
TOP_COLUMNS: dict[str, str] = {
    "paths": "top_paths",
    "clients": "top_clients",
    "user_agents": "top_user_agents",
}

#: Columns of the per-window series the charts draw.
SERIES_COLUMNS = (
    "window_start, window_end, requests, bytes, status_1xx, status_2xx, "
    "status_3xx, status_4xx, status_5xx, error_rate, duration_p50_ms, "
    "duration_p95_ms, duration_p99_ms, unique_clients, top_paths, top_clients"
)


def frame(
    cursor: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None
) -> pl.DataFrame:
    """A query's rows as a Polars frame (Polars converts zoned timestamps)."""
    return frame_of(cursor.sql(sql, params=params or []))


def has_table(cursor: duckdb.DuckDBPyConnection, name: str) -> bool:
    rows = cursor.execute(
        "SELECT 1 FROM information_schema.tables WHERE table_name = ? "
        "AND table_schema IN ('main', 'temp')",
        [name],
    ).fetchall()
    return bool(rows)


@dataclass(frozen=True)
class SizeInfo:
    """One window size (and step) the store holds, and its dimensions."""

    size_s: int
    step_s: int
    dimensions: list[str]
    first_start: datetime | None
    last_end: datetime | None
    windows: int


def window_sizes(cursor: duckdb.DuckDBPyConnection) -> list[SizeInfo]:
    """Every ``(size, step)`` in the store, smallest first."""
    rows = frame(
        cursor,
        "SELECT window_size_s, window_step_s, list(DISTINCT dimension ORDER BY "
        "dimension) AS dimensions, min(window_start) AS first_start, "
        "max(window_end) AS last_end, count(DISTINCT window_start) AS windows "
        "FROM windows GROUP BY ALL ORDER BY window_size_s, window_step_s",
    )
    return [
        SizeInfo(
            size_s=int(row["window_size_s"]),
            step_s=int(row["window_step_s"]),
            dimensions=list(row["dimensions"]),
            first_start=row["first_start"],
            last_end=row["last_end"],
            windows=int(row["windows"]),
        )
        for row in rows.iter_rows(named=True)
    ]


def default_size(sizes: list[SizeInfo]) -> int | None:
    """The smallest tumbling window size, the finest series to draw."""
    tumbling = [info.size_s for info in sizes if info.size_s == info.step_s]
    choices = tumbling or [info.size_s for info in sizes]
    return min(choices) if choices else None


def read_windows(
    cursor: duckdb.DuckDBPyConnection,
    *,
    size_s: int,
    step_s: int | None = None,
    dimension: str = "all",
    key: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 1000,
) -> pl.DataFrame:
    """Window rows of one size, oldest first; the latest ``limit`` in range.

    ``start`` and ``end`` bound the window start (``[start, end)``).
    """
    where = ["window_size_s = ?", "window_step_s = ?", "dimension = ?"]
    params: list[Any] = [size_s, size_s if step_s is None else step_s, dimension]
    if key is not None:
        where.append("key = ?")
        params.append(key)
    if start is not None:
        where.append("window_start >= ?")
        params.append(start)
    if end is not None:
        where.append("window_start < ?")
        params.append(end)
    columns = ", ".join(WINDOW_SCHEMA)
    latest = frame(
        cursor,
        f"SELECT {columns} FROM windows WHERE {' AND '.join(where)} "
        "ORDER BY window_start DESC, key LIMIT ?",
        [*params, limit],
    )
    return latest.sort("window_start", "key", maintain_order=True)


def top_entries(values: list[str | None], n: int) -> list[dict[str, Any]]:
    """Merge JSON top lists (``[{"key", "count"}]``) into the ``n`` heaviest."""
    counts: Counter[str] = Counter()
    for text in values:
        if not text:
            continue
        for entry in orjson.loads(text):
            counts[str(entry["key"])] += int(entry["count"])
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [{"key": key, "count": count} for key, count in ranked[:n]]


def read_alerts(
    cursor: duckdb.DuckDBPyConnection,
    *,
    status: str | None = None,
    since: datetime | None = None,
    limit: int = 1000,
) -> pl.DataFrame:
    """Alert rows (one per incident, latest state), oldest start first.

    ``since`` keeps incidents that ended at or after it, or are still open.
    """
    if not has_table(cursor, "alerts"):
        return pl.DataFrame(schema=ALERT_COLUMNS)
    where: list[str] = ["TRUE"]
    params: list[Any] = []
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if since is not None:
        where.append('("end" IS NULL OR "end" >= ?)')
        params.append(since)
    latest = frame(
        cursor,
        f"SELECT * FROM alerts WHERE {' AND '.join(where)} "
        'ORDER BY "start" DESC, id LIMIT ?',
        [*params, limit],
    )
    return latest.reverse()


@dataclass(frozen=True)
class Overview:
    """The figures of one dashboard refresh (or of the HTML report)."""

    size_s: int | None
    series: pl.DataFrame
    total_requests: int
    total_bytes: int
    alerts: pl.DataFrame
    top_paths: list[dict[str, Any]] = field(default_factory=list)
    top_clients: list[dict[str, Any]] = field(default_factory=list)

    @property
    def start(self) -> datetime | None:
        return self.series["window_start"].min() if self.series.height else None  # type: ignore[return-value]

    @property
    def end(self) -> datetime | None:
        return self.series["window_end"].max() if self.series.height else None  # type: ignore[return-value]


def overview(
    cursor: duckdb.DuckDBPyConnection,
    *,
    size_s: int | None = None,
    points: int = 120,
    start: datetime | None = None,
    end: datetime | None = None,
    top: int = 10,
) -> Overview:
    """The latest ``points`` windows of ``size_s`` (default: the smallest).

    Totals count every window of that size in the store, within
    ``start``/``end`` when given.
    """
    if size_s is None:
        size_s = default_size(window_sizes(cursor))
    if size_s is None:
        empty = pl.DataFrame(schema={k: WINDOW_SCHEMA[k] for k in WINDOW_SCHEMA})
        return Overview(None, empty, 0, 0, read_alerts(cursor, limit=200))
    series = read_windows(cursor, size_s=size_s, start=start, end=end, limit=points)
    where = ""
    params: list[Any] = [size_s, size_s]
    if start is not None and end is not None:
        where = " AND window_start >= ? AND window_start < ?"
        params.extend([start, end])
    totals = cursor.execute(
        "SELECT coalesce(sum(requests), 0)::UBIGINT, coalesce(sum(bytes), 0)::UBIGINT "
        "FROM windows WHERE window_size_s = ? AND window_step_s = ? "
        f"AND dimension = 'all'{where}",
        params,
    ).fetchone() or (0, 0)
    since: datetime | None = None
    if series.height:
        since = series["window_start"].min()  # type: ignore[assignment]
    return Overview(
        size_s=size_s,
        series=series,
        total_requests=int(totals[0]),
        total_bytes=int(totals[1]),
        alerts=read_alerts(cursor, since=since, limit=200),
        top_paths=top_entries(series["top_paths"].to_list(), top),
        top_clients=top_entries(series["top_clients"].to_list(), top),
    )


def choose_size(sizes: list[SizeInfo], span: timedelta, max_points: int) -> int | None:
    """The smallest tumbling size that draws ``span`` in at most ``max_points``."""
    tumbling = sorted(info.size_s for info in sizes if info.size_s == info.step_s)
    for size in tumbling:
        if span.total_seconds() / size <= max_points:
            return size
    return tumbling[-1] if tumbling else None


def utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC time (naive means UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
