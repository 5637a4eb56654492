"""End to end: ``logweir gen`` incidents, parsed, windowed, detected.

The generated log (seeded, combined format with response times) carries
the five default incidents: traffic x5 for 3 minutes, 5xx at 10 % for 2
minutes, latency x3 for 5 minutes, one client scanning at 50 requests/s
(mostly 404s), traffic down to 20 % for 5 minutes. Each must come out as
exactly one alert, of the rule meant for it, opening within two 1-minute
windows of the incident's start, and nothing else may alert.
"""

from __future__ import annotations

import io
from datetime import timedelta

import pytest

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

EXPECTED_RULE = {
    "traffic_spike": "traffic_spike",
    "traffic_drop": "traffic_drop",
    "error_rate": "error_5xx_spike",
    "latency": "latency_regression",
    "scanner": "client_4xx_storm",
}


def detect(
    seed: int, lines: int, incidents: tuple[Incident, ...] = (), **options: object
) -> tuple[tuple[IncidentLabel, ...], list[Alert]]:
    out = io.BytesIO()
    result = generate(
        lines, out, fmt="combined-duration", seed=seed, incidents=incidents, **options
    )
    text = out.getvalue().decode("utf-8", "replace").split("\n")[:-1]
    events = (
        compile_format(COMBINED_DURATION_LOGFORMAT)
        .parse(LineBatch.from_strings("gen", text))
        .events
    )
    aggregator = WindowAggregator("1m")
    aggregator.update(events)
    engine = AlertEngine()
    alerts = engine.update(aggregator.finish()) + engine.finish()
    return result.incidents, [alert for alert in alerts if alert.status == "open"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [7, 8])
def test_every_incident_is_one_alert_within_two_windows(seed: int) -> None:
    labels, alerts = detect(seed, 153_000, DEFAULT_INCIDENTS)
    assert [label.kind for label in labels] == [
        "traffic_spike",
        "error_rate",
        "latency",
        "scanner",
        "traffic_drop",
    ]
    for label in labels:
        first_window = label.start.replace(second=0, microsecond=0)
        latest = label.start + timedelta(minutes=2)
        found = [
            alert
            for alert in alerts
            if alert.rule == EXPECTED_RULE[label.kind]
            and first_window <= alert.start <= latest
        ]
        assert len(found) == 1, f"{label.kind}: {[a.message for a in alerts]}"
        if label.kind == "scanner":
            assert found[0].key == label.client_ip
    assert len(alerts) == len(labels), [a.message for a in alerts]


@pytest.mark.slow
def test_a_day_of_normal_seasonal_traffic_raises_at_most_one_alert() -> None:
    _, alerts = detect(7, 2 * 86_400, rate_per_s=2.0, seasonal=True)
    assert len(alerts) <= 1, [a.message for a in alerts]
