"""HTML of the dashboard and of the batch run's report, from an Overview.

:func:`panels_html` draws the headline figures, the charts
(:mod:`.charts`), the top tables and the alerts. The dashboard page
(:func:`dashboard_page`) loads it once and its script fetches it again
twice a second; the report (:func:`report_page`) inlines it, with its CSS,
into one file that needs no network. Every text that comes from a log is
escaped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from importlib import resources
from typing import Any

import polars as pl

from logweir.pipeline.report import human_bytes
from logweir.serve.charts import Line, Span, bar, line_chart, stacked_bars, timeline
from logweir.serve.data import Overview


def static_text(name: str) -> str:
    """A file of the package's ``static`` folder, as text."""
    return (resources.files("logweir.serve") / "static" / name).read_text("utf-8")


def _iso(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _floats(frame: pl.DataFrame, column: str) -> list[float | None]:
    return [
        None if value is None or not math.isfinite(float(value)) else float(value)
        for value in frame[column].to_list()
    ]


@dataclass(frozen=True)
class Headline:
    """A figure at the top of the page: id (for scripts and tests), label."""

    id: str
    label: str
    value: str
    raw: Any


def headlines(view: Overview, extra: list[Headline] | None = None) -> list[Headline]:
    series = view.series
    last = series.row(-1, named=True) if series.height else None
    open_alerts = (
        int((view.alerts["status"] == "open").sum()) if view.alerts.height else 0
    )
    figures = [
        Headline(
            "requests-total",
            "requests",
            f"{view.total_requests:,}",
            view.total_requests,
        ),
        Headline(
            "bytes-total", "bandwidth", human_bytes(view.total_bytes), view.total_bytes
        ),
    ]
    if last is not None:
        rate = last["requests"] / max(view.size_s or 1, 1)
        figures.append(
            Headline("rate-latest", "req/s (latest window)", f"{rate:,.1f}", rate)
        )
        error_rate = last["error_rate"] or 0.0
        figures.append(
            Headline(
                "errors-latest",
                "5xx share (latest)",
                f"{100 * error_rate:.1f} %",
                error_rate,
            )
        )
        clients = int(last["unique_clients"] or 0)
        figures.append(
            Headline("clients-latest", "clients (latest)", f"{clients:,}", clients)
        )
    figures.append(
        Headline("alerts-open", "open alerts", f"{open_alerts:,}", open_alerts)
    )
    return figures + (extra or [])


def _headline_html(figures: list[Headline]) -> str:
    cells = "".join(
        f'<div class="figure"><div class="value" id="{f.id}" '
        f'data-value="{escape(str(f.raw))}">{escape(f.value)}</div>'
        f'<div class="label">{escape(f.label)}</div></div>'
        for f in figures
    )
    return f'<section class="figures">{cells}</section>'


def _panel(title: str, body: str, wide: bool = False) -> str:
    css = "panel wide" if wide else "panel"
    return f'<section class="{css}"><h2>{escape(title)}</h2>{body}</section>'


def _size_label(size_s: int | None) -> str:
    if size_s is None:
        return "window"
    for unit, seconds in (("h", 3600), ("min", 60)):
        if size_s % seconds == 0:
            return f"{size_s // seconds} {unit}"
    return f"{size_s} s"


def charts_html(view: Overview) -> str:
    series = view.series
    times: list[datetime] = series["window_start"].to_list()
    per = _size_label(view.size_s)
    requests = line_chart(
        f"requests per {per}",
        times,
        [Line("requests", _floats(series, "requests"), "s-req")],
    )
    status = stacked_bars(
        f"status mix per {per}",
        times,
        [
            Line(f"{digit}xx", _floats(series, f"status_{digit}xx"), f"s-{digit}xx")
            for digit in (2, 3, 1, 4, 5)
        ],
    )
    latency = line_chart(
        "latency percentiles",
        times,
        [
            Line(f"p{q}", _floats(series, f"duration_p{q}_ms"), f"s-p{q}")
            for q in (50, 95, 99)
        ],
        unit="ms",
    )
    clients = line_chart(
        f"unique clients per {per}",
        times,
        [Line("clients", _floats(series, "unique_clients"), "s-clients")],
    )
    return (
        _panel(f"requests per {per}", requests)
        + _panel("status mix", status)
        + _panel("latency p50 / p95 / p99", latency)
        + _panel("unique clients", clients)
    )


def top_table(title: str, rows: list[dict[str, Any]], css: str) -> str:
    """A ranked table with a bar per row; ``rows`` hold ``key`` and ``count``."""
    if not rows:
        body = '<p class="none">(none yet)</p>'
        return _panel(title, body)
    peak = max(float(row["count"]) for row in rows)
    lines = "".join(
        f'<tr><td class="key" title="{escape(str(row["key"]))}">'
        f"{escape(str(row['key']))}</td>"
        f'<td class="num">{int(row["count"]):,}</td>'
        f'<td class="barcell">{bar(float(row["count"]), peak)}</td></tr>'
        for row in rows
    )
    table = (
        f'<table class="top {css}"><thead><tr><th>key</th><th class="num">requests'
        f"</th><th></th></tr></thead><tbody>{lines}</tbody></table>"
    )
    return _panel(title, table)


_SEVERITY_CSS = {"critical": "s-critical", "warning": "s-warning"}


def alerts_html(view: Overview) -> str:
    alerts = view.alerts
    records = alerts.to_dicts() if alerts.height else []
    spans = [
        Span(
            label=f"{record['rule']}: {record['message']}",
            start=record["start"],
            end=record["end"] if record["status"] != "open" else None,
            css=_SEVERITY_CSS.get(str(record["severity"]), "s-info"),
        )
        for record in records
        if record["start"] is not None
    ]
    drawn = timeline("alert timeline", view.start, view.end, spans)
    rows = "".join(
        f'<tr class="alert-row {escape(str(r["status"]))}" '
        f'data-rule="{escape(str(r["rule"]))}">'
        f'<td><span class="badge {_SEVERITY_CSS.get(str(r["severity"]), "s-info")}">'
        f"{escape(str(r['severity']))}</span></td>"
        f"<td>{escape(str(r['rule']))}</td><td>{escape(str(r['status']))}</td>"
        f"<td>{_iso(r['start'])}</td><td>{_iso(r['end'])}</td>"
        f'<td class="message">{escape(str(r["message"]))}</td></tr>'
        for r in reversed(records)
    )
    table = (
        '<table class="alerts"><thead><tr><th>severity</th><th>rule</th>'
        "<th>status</th><th>start</th><th>end</th><th>message</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
        if records
        else '<p class="none">(no alerts)</p>'
    )
    return _panel(f"alerts ({len(records)})", drawn + table, wide=True)


def panels_html(
    view: Overview,
    *,
    extra: list[Headline] | None = None,
    tables: str | None = None,
) -> str:
    """Everything between the page's header and footer.

    ``tables`` replaces the top tables drawn from ``view`` (the report
    passes exact ones from the lake).
    """
    span = f"{_iso(view.start)} → {_iso(view.end)} UTC" if view.start else "no data yet"
    if tables is None:
        tables = top_table("top paths", view.top_paths, "paths") + top_table(
            "top clients", view.top_clients, "clients"
        )
    return (
        f'<p class="span" id="span">{escape(span)}</p>'
        + _headline_html(headlines(view, extra))
        + '<div class="grid">'
        + charts_html(view)
        + tables
        + alerts_html(view)
        + "</div>"
    )


def dashboard_page(panels: str, source: str, title: str = "logweir") -> str:
    """The live page: assets from ``/static``, panels refreshed from ``source``."""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>"
        '<link rel="icon" href="data:,">'
        '<link rel="stylesheet" href="static/dashboard.css">'
        '<script src="static/dashboard.js" defer></script></head>'
        f'<body><header><h1>{escape(title)}</h1><span id="status" class="status">'
        "loading</span></header>"
        f'<main id="panels" data-source="{escape(source)}">{panels}</main>'
        "</body></html>\n"
    )


#: The report has no script and fetches nothing; its policy says so, so a
#: log string that slipped past escaping could still not run or load anything.
REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)


def report_page(panels: str, title: str, subtitle: str) -> str:
    """One self-contained file: inline CSS and SVG, no script, no fetch."""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{REPORT_CSP}">'
        f"<title>{escape(title)}</title>"
        '<link rel="icon" href="data:,">'
        f"<style>{static_text('dashboard.css')}</style></head>"
        f'<body><header><h1>{escape(title)}</h1><span class="status">'
        f"{escape(subtitle)}</span></header>"
        f'<main id="panels">{panels}</main></body></html>\n'
    )
