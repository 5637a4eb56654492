"""The summary a run prints: GoAccess-like panels on the terminal, or JSON.

:func:`build_report` computes the figures exactly: from the run's
:class:`~logweir.pipeline.tally.Tally`, counted while the run read its
input, or, where the run kept none (follow mode, or more distinct paths
and clients than a tally holds), with DuckDB over the lake files the run
wrote (so a lake that also holds earlier runs over other inputs does not
leak into this run's report). Both roads give the same figures. The run's
own counts (lines, rejects by reason, timings) come from the
:class:`~logweir.pipeline.batch.RunSummary`. :func:`render_report` draws
it with rich; :func:`report_to_dict` gives the same figures for ``--json``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from rich import box
from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from logweir.pipeline.batch import RunSummary
from logweir.pipeline.query import frame_of
from logweir.pipeline.tally import Tally

SPARK_BARS = "▁▂▃▄▅▆▇█"
#: Console width from which two ranked tables are drawn side by side.
WIDE_CONSOLE = 140

#: The lake columns the report reads; DuckDB reads only these from Parquet.
_REPORT_COLUMNS = "ts, client_ip, path, status, bytes, duration_ms"


@dataclass(frozen=True)
class RunReport:
    """Every figure the report shows. Ranked lists hold plain dicts."""

    summary: RunSummary
    requests: int = 0
    unique_clients: int = 0
    bandwidth_bytes: int = 0
    first_event: datetime | None = None
    last_event: datetime | None = None
    status_codes: list[dict[str, Any]] = field(default_factory=list)
    top_paths: list[dict[str, Any]] = field(default_factory=list)
    top_clients: list[dict[str, Any]] = field(default_factory=list)
    top_404s: list[dict[str, Any]] = field(default_factory=list)
    slowest_paths: list[dict[str, Any]] = field(default_factory=list)
    requests_per_minute: list[tuple[datetime, int]] = field(default_factory=list)


def build_report(summary: RunSummary, top: int = 10) -> RunReport:
    """Compute the report's figures for ``summary``'s run.

    From the run's tally when it kept one, else from the lake files that
    the run wrote (and only those).
    """
    if not summary.lake_files:
        return RunReport(summary=summary)
    tally = summary.tally
    if tally is not None and not tally.overflow:
        return report_from_tally(summary, tally, top)
    return report_from_lake(summary, top)


def report_from_tally(summary: RunSummary, tally: Tally, top: int = 10) -> RunReport:
    """The report's figures from a run's tally (the lake is read only for
    the 95th percentiles of the few slowest paths)."""
    paths = tally.frame("paths")
    clients = tally.frame("clients")
    statuses = tally.frame("statuses").sort(
        ["requests", "status"], descending=[True, False], nulls_last=True
    )
    return RunReport(
        summary=summary,
        requests=tally.events,
        unique_clients=clients.get_column("client_ip").drop_nulls().len(),
        bandwidth_bytes=tally.bandwidth,
        first_event=_from_us(tally.first_us),
        last_event=_from_us(tally.last_us),
        status_codes=statuses.to_dicts(),
        top_paths=_top(paths, "path", "requests", "bytes", top),
        top_clients=_top(clients, "client_ip", "requests", "bytes", top),
        top_404s=_top(
            paths.filter(pl.col("not_found") > 0),
            "path",
            "not_found",
            "not_found_bytes",
            top,
        ),
        slowest_paths=_slowest_from_tally(summary, paths, top),
        requests_per_minute=_minutes(
            tally.frame("minutes")
            .sort("minute")
            .select(
                (pl.col("minute") * 60_000_000)
                .cast(pl.Datetime("us", "UTC"))
                .alias("minute"),
                pl.col("requests").alias("n"),
            )
        ),
    )


def _from_us(micros: int | None) -> datetime | None:
    if micros is None:
        return None
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


def _top(
    frame: pl.DataFrame, key: str, requests: str, size: str, top: int
) -> list[dict[str, Any]]:
    """The ``top`` keys by requests, then key (nulls last), as report rows."""
    ranked = frame.select(
        pl.col(key).alias("key"),
        pl.col(requests).alias("requests"),
        pl.col(size).fill_null(0).alias("bytes"),
    ).sort(["requests", "key"], descending=[True, False], nulls_last=True)
    return ranked.head(top).to_dicts()


def _slowest_from_tally(
    summary: RunSummary, paths: pl.DataFrame, top: int
) -> list[dict[str, Any]]:
    """The slowest paths by mean duration; their exact 95th percentiles are
    read from the lake for those paths only (bloom filters on ``path`` let
    DuckDB skip most row groups)."""
    timed = paths.filter((pl.col("timed") > 0) & pl.col("path").is_not_null())
    if timed.is_empty():
        return []
    slowest = (
        timed.select(
            "path",
            pl.col("timed").alias("requests"),
            # Rounded to the microsecond (half away from zero, as DuckDB
            # rounds): a sum's last bits depend on the order it was added
            # in, which the lake road does not share.
            (pl.col("duration_sum") / pl.col("timed"))
            .round(3, mode="half_away_from_zero")
            .alias("mean_ms"),
        )
        .sort(["mean_ms", "path"], descending=[True, False])
        .head(top)
    )
    with duckdb.connect() as db:
        files = [str(path) for path in summary.lake_files]
        p95 = frame_of(
            db.sql(
                "SELECT path, quantile_cont(duration_ms, 0.95) AS p95_ms "
                "FROM read_parquet(?, hive_partitioning = false) "
                "WHERE duration_ms IS NOT NULL AND path IN "
                "(SELECT unnest(?::VARCHAR[])) GROUP BY path",
                params=[files, slowest.get_column("path").to_list()],
            )
        )
    return (
        slowest.join(p95, on="path", how="left")
        .sort(["mean_ms", "path"], descending=[True, False])
        .to_dicts()
    )


def report_from_lake(summary: RunSummary, top: int = 10) -> RunReport:
    """The report's figures with DuckDB over the run's lake files."""
    with duckdb.connect() as db:
        db.execute("SET TimeZone = 'UTC'")
        files = [str(path) for path in summary.lake_files]
        db.execute(
            f"CREATE TEMP TABLE e AS SELECT {_REPORT_COLUMNS} "
            "FROM read_parquet(?, hive_partitioning = false)",
            [files],
        )
        overview = _rows(
            db,
            "SELECT count(*) AS requests, count(DISTINCT client_ip) AS clients, "
            "coalesce(sum(bytes), 0)::UBIGINT AS bandwidth, min(ts) AS first, "
            "max(ts) AS last FROM e",
        )[0]
        return RunReport(
            summary=summary,
            requests=int(overview["requests"]),
            unique_clients=int(overview["clients"]),
            bandwidth_bytes=int(overview["bandwidth"]),
            first_event=overview["first"],
            last_event=overview["last"],
            status_codes=_rows(
                db,
                "SELECT status, count(*) AS requests FROM e "
                "GROUP BY status ORDER BY requests DESC, status",
            ),
            top_paths=_ranked(db, "path", "", top),
            top_clients=_ranked(db, "client_ip", "", top),
            top_404s=_ranked(db, "path", "WHERE status = 404", top),
            slowest_paths=_rows(
                db,
                "SELECT path, count(*) AS requests, "
                "round(avg(duration_ms), 3) AS mean_ms, "
                "quantile_cont(duration_ms, 0.95) AS p95_ms FROM e "
                "WHERE duration_ms IS NOT NULL AND path IS NOT NULL "
                "GROUP BY path ORDER BY mean_ms DESC, path LIMIT ?",
                [top],
            ),
            requests_per_minute=_per_minute(db),
        )


def _rows(
    db: duckdb.DuckDBPyConnection, sql: str, parameters: list[Any] | None = None
) -> list[dict[str, Any]]:
    return frame_of(db.sql(sql, params=parameters or [])).to_dicts()


def _ranked(
    db: duckdb.DuckDBPyConnection, column: str, where: str, top: int
) -> list[dict[str, Any]]:
    return _rows(
        db,
        f"SELECT {column} AS key, count(*) AS requests, "
        f"coalesce(sum(bytes), 0)::UBIGINT AS bytes FROM e {where} "
        f"GROUP BY {column} ORDER BY requests DESC, key NULLS LAST LIMIT ?",
        [top],
    )


def _per_minute(db: duckdb.DuckDBPyConnection) -> list[tuple[datetime, int]]:
    frame = frame_of(
        db.sql(
            "SELECT time_bucket(INTERVAL 1 MINUTE, ts) AS minute, count(*) AS n "
            "FROM e WHERE ts IS NOT NULL GROUP BY minute ORDER BY minute"
        )
    )
    return _minutes(frame)


def _minutes(frame: pl.DataFrame) -> list[tuple[datetime, int]]:
    """``minute, n`` rows (sorted) as a series with the empty minutes in."""
    if not frame.height:
        return []
    counts = dict(zip(frame["minute"].to_list(), frame["n"].to_list(), strict=True))
    first: datetime = frame["minute"][0]
    last: datetime = frame["minute"][-1]
    minutes = int((last - first).total_seconds() // 60) + 1
    series = []
    for step in range(minutes):
        minute = first + timedelta(minutes=step)
        series.append((minute, int(counts.get(minute, 0))))
    return series


def sparkline(values: list[int], width: int) -> str:
    """``values`` as block characters, summed into at most ``width`` bars."""
    if not values:
        return ""
    per_bar = max(1, math.ceil(len(values) / width))
    sums = [sum(values[i : i + per_bar]) for i in range(0, len(values), per_bar)]
    peak = max(sums)
    if peak == 0:
        return SPARK_BARS[0] * len(sums)
    top = len(SPARK_BARS) - 1
    return "".join(SPARK_BARS[round(value / peak * top)] for value in sums)


def human_bytes(size: int) -> str:
    """``1536`` as ``1.5 KiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat().replace("+00:00", "Z")


