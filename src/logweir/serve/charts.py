"""Charts drawn as SVG text on the server: no script library, no CDN.

The dashboard swaps freshly drawn charts in twice a second, and the HTML
report inlines the same SVG, so one drawing serves both and the report
opens without any network. Colours come from CSS classes (``s-*``), never
``style`` attributes, so the dashboard's Content-Security-Policy can
forbid inline styles.

Every chart has a ``viewBox`` and no fixed size: CSS makes it as wide as
its panel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

WIDTH = 640
HEIGHT = 190
#: The alert timeline spans the page, so it is drawn twice as wide.
TIMELINE_WIDTH = 1280
#: Room for the y labels on the left and the x labels below.
LEFT, RIGHT, TOP, BOTTOM = 52, 10, 12, 24


@dataclass(frozen=True)
class Line:
    """One series: a label for the legend, values (``None`` = gap), a class."""

    label: str
    values: Sequence[float | None]
    css: str


def nice_ceiling(value: float) -> float:
    """The next 1, 2, 2.5 or 5 × 10^k at or above ``value`` (axis tops)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def short_number(value: float) -> str:
    """``1234`` as ``1.2k``, for axis labels."""
    size = abs(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if size >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def _time_label(moment: datetime) -> str:
    return moment.strftime("%H:%M:%S" if moment.second else "%H:%M")


def _frame(times: Sequence[datetime], peak: float, unit: str) -> list[str]:
    """Axes, grid lines and labels of a chart whose y axis tops at ``peak``."""
    parts = []
    plot_h = HEIGHT - TOP - BOTTOM
    for step in range(5):
        y = TOP + plot_h - plot_h * step / 4
        parts.append(
            f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" '
            f'x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>'
        )
        label = short_number(peak * step / 4)
        parts.append(
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" '
            f'text-anchor="end">{escape(label)}</text>'
        )
    if unit:
        parts.append(f'<text class="unit" x="4" y="{TOP + 4}">{escape(unit)}</text>')
    if times:
        picks = sorted({0, len(times) // 2, len(times) - 1})
        for index in picks:
            x = _x(index, len(times))
            anchor = "middle"
            if len(picks) > 1 and index in (picks[0], picks[-1]):
                anchor = "start" if index == picks[0] else "end"
            parts.append(
                f'<text class="tick" x="{x:.1f}" y="{HEIGHT - 6}" '
                f'text-anchor="{anchor}">{_time_label(times[index])}</text>'
            )
    return parts


def _x(index: int, count: int) -> float:
    plot_w = WIDTH - LEFT - RIGHT
    if count <= 1:
        return LEFT + plot_w / 2
    return LEFT + plot_w * index / (count - 1)


def _y(value: float, peak: float) -> float:
    plot_h = HEIGHT - TOP - BOTTOM
    return TOP + plot_h - plot_h * min(value, peak) / peak


def _svg(label: str, body: list[str], legend: Sequence[tuple[str, str]]) -> str:
    keys = "".join(
        f'<span class="key"><svg class="swatch" viewBox="0 0 10 10" aria-hidden="true">'
        f'<rect class="{css}" width="10" height="10"/></svg>{escape(text)}</span>'
        for text, css in legend
    )
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)}"><title>{escape(label)}</title>'
        + "".join(body)
        + "</svg>"
        + (f'<div class="legend">{keys}</div>' if len(legend) > 1 else "")
    )


def line_chart(
    label: str, times: Sequence[datetime], lines: Sequence[Line], unit: str = ""
) -> str:
    """Lines over time; a gap where a value is ``None``."""
    finite = [v for line in lines for v in line.values if v is not None]
    peak = nice_ceiling(max(finite, default=0.0))
    body = _frame(times, peak, unit)
    if not times:
        body.append(_empty())
    for line in lines:
        runs: list[list[str]] = [[]]
        for index, value in enumerate(line.values):
            if value is None or not math.isfinite(value):
                runs.append([])
                continue
            runs[-1].append(f"{_x(index, len(times)):.1f},{_y(value, peak):.1f}")
        for run in runs:
            if len(run) == 1:
                x, y = run[0].split(",")
                body.append(f'<circle class="{line.css} dot" cx="{x}" cy="{y}" r="2"/>')
            elif run:
                body.append(
                    f'<polyline class="{line.css} line" points="{" ".join(run)}"/>'
                )
    return _svg(label, body, [(line.label, line.css) for line in lines])


def stacked_bars(
    label: str, times: Sequence[datetime], stacks: Sequence[Line], unit: str = ""
) -> str:
    """One bar per time, its parts stacked in the order of ``stacks``."""
    totals = [
        sum(stack.values[i] or 0.0 for stack in stacks) for i in range(len(times))
    ]
    peak = nice_ceiling(max(totals, default=0.0))
    body = _frame(times, peak, unit)
    if not times:
        body.append(_empty())
    plot_w = WIDTH - LEFT - RIGHT
    slot = plot_w / max(len(times), 1)
    bar = max(slot * 0.8, 0.5)
    for index in range(len(times)):
        base = 0.0
        x = LEFT + slot * index + (slot - bar) / 2
        for stack in stacks:
            value = stack.values[index] or 0.0
            if value <= 0:
                continue
            top, bottom = _y(base + value, peak), _y(base, peak)
            body.append(
                f'<rect class="{stack.css}" x="{x:.1f}" y="{top:.1f}" '
                f'width="{bar:.2f}" height="{max(bottom - top, 0.1):.1f}"/>'
            )
            base += value
    return _svg(label, body, [(stack.label, stack.css) for stack in stacks])


@dataclass(frozen=True)
class Span:
    """One incident on the alert timeline."""

    label: str
    start: datetime
    end: datetime | None
    css: str


def timeline(
    label: str, start: datetime | None, end: datetime | None, spans: Sequence[Span]
) -> str:
    """Incidents as bars on a time axis from ``start`` to ``end``, one row each.

    An open incident (no end yet) runs to the right edge.
    """
    rows = max(len(spans), 1)
    row_h = 18
    height = TOP + rows * row_h + BOTTOM
    body: list[str] = []
    if start is None or end is None or end <= start:
        body.append(_empty(height, width=TIMELINE_WIDTH))
    else:
        whole = (end - start).total_seconds()
        plot_w = TIMELINE_WIDTH - LEFT - RIGHT

        def x_of(moment: datetime) -> float:
            share = (moment - start).total_seconds() / whole
            return LEFT + plot_w * min(max(share, 0.0), 1.0)

        for index, span in enumerate(spans):
            y = TOP + index * row_h
            left = x_of(span.start)
            right = x_of(span.end) if span.end is not None else LEFT + plot_w
            body.append(
                f'<rect class="{span.css}" x="{left:.1f}" y="{y + 3}" '
                f'width="{max(right - left, 3):.1f}" height="{row_h - 6}" rx="2">'
                f"<title>{escape(span.label)}</title></rect>"
            )
            body.append(
                f'<text class="tick" x="{LEFT - 6}" y="{y + row_h - 5}" '
                f'text-anchor="end">{_time_label(span.start)}</text>'
            )
        for moment, anchor in ((start, "start"), (end, "end")):
            body.append(
                f'<text class="tick" x="{x_of(moment):.1f}" y="{height - 6}" '
                f'text-anchor="{anchor}">{_time_label(moment)}</text>'
            )
        if not spans:
            body.append(_empty(height, "no alerts", TIMELINE_WIDTH))
    return (
        f'<svg class="chart timeline" viewBox="0 0 {TIMELINE_WIDTH} {height}" '
        'role="img" '
        f'aria-label="{escape(label)}"><title>{escape(label)}</title>'
        + "".join(body)
        + "</svg>"
    )


def bar(value: float, peak: float) -> str:
    """A small horizontal bar for a table cell, ``value`` of ``peak``."""
    share = value / peak if peak > 0 else 0.0
    width = max(100 * min(share, 1.0), 0.5)
    return (
        '<svg class="cellbar" viewBox="0 0 100 8" preserveAspectRatio="none" '
        f'aria-hidden="true"><rect class="s-bar" width="{width:.1f}" height="8"/></svg>'
    )


def _empty(height: int = HEIGHT, text: str = "no data yet", width: int = WIDTH) -> str:
    return (
        f'<text class="empty" x="{width / 2}" y="{height / 2}" '
        f'text-anchor="middle">{text}</text>'
    )
