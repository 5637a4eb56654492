"""Charts and panels: exact numbers on the axes, gaps, and escaped log text."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from logweir.schema import WINDOW_SCHEMA
from logweir.serve.charts import (
    HEIGHT,
    Line,
    Span,
    line_chart,
    nice_ceiling,
    short_number,
    stacked_bars,
    timeline,
)
from logweir.serve.data import Overview, top_entries
from logweir.serve.render import panels_html, report_page
from logweir.sinks.alerts import ALERT_COLUMNS

T0 = datetime(2024, 6, 3, 8, 0, tzinfo=UTC)
TIMES = [T0 + timedelta(minutes=m) for m in range(4)]


@pytest.mark.parametrize(
    ("value", "top"),
    [
        (0, 1.0),
        (0.3, 0.5),
        (1, 1.0),
        (7, 10.0),
        (12, 20.0),
        (240, 250.0),
        (4100, 5000.0),
    ],
)
def test_axis_tops_are_round(value: float, top: float) -> None:
    assert nice_ceiling(value) == top


@pytest.mark.parametrize(
    ("value", "text"), [(0, "0"), (950, "950"), (1250, "1.25k"), (3_400_000, "3.4M")]
)
def test_axis_labels_are_short(value: float, text: str) -> None:
    assert short_number(value) == text


def test_a_missing_value_breaks_the_line() -> None:
    svg = line_chart("x", TIMES, [Line("a", [1.0, 2.0, None, 4.0], "s-a")])
    assert svg.count("<polyline") == 1  # the first two points
    assert svg.count("<circle") == 1  # the last point stands alone
    assert "<title>x</title>" in svg


def test_stacked_bars_reach_the_total() -> None:
    svg = stacked_bars(
        "mix", TIMES[:1], [Line("ok", [6.0], "s-2xx"), Line("bad", [4.0], "s-5xx")]
    )
    heights = [
        float(h)
        for h in re.findall(r'<rect class="s-[25]xx" x=[^>]*height="([\d.]+)"', svg)
    ]
    # the axis tops at 10, so the two parts fill the whole plot height
    assert sum(heights) == pytest.approx(HEIGHT - 12 - 24, abs=0.2)


def test_an_open_incident_runs_to_the_right_edge() -> None:
    svg = timeline(
        "alerts",
        T0,
        T0 + timedelta(minutes=10),
        [Span("open one", T0 + timedelta(minutes=5), None, "s-critical")],
    )
    (x, width) = re.search(r'x="([\d.]+)" y="\d+" width="([\d.]+)"', svg).groups()  # type: ignore[union-attr]
    assert float(x) + float(width) == pytest.approx(1280 - 10, abs=0.2)


def test_merged_top_lists_rank_by_count_then_key() -> None:
    assert top_entries(
        ['[{"key": "/a", "count": 3}, {"key": "/b", "count": 2}]',
         '[{"key": "/b", "count": 2}, {"key": "/c", "count": 4}]', None],
        2,
    ) == [{"key": "/b", "count": 4}, {"key": "/c", "count": 4}]  # fmt: skip


def _overview(path: str, message: str) -> Overview:
    row = {name: None for name in WINDOW_SCHEMA}
    row.update(
        window_size_s=60, window_step_s=60, window_start=T0,
        window_end=T0 + timedelta(minutes=1), dimension="all", key="",
        requests=3, bytes=30, status_2xx=3, unique_clients=1, error_rate=0.0,
    )  # fmt: skip
    series = pl.DataFrame([row], schema=WINDOW_SCHEMA)
    alert = {name: None for name in ALERT_COLUMNS}
    alert.update(
        id="a1", status="open", rule="traffic_spike", severity="critical",
        start=T0, message=message, detail="{}",
    )  # fmt: skip
    alerts = pl.DataFrame([alert], schema=ALERT_COLUMNS)
    return Overview(
        size_s=60,
        series=series,
        total_requests=3,
        total_bytes=30,
        alerts=alerts,
        top_paths=[{"key": path, "count": 3}],
        top_clients=[],
    )


def test_log_text_is_escaped_in_the_page() -> None:
    hostile = '/<script>alert("x")</script>'
    html = panels_html(_overview(hostile, "<img src=x onerror=alert(1)>"))
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert 'id="requests-total" data-value="3"' in html
    assert 'id="alerts-open" data-value="1"' in html


def test_the_report_page_inlines_its_style() -> None:
    page = report_page(panels_html(_overview("/", "m")), "logweir report", "run x")
    assert "<style>" in page and '<link rel="stylesheet"' not in page
    assert "<script" not in page
