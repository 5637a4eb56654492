"""``logweir run ... --report report.html``: the dashboard as one file.

The report draws the dashboard's charts from the store's windows over the
run's time span, and takes its totals and top tables from the run's own
lake files (:func:`logweir.pipeline.report.build_report`), which are exact:
its request total is the ``count(*)`` that ``logweir query`` gives over the
same lake. CSS and SVG are inline, there is no script and nothing is
fetched, so the file can be mailed or archived and opened anywhere.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from html import escape
from pathlib import Path
from typing import Any

from logweir.errors import ConfigError, SinkError
from logweir.pipeline.report import RunReport, human_bytes
from logweir.serve import data
from logweir.serve.reader import StoreReader
from logweir.serve.render import Headline, panels_html, report_page, top_table
from logweir.sinks.atomic import describe, write_atomically

#: Most points a chart of the report draws; a longer run uses larger windows.
MAX_POINTS = 720


def _ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"key": row["key"] if row["key"] is not None else "-", "count": row["requests"]}
        for row in rows
    ]


def _status_table(report: RunReport) -> str:
    rows = [
        {
            "key": str(row["status"]) if row["status"] is not None else "-",
            "count": row["requests"],
        }
        for row in report.status_codes
    ]
    return top_table("status codes", rows, "codes")


def _slowest(report: RunReport) -> str:
    if not report.slowest_paths:
        return ""
    lines = "".join(
        f'<tr><td class="key" title="{escape(str(row["path"]))}">'
        f"{escape(str(row['path']))}</td>"
        f'<td class="num">{int(row["requests"]):,}</td>'
        f'<td class="num">{float(row["mean_ms"]):.1f}</td>'
        f'<td class="num">{float(row["p95_ms"]):.1f}</td></tr>'
        for row in report.slowest_paths
    )
    return (
        '<section class="panel"><h2>slowest paths</h2><table class="top slowest">'
        '<thead><tr><th>path</th><th class="num">requests</th>'
        '<th class="num">mean ms</th><th class="num">p95 ms</th></tr></thead>'
        f"<tbody>{lines}</tbody></table></section>"
    )


def report_html(report: RunReport) -> str:
    """The report page of a finished batch run (its store must be closed)."""
    summary = report.summary
    reader = StoreReader.open(summary.out)
    try:
        with reader.cursor() as cursor:
            view = _overview(cursor, report)
    finally:
        reader.close()
    view = dataclasses.replace(
        view,
        total_requests=report.requests,
        total_bytes=report.bandwidth_bytes,
    )
    extra = [
        Headline(
            "clients-total",
            "unique clients (run)",
            f"{report.unique_clients:,}",
            report.unique_clients,
        ),
        Headline("lines-total", "lines read", f"{summary.lines:,}", summary.lines),
        Headline("rejects-total", "rejected", f"{summary.rejects:,}", summary.rejects),
    ]
    tables = (
        top_table("top paths", _ranked(report.top_paths), "paths")
        + top_table("top clients", _ranked(report.top_clients), "clients")
        + _status_table(report)
        + top_table("top 404s", _ranked(report.top_404s), "notfound")
        + _slowest(report)
    )
    inputs = ", ".join(summary.inputs) or "-"
    subtitle = (
        f"run {summary.run_id} · {inputs} · {summary.lines:,} lines in "
        f"{summary.elapsed_s:.2f} s · {human_bytes(summary.bytes_read)}"
    )
    return report_page(
        panels_html(view, extra=extra, tables=tables), "logweir report", subtitle
    )


def _overview(cursor: Any, report: RunReport) -> data.Overview:
    first, last = report.first_event, report.last_event
    if first is None or last is None:
        return data.overview(cursor, points=MAX_POINTS)
    size = data.choose_size(data.window_sizes(cursor), last - first, MAX_POINTS)
    # windows that hold any of the run's events start up to one size earlier
    start = data.utc(first) - timedelta(seconds=size or 0, microseconds=-1)
    end = data.utc(last) + timedelta(microseconds=1)
    return data.overview(cursor, size_s=size, points=10**6, start=start, end=end)


def write_html_report(report: RunReport, path: Path) -> Path:
    """Write the report of ``report``'s run to ``path``, whole or not at all.

    Raises :class:`SinkError` naming ``path`` and the cause; the run's
    output is complete by then, and the message says so.
    """
    kept = f"the run's output in {report.summary.out} is complete"
    problem = report_target_problem(path)
    if problem is not None:
        raise SinkError(f"cannot write the report {path}: {problem} ({kept})")
    text = report_html(report)
    try:
        return write_atomically(path, lambda target: target.write_text(text, "utf-8"))
    except SinkError as error:
        cause = error.__cause__
        why = describe(cause) if isinstance(cause, OSError) else str(error)
        raise SinkError(f"cannot write the report {path}: {why} ({kept})") from None


def check_report_target(path: Path) -> None:
    """Raise :class:`ConfigError` if ``path`` plainly cannot take the report.

    For ``logweir run --report`` to call before the run, so that a long
    run does not end in that error.
    """
    problem = report_target_problem(path)
    if problem is not None:
        raise ConfigError(f"--report {path}: {problem}")


def report_target_problem(path: Path) -> str | None:
    """Why ``path`` cannot become a file, when that shows without trying."""
    if path.is_dir():
        return "is a folder"
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else f"{parent.name} is not a folder"
    return None