def outputs(summary: RunSummary) -> dict[str, str]:
    """Where the run's outputs are, by kind."""
    return {
        "lake": str(summary.out / "events"),
        "store": str(summary.store_path),
        "rejects": str(summary.out / "rejects"),
    }


def report_to_dict(report: RunReport) -> dict[str, Any]:
    """The report as plain JSON-ready values (``logweir run --json``)."""
    summary = report.summary
    alerts = summary.alerts
    return {
        "run_id": summary.run_id,
        "inputs": list(summary.inputs),
        "formats": [choice.to_dict() for choice in summary.formats],
        "workers": summary.workers,
        "lines": summary.lines,
        "events": summary.events,
        "rejects": summary.rejects,
        "skipped": summary.skipped,
        "late": summary.late,
        "untimed": summary.untimed,
        "elapsed_s": round(summary.elapsed_s, 3),
        "lines_per_s": round(summary.lines_per_s),
        "requests": report.requests,
        "unique_clients": report.unique_clients,
        "bandwidth_bytes": report.bandwidth_bytes,
        "first_event": _iso(report.first_event),
        "last_event": _iso(report.last_event),
        "status_codes": {
            str(row["status"]): row["requests"] for row in report.status_codes
        },
        "top_paths": report.top_paths,
        "top_clients": report.top_clients,
        "top_404s": report.top_404s,
        "slowest_paths": report.slowest_paths,
        "requests_per_minute": [
            {"minute": _iso(minute), "requests": count}
            for minute, count in report.requests_per_minute
        ],
        "rejects_by_reason": summary.reject_reasons,
        "windows": summary.windows,
        "alerts": alerts.to_dicts() if alerts is not None else [],
        "outputs": outputs(summary),
        "stage_s": {name: round(sec, 3) for name, sec in summary.stage_s.items()},
    }


def _table(title: str, headers: tuple[str, ...], rows: list[tuple[Any, ...]]) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", expand=True)
    for index, header in enumerate(headers):
        if index == 0:  # keys (paths, agents) can be long: cut, never wrap
            table.add_column(header, overflow="ellipsis", no_wrap=True, ratio=1)
        else:
            table.add_column(header, justify="right", no_wrap=True)
    for row in rows:
        # Keys come from the log: Text keeps "[/b]" in a path from being
        # read as rich markup.
        table.add_row(*(Text(str(cell)) for cell in row))
    if not rows:
        table.add_row("(none)", *([""] * (len(headers) - 1)))
    return table


def _print_pair(console: Console, left: Table, right: Table) -> None:
    """Two tables side by side where an IPv6 address and a path fit whole."""
    if console.width >= WIDE_CONSOLE:
        console.print(_side_by_side(left, right))
    else:
        console.print(left)
        console.print(right)


def _side_by_side(left: Table, right: Table) -> Table:
    grid = Table.grid(expand=True, padding=(0, 2))
    grid.add_column(ratio=1)
    grid.add_column(ratio=1)
    grid.add_row(left, right)
    return grid


def _overview(report: RunReport) -> Table:
    summary = report.summary
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    formats = ", ".join(choice.describe() for choice in summary.formats) or "-"
    span = "-"
    if report.first_event is not None and report.last_event is not None:
        span = f"{_iso(report.first_event)} → {_iso(report.last_event)}"
    for label, value in (
        ("requests", f"{report.requests:,}"),
        ("unique clients", f"{report.unique_clients:,}"),
        ("bandwidth", human_bytes(report.bandwidth_bytes)),
        ("time span", span),
        ("format", formats),
        (
            "lines",
            f"{summary.lines:,} read, {summary.events:,} events, "
            f"{summary.rejects:,} rejects, {summary.skipped:,} blank"
            + (f", {summary.untimed:,} without a time" if summary.untimed else ""),
        ),
        (
            "speed",
            f"{summary.elapsed_s:.2f} s, {summary.lines_per_s:,.0f} lines/s, "
            f"{summary.workers} worker{'s' if summary.workers != 1 else ''}",
        ),
    ):
        grid.add_row(label, Text(value))
    return grid


