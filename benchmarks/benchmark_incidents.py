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

The same runs with the incidents at about half strength (traffic x2.5,
5xx at 5 %, latency x1.8, a scanner at 10 requests/s, traffic at 50 %)
show where the rules stop. Precision of a rule = alerts matching an
incident / alerts of that rule; recall of an incident type = incidents
found / incidents injected.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
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
#: The same incidents at about half strength, to show where the rules stop.
WEAK_INCIDENTS = tuple(
    Incident(incident.kind, incident.offset_s, incident.duration_s, magnitude)
    for incident, magnitude in zip(
        DEFAULT_INCIDENTS, (2.5, 0.05, 1.8, 10.0, 0.5), strict=True
    )
)
WINDOW_S = 60
#: How late (in windows after the incident's start) an alert may open.
TOLERANCE_WINDOWS = 2


@dataclass(frozen=True)
class Run:
    labels: tuple[IncidentLabel, ...]
    alerts: list[Alert]
    lines: int
    seconds: float
    #: time in the alert engine alone, and the windows it judged
    engine_s: float
    windows: int
    state_bytes: int


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
    judging = time.perf_counter()
    alerts = engine.update(windows)
    alerts.extend(engine.finish())
    engine_s = time.perf_counter() - judging
    count = windows.filter(pl.col("dimension") == "all").height
    state = len(json.dumps(engine.state()))
    return Run(
        result.incidents,
        alerts,
        result.lines,
        time.perf_counter() - started,
        engine_s,
        count,
        state,
    )


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


@dataclass
class Tally:
    """Counts over seeds for one set of incidents."""

    found: Counter[str] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)
    true_alerts: Counter[str] = field(default_factory=Counter)
    all_alerts: Counter[str] = field(default_factory=Counter)

    def add(self, scenario: Run) -> None:
        matched: set[str] = set()
        for label in scenario.labels:
            self.injected[label.kind] += 1
            hits = match(label, scenario.alerts)
            self.found[label.kind] += bool(hits)
            matched.update(alert.id for alert in hits)
        for alert in opened(scenario.alerts):
            self.all_alerts[alert.rule] += 1
            self.true_alerts[alert.rule] += alert.id in matched

    def table(self, title: str, incidents: Sequence[Incident]) -> str:
        lines = [
            f"{title}",
            "",
            "| incident | magnitude | rule | recall | precision of the rule |",
            "| --- | --- | --- | ---: | ---: |",
        ]
        for incident in incidents:
            kind, rule = incident.kind, EXPECTED_RULE[incident.kind]
            found, injected = self.found[kind], self.injected[kind]
            true, alerts = self.true_alerts[rule], self.all_alerts[rule]
            recall = f"{found}/{injected} = {found / injected:.2f}" if injected else "-"
            precision = (
                f"{true}/{alerts} = {true / alerts:.2f}" if alerts else "no alerts"
            )
            lines.append(
                f"| {kind} | {incident.strength:g} | {rule} | {recall} | {precision} |"
            )
        others = {
            r: n for r, n in self.all_alerts.items() if r not in EXPECTED_RULE.values()
        }
        lines.append(f"\nother alerts: {others or 'none'}")
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--json", help="write the counts here")
    args = parser.parse_args(argv)
    tallies = {"default": Tally(), "weak": Tally()}
    scenarios = {"default": DEFAULT_INCIDENTS, "weak": WEAK_INCIDENTS}
    quiet_alerts: list[int] = []
    engine_s, windows, state_bytes = 0.0, 0, 0
    started = time.perf_counter()
    for seed in range(args.seeds):
        for name, incidents in scenarios.items():
            tallies[name].add(run(seed, incidents, incidents_needed_lines(30.0)))
        day = run(seed, (), 2 * 86_400, rate_per_s=2.0, seasonal=True)
        quiet_alerts.append(len(opened(day.alerts)))
        engine_s, windows = engine_s + day.engine_s, windows + day.windows
        state_bytes = max(state_bytes, day.state_bytes)
        print(f"seed {seed}: quiet-day alerts {quiet_alerts[-1]}", file=sys.stderr)
    print(tallies["default"].table("Default incidents:", DEFAULT_INCIDENTS))
    print()
    print(tallies["weak"].table("Weaker incidents:", WEAK_INCIDENTS))
    print(
        "\nquiet days (24 h, daily seasonality, 2 req/s): alerts per day "
        f"{quiet_alerts}; {time.perf_counter() - started:.0f} s in all"
    )
    print(
        f"alert engine on the quiet days: {1000 * engine_s / windows:.2f} ms per "
        f"1-minute window, engine state at most {state_bytes / 1000:.0f} kB of JSON"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            data = {name: vars(tally) for name, tally in tallies.items()}
            json.dump({**data, "quiet_alerts": quiet_alerts}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
