"""Series drawn from closed windows: what the rules watch.

The windows stage emits one row per (window, dimension, key) following
:data:`logweir.schema.WINDOW_SCHEMA`. This module picks one window family
(by default the shortest tumbling one), groups the rows of each window
into a :class:`WindowView`, and reads the metrics the rules watch off a
row:

=================  ============================================  ========
metric             from the row                                  unit
=================  ============================================  ========
``request_rate``   requests / window length                      req/s
``requests``       requests                                      requests
``share_4xx``      status_4xx / requests                         share
``share_5xx``      status_5xx / requests                         share
``byte_rate``      bytes / window length                         B/s
``p95_ms``         duration_p95_ms                               ms
``unique_clients`` unique_clients                                clients
=================  ============================================  ========

Per-dimension rows (``path``, ``client_ip``, ``host``, ``status_class`` …)
are kept only for keys with at least ``min_requests`` requests, busiest
first, at most ``top_k`` per dimension: a rule that watches every key of
a dimension sees a bounded number of series whatever the traffic.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, get_args

import orjson
import polars as pl

from logweir.schema import WINDOW_SCHEMA

logger = logging.getLogger(__name__)

Metric = Literal[
    "request_rate",
    "requests",
    "share_4xx",
    "share_5xx",
    "byte_rate",
    "p95_ms",
    "unique_clients",
]
METRICS: tuple[Metric, ...] = get_args(Metric)

#: Metrics that are a share of the window's requests: their noise follows
#: the binomial law, and they mean nothing without requests behind them.
SHARE_METRICS: frozenset[Metric] = frozenset({"share_4xx", "share_5xx"})

#: How each metric is named in an alert line.
METRIC_LABELS: dict[Metric, str] = {
    "request_rate": "request rate",
    "requests": "requests",
    "share_4xx": "4xx share",
    "share_5xx": "5xx share",
    "byte_rate": "traffic",
    "p95_ms": "p95 latency",
    "unique_clients": "unique clients",
}

OVERALL = "all"


@dataclass(frozen=True)
class Row:
    """The numbers of one window row that the rules read."""

    requests: float
    bytes: float | None = None
    status_4xx: float | None = None
    status_5xx: float | None = None
    duration_p95_ms: float | None = None
    unique_clients: float | None = None

    def metric(self, name: Metric, size_s: int) -> float | None:
        """The value of metric ``name`` in a window of ``size_s`` seconds."""
        if name == "request_rate":
            return self.requests / size_s
        if name == "requests":
            return self.requests
        if name == "byte_rate":
            return None if self.bytes is None else self.bytes / size_s
        if name == "p95_ms":
            return self.duration_p95_ms
        if name == "unique_clients":
            return self.unique_clients
        count = self.status_4xx if name == "share_4xx" else self.status_5xx
        if count is None or self.requests <= 0:
            return None
        return count / self.requests


EMPTY_ROW = Row(
    requests=0.0, bytes=0.0, status_4xx=0.0, status_5xx=0.0, unique_clients=0.0
)


@dataclass(frozen=True)
class TopEntry:
    """One entry of a ``top_*`` list: a key and its count in the window."""

    key: str
    count: int


@dataclass(frozen=True)
class WindowView:
    """Everything the rules read about one closed window.

    ``overall`` is the ``dimension == "all"`` row (zeros for a window in
    which nothing happened). ``tops`` holds the overall row's ``top_*``
    lists by column name; ``status_tops`` the ``top_clients`` list of each
    ``status_class`` row (``"4xx"`` → the clients that drew most 4xx).
    ``dimensions`` holds the kept per-key rows of every other dimension.
    """

    start: datetime
    end: datetime
    size_s: int
    overall: Row
    tops: dict[str, tuple[TopEntry, ...]] = field(default_factory=dict)
    status_tops: dict[str, tuple[TopEntry, ...]] = field(default_factory=dict)
    dimensions: dict[str, dict[str, Row]] = field(default_factory=dict)

    @property
    def start_us(self) -> int:
        return _micros(self.start)

    def top(self, column: str) -> tuple[TopEntry, ...]:
        return self.tops.get(column, ())

    @classmethod
    def empty(cls, start: datetime, end: datetime, size_s: int) -> WindowView:
        """A window that no event fell into: its counts are zero."""
        return cls(start=start, end=end, size_s=size_s, overall=EMPTY_ROW)


def parse_top(text: str | None) -> tuple[TopEntry, ...]:
    """A ``top_*`` JSON column value as entries; malformed text gives none.

    The windows stage writes these columns, so malformed text is a bug
    upstream rather than bad input; it is logged and skipped, not fatal.
    """
    if not text:
        return ()
    try:
        items = orjson.loads(text)
        return tuple(TopEntry(str(item["key"]), int(item["count"])) for item in items)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        logger.warning("unreadable top list in a window row: %.80s", text)
        return ()


def choose_window_size(frame: pl.DataFrame) -> int | None:
    """The shortest tumbling window size in ``frame``, or ``None`` if none."""
    tumbling = frame.filter(pl.col("window_size_s") == pl.col("window_step_s"))
    if tumbling.is_empty():
        return None
    return int(tumbling.get_column("window_size_s").min())  # type: ignore[arg-type]


def check_window_frame(frame: pl.DataFrame) -> None:
    """Raise ``ValueError`` naming the columns ``frame`` lacks."""
    missing = [name for name in WINDOW_SCHEMA if name not in frame.columns]
    if missing:
        raise ValueError(f"window rows lack columns: {', '.join(missing)}")


def window_views(
    frame: pl.DataFrame, size_s: int, *, min_requests: float = 1.0, top_k: int = 20
) -> Iterator[WindowView]:
    """The windows of ``size_s`` (tumbling) in ``frame``, oldest first."""
    rows = frame.filter(
        (pl.col("window_size_s") == size_s) & (pl.col("window_step_s") == size_s)
    ).sort("window_start", "dimension", "key")
    if rows.is_empty():
        return
    for (start,), group in rows.group_by("window_start", maintain_order=True):
        yield _view(group, start, size_s, min_requests, top_k)


def _view(
    group: pl.DataFrame, start: datetime, size_s: int, min_requests: float, top_k: int
) -> WindowView:
    end = group.get_column("window_end")[0]
    overall = EMPTY_ROW
    tops: dict[str, tuple[TopEntry, ...]] = {}
    status_tops: dict[str, tuple[TopEntry, ...]] = {}
    dimensions: dict[str, dict[str, Row]] = {}
    for record in group.iter_rows(named=True):
        dimension, key = record["dimension"], record["key"]
        row = _row(record)
        if dimension == OVERALL:
            overall = row
            for column in ("top_paths", "top_clients", "top_user_agents"):
                tops[column] = _possible(parse_top(record[column]), row, column)
            continue
        if dimension == "status_class":
            status_tops[key] = _possible(parse_top(record["top_clients"]), row, key)
        if row.requests >= min_requests:
            dimensions.setdefault(dimension, {})[key] = row
    for dimension, keyed in dimensions.items():
        if len(keyed) > top_k:
            busiest = sorted(
                keyed.items(), key=lambda item: (-item[1].requests, item[0])
            )
            dimensions[dimension] = dict(busiest[:top_k])
    return WindowView(start, end, size_s, overall, tops, status_tops, dimensions)


def _possible(
    entries: tuple[TopEntry, ...], row: Row, where: str
) -> tuple[TopEntry, ...]:
    """Entries whose count could be true: no key has more events than its row.

    A count above the row's requests (an underflowed counter upstream)
    would make any client look like a flood; such entries are dropped.
    """
    kept = tuple(entry for entry in entries if 0 <= entry.count <= row.requests)
    if len(kept) < len(entries):
        # Once at WARNING, then DEBUG: a broken upstream repeats every window.
        level = logging.DEBUG if _IMPOSSIBLE_SEEN else logging.WARNING
        _IMPOSSIBLE_SEEN.append(where)
        del _IMPOSSIBLE_SEEN[1:]
        logger.log(
            level,
            "top list %s: %d entries count more than the row's %d requests; ignored",
            where,
            len(entries) - len(kept),
            int(row.requests),
        )
    return kept


#: Non-empty once an impossible top count has been logged at WARNING.
_IMPOSSIBLE_SEEN: list[str] = []


def _row(record: dict[str, object]) -> Row:
    def number(name: str) -> float | None:
        value = record.get(name)
        return None if value is None else float(value)  # type: ignore[arg-type]

    return Row(
        requests=number("requests") or 0.0,
        bytes=number("bytes"),
        status_4xx=number("status_4xx"),
        status_5xx=number("status_5xx"),
        duration_p95_ms=number("duration_p95_ms"),
        unique_clients=number("unique_clients"),
    )


def _micros(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond
