"""Precision and recall of the built-in rules on generated web incidents.

Usage, from the repository root::

    .venv/bin/python -m benchmarks.benchmark_incidents [--seeds 10] [--json out.json]

For each seed, ``logweir gen`` writes a log in ``combined-duration`` format
with the five default incidents (traffic x5 for 3 min, 5xx at 10 % for
2 min, latency x3 for 5 min, one client scanning at 50 requests/s, traffic
at 20 % for 5 min), which is parsed, cut into 1-minute windows and run
through the alert engine with its defaults. An incident is *found* when an
alert of the rule that should see it opens within two windows of the
incident's start; an alert that matches no incident is a false positive.
Then one seeded day of normal traffic with daily seasonality (2 requests/s
on average) counts the alerts a quiet day raises.

Precision of a rule = alerts matching an incident / alerts of that rule;
recall of an incident type = incidents found / incidents injected.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from logweir.detectors.alerts import Alert
from logweir.detectors.engine import AlertEngine
from logweir.formats.registry import compile_format
from logweir.gen import (
    COMBINED_DURATION_LOGFORMAT,
    DEFAULT_INCIDENTS,
    Incident,
    generate,
)
from logweir.gen.incidents import IncidentLabel
from logweir.schema import LineBatch
from logweir.windows import WindowAggregator

#: The rule that should report each kind of incident.
EXPECTED_RULE = {
    "traffic_spike": "traffic_spike",
    "traffic_drop": "traffic_drop",
    "error_rate": "error_5xx_spike",
    "latency": "latency_regression",
    "scanner": "client_4xx_storm",
}
WINDOW_S = 60
#: How late (in windows after the incident's start) an alert may open.
TOLERANCE_WINDOWS = 2


@dataclass(frozen=True)
class Run:
    labels: tuple[IncidentLabel, ...]
    alerts: list[Alert]
    lines: int
    seconds: float


def windows_of(log: bytes) -> pl.DataFrame:
    """Parse a generated combined-duration log and cut it into 1-minute windows."""
    parser = compile_format(COMBINED_DURATION_LOGFORMAT)
    text = log.decode("utf-8", "replace").split("\n")
    if text and text[-1] == "":
        text.pop()
    events = parser.parse(LineBatch.from_strings("gen", text)).events
    aggregator = WindowAggregator("1m")
    aggregator.update(events)
    return aggregator.finish()


def run(
    seed: int,
    incidents: Sequence[Incident],
    lines: int,
    rate_per_s: float = 30.0,
    seasonal: bool = False,
) -> Run:
    """Generate, window and detect one scenario; all alert events, in order."""
    started = time.perf_counter()
    out = io.BytesIO()
    result = generate(
        lines,
        out,
        fmt="combined-duration",
        seed=seed,
        rate_per_s=rate_per_s,
        incidents=incidents,
        seasonal=seasonal,
    )
    windows = windows_of(out.getvalue())
    engine = AlertEngine()
    alerts = engine.update(windows)
    alerts.extend(engine.finish())
    return Run(result.incidents, alerts, result.lines, time.perf_counter() - started)


def opened(alerts: list[Alert]) -> list[Alert]:
    """One alert per incident: its opening event."""
    return [alert for alert in alerts if alert.status == "open"]


def match(label: IncidentLabel, alerts: list[Alert]) -> list[Alert]:
    """The alerts of the expected rule that open within tolerance of ``label``."""
    rule = EXPECTED_RULE[label.kind]
    latest = label.start + timedelta(seconds=WINDOW_S * TOLERANCE_WINDOWS)
    first_window = _window_start(label.start)
    return [
        alert
        for alert in opened(alerts)
        if alert.rule == rule and first_window <= alert.start <= latest
    ]


def _window_start(moment: datetime) -> datetime:
    return moment - timedelta(seconds=moment.timestamp() % WINDOW_S)


def incidents_needed_lines(rate_per_s: float) -> int:
    """Lines that cover the default incidents (67 min) and a few quiet minutes.

    The spike and the scanner add requests and the drop removes some: 85
    minutes' worth of ordinary lines last about 72 minutes.
    """
    return int(rate_per_s * 85 * 60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--json", help="write the counts here")
    args = parser.parse_args(argv)
    found: Counter[str] = Counter()
    injected: Counter[str] = Counter()
    true_alerts: Counter[str] = Counter()
    all_alerts: Counter[str] = Counter()
    quiet_alerts: list[int] = []
    seconds = 0.0
    for seed in range(args.seeds):
        scenario = run(seed, DEFAULT_INCIDENTS, incidents_needed_lines(30.0))
        seconds += scenario.seconds
        matched: set[str] = set()
        for label in scenario.labels:
            injected[label.kind] += 1
            hits = match(label, scenario.alerts)
            found[label.kind] += bool(hits)
            matched.update(alert.id for alert in hits)
        for alert in opened(scenario.alerts):
            all_alerts[alert.rule] += 1
            true_alerts[alert.rule] += alert.id in matched
        day = run(seed, (), 2 * 86_400, rate_per_s=2.0, seasonal=True)
        seconds += day.seconds
        quiet_alerts.append(len(opened(day.alerts)))
        print(
            f"seed {seed}: {dict(found)} quiet-day alerts {quiet_alerts[-1]}",
            file=sys.stderr,
        )
    print("| incident | rule | recall | precision of the rule |")
    print("| --- | --- | ---: | ---: |")
    for kind, rule in EXPECTED_RULE.items():
        recall = found[kind] / injected[kind] if injected[kind] else float("nan")
        precision = (
            true_alerts[rule] / all_alerts[rule] if all_alerts[rule] else float("nan")
        )
        print(
            f"| {kind} | {rule} | {found[kind]}/{injected[kind]} = {recall:.2f} "
            f"| {true_alerts[rule]}/{all_alerts[rule]} = {precision:.2f} |"
        )
    others = {r: n for r, n in all_alerts.items() if r not in EXPECTED_RULE.values()}
    print(f"\nother alerts during incident runs: {others or 'none'}")
    print(
        "quiet days (24 h, daily seasonality, 2 req/s): alerts per day "
        f"{quiet_alerts}; "
        f"{seconds:.0f} s in all"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(
                {
                    "found": found,
                    "injected": injected,
                    "true_alerts": true_alerts,
                    "all_alerts": all_alerts,
                    "quiet_alerts": quiet_alerts,
                },
                handle,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