def _ranked_rows(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            row["key"] if row["key"] is not None else "-",
            f"{row['requests']:,}",
            human_bytes(int(row["bytes"])),
        )
        for row in rows
    ]


def _rate_panel(report: RunReport, width: int) -> Panel:
    counts = [count for _, count in report.requests_per_minute]
    if not counts:
        return Panel("(no timestamps)", title="requests per minute", box=box.ROUNDED)
    line = Text(sparkline(counts, width), style="cyan")
    first = _iso(report.requests_per_minute[0][0])
    caption = (
        f"{len(counts)} minutes from {first}; peak {max(counts):,}/min, "
        f"mean {sum(counts) / len(counts):,.0f}/min"
    )
    return Panel(Group(line, Text(caption, style="dim")), title="requests per minute")


def _alert_lines(summary: RunSummary) -> list[str]:
    alerts = summary.alerts
    if alerts is None or not alerts.height:
        return []
    column = "message" if "message" in alerts.columns else alerts.columns[0]
    return [str(value) for value in alerts.get_column(column).to_list()]


def _status_and_rejects(report: RunReport, top: int) -> tuple[Table, Table]:
    total = max(report.requests, 1)
    status = _table(
        "status codes",
        ("status", "requests", "share"),
        [
            (
                row["status"] if row["status"] is not None else "-",
                f"{row['requests']:,}",
                f"{100 * row['requests'] / total:.1f} %",
            )
            for row in report.status_codes
        ],
    )
    reasons = list(report.summary.reject_reasons.items())
    rows: list[tuple[Any, ...]] = [
        (reason, f"{count:,}") for reason, count in reasons[:top]
    ]
    if len(reasons) > top:
        rest = sum(count for _, count in reasons[top:])
        rows.append((f"({len(reasons) - top} other reasons)", f"{rest:,}"))
    rejects = _table("rejects by reason", ("reason", "lines"), rows)
    return status, rejects


def _slowest(report: RunReport) -> Table | str:
    rows = [
        (
            row["path"],
            f"{row['requests']:,}",
            f"{row['mean_ms']:.1f}",
            f"{row['p95_ms']:.1f}",
        )
        for row in report.slowest_paths
    ]
    if not rows:
        return "[dim]slowest paths: the format records no durations[/dim]"
    return _table("slowest paths", ("path", "requests", "mean ms", "p95 ms"), rows)


def _print_outputs(summary: RunSummary, console: Console) -> None:
    """Where the outputs are, one path a line, never wrapped (for copying)."""
    console.rule("outputs", align="left", style="dim")
    for kind, path in outputs(summary).items():
        console.print(f"[bold]{kind:<8}[/bold] {escape(str(path))}", soft_wrap=True)
    query = escape(f'logweir query "SELECT ..." --out {summary.out}')
    console.print(f"[dim]query:[/dim]   {query}", soft_wrap=True)


def render_report(
    report: RunReport, console: Console, *, width: int = 60, top: int = 10
) -> None:
    """Draw ``report`` on ``console``: overview, then the panels.

    ``width`` is the sparkline's bars at most, ``top`` the rows of the
    rejects panel (the ranked panels hold what :func:`build_report` kept).
    """
    headers = ("key", "requests", "bytes")
    console.print(Panel(_overview(report), title="logweir run", box=box.ROUNDED))
    console.print(_rate_panel(report, width))
    _print_pair(console, *_status_and_rejects(report, top))
    console.print(_table("top paths", headers, _ranked_rows(report.top_paths)))
    clients = _table("top clients", headers, _ranked_rows(report.top_clients))
    not_found = _table("top 404s", headers, _ranked_rows(report.top_404s))
    _print_pair(console, clients, not_found)
    console.print(_slowest(report))
    alerts = _alert_lines(report.summary)
    if alerts:
        console.print(Panel(Text("\n".join(alerts)), title=f"alerts ({len(alerts)})"))
    _print_outputs(report.summary, console)


def write_report_json(report: RunReport, path: Path | None = None) -> str:
    """The JSON text of :func:`report_to_dict`; written to ``path`` if given."""
    import json

    text = json.dumps(report_to_dict(report), indent=2, default=_json_default)
    if path is not None:
        path.write_text(text + "\n", encoding="utf-8")
    return text


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


__all__ = [
    "RunReport",
    "build_report",
    "human_bytes",
    "outputs",
    "render_report",
    "report_to_dict",
    "sparkline",
    "write_report_json",
]
