"""Alerts: one per incident (dedup, cooldown), and a line that explains it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from logweir.detectors.alerts import Finding, IncidentTracker, alert_id, format_span
from logweir.detectors.engine import AlertEngine

T0 = datetime(2024, 5, 1, 14, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def finding(score: float = 8.0, key: str = "") -> Finding:
    return Finding(
        rule="error_5xx_spike",
        key=key,
        series="share_5xx",
        detector="robust_zscore",
        value=0.1,
        baseline=0.01,
        spread=0.005,
        score=score,
        severity="warning" if score < 12 else "critical",
        summary=f"score {score}",
    )


def feed(tracker: IncidentTracker, pattern: str) -> list:
    """One window per character: ``x`` anomalous, ``.`` quiet."""
    alerts = []
    for i, mark in enumerate(pattern):
        start = T0 + i * MINUTE
        alerts += tracker.observe(
            start, start + MINUTE, [finding(8.0 + i)] if mark == "x" else []
        )
    return alerts


def test_an_incident_is_one_alert_opened_then_resolved() -> None:
    alerts = feed(IncidentTracker(cooldown_windows=3), "..xxx....")
    assert [a.status for a in alerts] == ["open", "resolved"]
    opened, resolved = alerts
    assert opened.id == resolved.id == "error_5xx_spike:20240501T140200Z"
    assert (opened.start, opened.end, opened.windows) == (
        T0 + 2 * MINUTE,
        T0 + 3 * MINUTE,
        1,
    )
    assert (resolved.start, resolved.end, resolved.windows) == (
        T0 + 2 * MINUTE,
        T0 + 5 * MINUTE,
        3,
    )
    # the peak is the most extreme window; severity escalated with it
    assert resolved.window_start == T0 + 4 * MINUTE and resolved.score == 12.0
    assert resolved.severity == "critical"
    assert resolved.message == "resolved: score 12.0; incident 14:02–14:05, 3 windows"


def test_a_finding_within_the_cooldown_continues_the_incident() -> None:
    alerts = feed(IncidentTracker(cooldown_windows=3), "xx..x.....")
    assert [a.status for a in alerts] == ["open", "resolved"]
    assert alerts[1].windows == 3 and alerts[1].end == T0 + 5 * MINUTE


def test_after_the_cooldown_a_new_incident_opens() -> None:
    alerts = feed(IncidentTracker(cooldown_windows=2), "x..x..")
    assert [a.status for a in alerts] == ["open", "resolved", "open", "resolved"]
    assert alerts[0].id != alerts[2].id


def test_finish_resolves_open_incidents() -> None:
    tracker = IncidentTracker(cooldown_windows=3)
    assert [a.status for a in feed(tracker, "xx")] == ["open"]
    assert [a.status for a in tracker.finish()] == ["resolved"]
    assert tracker.finish() == []


def test_keys_are_separate_incidents() -> None:
    tracker = IncidentTracker()
    alerts = tracker.observe(
        T0, T0 + MINUTE, [finding(key="1.2.3.4"), finding(key="5.6.7.8")]
    )
    assert len({a.id for a in alerts}) == 2
    assert alert_id("r", "1.2.3.4", T0).startswith("r:20240501T140000Z:")


def test_tracker_state_round_trip() -> None:
    tracker = IncidentTracker(cooldown_windows=3)
    feed(tracker, "xx")
    restored = IncidentTracker.from_state(tracker.state())
    start = T0 + 5 * MINUTE
    later = [
        restored.observe(start + i * MINUTE, start + (i + 1) * MINUTE, [])
        for i in range(3)
    ]
    assert later[2][0].status == "resolved" and later[2][0].windows == 2


def test_span_shows_seconds_only_when_needed() -> None:
    assert format_span(T0, T0 + MINUTE) == "14:00–14:01"
    assert format_span(T0, T0 + timedelta(seconds=10)) == "14:00:00–14:00:10"


def test_alert_line_names_series_value_and_baseline(window_frame) -> None:
    # 30 quiet minutes at 0.6 % 5xx of 1000 requests, then 12.4 %
    rows = [
        {"start": T0 + i * MINUTE, "requests": 1000, "status_5xx": 6, "p95": 100.0}
        for i in range(30)
    ]
    rows.append(
        {"start": T0 + 30 * MINUTE, "requests": 1000, "status_5xx": 124, "p95": 100.0}
    )
    # the newest window is judged once a later one has come
    rows.append(
        {"start": T0 + 31 * MINUTE, "requests": 1000, "status_5xx": 124, "p95": 100.0}
    )
    alerts = AlertEngine().update(window_frame(rows))
    assert [(a.rule, a.status) for a in alerts] == [("error_5xx_spike", "open")]
    alert = alerts[0]
    # A flat history has no spread; the floor is the binomial noise of
    # 1000 requests at 0.6 %: sqrt(0.006 * 0.994 / 1000) = 0.24 points.
    assert (
        alert.message == "5xx share 12.4 % in 14:30–14:31 against a usual 0.6 % ± 0.2"
    )
    assert "5xx share" in alert.message and "12.4 %" in alert.message
    assert "usual 0.6 %" in alert.message
    assert alert.series == "share_5xx" and alert.detector == "robust_zscore"
    assert alert.value == pytest.approx(0.124) and alert.baseline == pytest.approx(
        0.006
    )
    assert alert.score == pytest.approx((0.124 - 0.006) / (0.006 * 0.994 / 1000) ** 0.5)
    assert alert.severity == "critical"
    record = alert.to_record()
    assert record["window_start"] == "2024-05-01T14:30:00+00:00"
    assert record["status"] == "open"
