"""Alerts: one per incident, with a start, an end and a line to read.

A rule that finds a window anomalous gives a :class:`Finding` for one key
(``""`` for the overall series, a client address, a user agent …). The
:class:`IncidentTracker` folds findings into incidents, per rule and key:

* the first anomalous window opens an incident and yields an :class:`Alert`
  with ``status == "open"``;
* further anomalous windows extend it silently, keeping the most extreme
  window as its peak;
* after ``cooldown_windows`` windows in a row without a finding the
  incident closes and yields the same alert (same ``id``) with
  ``status == "resolved"``, its ``end`` and its peak. A finding within the
  cooldown continues the incident instead of opening a new one.

So an outage of ten minutes is one alert, opened at once and resolved when
it is over, never ten. Outputs that keep one row per alert upsert by
``id``; outputs that append (JSON lines, the terminal) show both events.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

Severity = Literal["warning", "critical"]
Status = Literal["open", "resolved"]
_SEVERITY_RANK = {"warning": 0, "critical": 1}


@dataclass(frozen=True)
class Finding:
    """A rule's verdict that one window is anomalous for one key.

    ``summary`` is the alert line for this window alone, e.g.
    ``5xx share 12.4 % in 14:05–14:06 against a usual 0.6 % ± 0.3``.
    ``detail`` holds JSON-ready extras (the client, the user agent …).
    """

    rule: str
    key: str
    series: str
    detector: str
    value: float
    baseline: float
    spread: float
    score: float
    severity: Severity
    summary: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Alert:
    """One incident, as outputs see it.

    ``start`` / ``end`` bound the incident (the first anomalous window's
    start, the last one's end); ``window_start`` / ``window_end`` are the
    peak window, the one ``value``, ``baseline``, ``spread`` and ``score``
    describe. ``windows`` counts the anomalous windows so far.
    """

    id: str
    status: Status
    rule: str
    series: str
    key: str
    detector: str
    severity: Severity
    start: datetime
    end: datetime
    window_start: datetime
    window_end: datetime
    value: float
    baseline: float
    spread: float
    score: float
    windows: int
    message: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601 UTC text)."""
        return {
            "id": self.id,
            "status": self.status,
            "rule": self.rule,
            "series": self.series,
            "key": self.key,
            "detector": self.detector,
            "severity": self.severity,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "window_start": _iso(self.window_start),
            "window_end": _iso(self.window_end),
            "value": self.value,
            "baseline": self.baseline,
            "spread": self.spread,
            "score": self.score,
            "windows": self.windows,
            "message": self.message,
            "detail": self.detail,
        }


@dataclass
class _Incident:
    """An open incident: where it started, how far it went, its worst window."""

    start: datetime
    end: datetime
    peak: Finding
    peak_start: datetime
    peak_end: datetime
    windows: int = 1
    quiet: int = 0
    severity: Severity = "warning"

    def to_state(self) -> dict[str, Any]:
        peak = self.peak
        return {
            "start": _iso(self.start),
            "end": _iso(self.end),
            "peak_start": _iso(self.peak_start),
            "peak_end": _iso(self.peak_end),
            "windows": self.windows,
            "quiet": self.quiet,
            "severity": self.severity,
            "peak": {
                "rule": peak.rule,
                "key": peak.key,
                "series": peak.series,
                "detector": peak.detector,
                "value": peak.value,
                "baseline": peak.baseline,
                "spread": peak.spread,
                "score": peak.score,
                "severity": peak.severity,
                "summary": peak.summary,
                "detail": peak.detail,
            },
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> _Incident:
        return cls(
            start=datetime.fromisoformat(state["start"]),
            end=datetime.fromisoformat(state["end"]),
            peak=Finding(**state["peak"]),
            peak_start=datetime.fromisoformat(state["peak_start"]),
            peak_end=datetime.fromisoformat(state["peak_end"]),
            windows=int(state["windows"]),
            quiet=int(state["quiet"]),
            severity=state["severity"],
        )


class IncidentTracker:
    """Dedup and cooldown: findings in, one alert per incident out."""

    def __init__(self, cooldown_windows: int = 3) -> None:
        if cooldown_windows < 1:
            raise ValueError("cooldown_windows must be >= 1")
        self.cooldown_windows = cooldown_windows
        self._open: dict[tuple[str, str], _Incident] = {}

    @property
    def open_count(self) -> int:
        return len(self._open)

    def observe(
        self, start: datetime, end: datetime, findings: list[Finding]
    ) -> list[Alert]:
        """Fold one window's findings in; give the alerts opened or resolved.

        Call once per window, in time order, also for windows without
        findings: they are what lets open incidents cool down and close.
        """
        alerts: list[Alert] = []
        seen: set[tuple[str, str]] = set()
        for finding in findings:
            ident = (finding.rule, finding.key)
            seen.add(ident)
            incident = self._open.get(ident)
            if incident is None:
                incident = _Incident(
                    start, end, finding, start, end, severity=finding.severity
                )
                self._open[ident] = incident
                alerts.append(_alert(incident, "open"))
                continue
            incident.end = end
            incident.windows += 1
            incident.quiet = 0
            if _SEVERITY_RANK[finding.severity] > _SEVERITY_RANK[incident.severity]:
                incident.severity = finding.severity
            if abs(finding.score) > abs(incident.peak.score):
                incident.peak, incident.peak_start, incident.peak_end = (
                    finding,
                    start,
                    end,
                )
        for ident in [i for i in self._open if i not in seen]:
            incident = self._open[ident]
            incident.quiet += 1
            if incident.quiet >= self.cooldown_windows:
                del self._open[ident]
                alerts.append(_alert(incident, "resolved"))
        return alerts

    def finish(self) -> list[Alert]:
        """Resolve every open incident (the input ended)."""
        alerts = [_alert(incident, "resolved") for incident in self._open.values()]
        self._open.clear()
        return alerts

    def state(self) -> dict[str, Any]:
        return {
            "cooldown_windows": self.cooldown_windows,
            "open": [
                {"rule": rule, "key": key, "incident": incident.to_state()}
                for (rule, key), incident in self._open.items()
            ],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> IncidentTracker:
        tracker = cls(int(state["cooldown_windows"]))
        for entry in state["open"]:
            tracker._open[(entry["rule"], entry["key"])] = _Incident.from_state(
                entry["incident"]
            )
        return tracker


def alert_id(rule: str, key: str, start: datetime) -> str:
    """Stable id of an incident: rule, start and (hashed) key.

    Replaying the same windows gives the same ids, so outputs that upsert
    by id stay idempotent.
    """
    stamp = start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    if not key:
        return f"{rule}:{stamp}"
    digest = hashlib.sha1(key.encode("utf-8"), usedforsecurity=False).hexdigest()[:10]
    return f"{rule}:{stamp}:{digest}"


def _alert(incident: _Incident, status: Status) -> Alert:
    peak = incident.peak
    message = peak.summary
    if status == "resolved":
        span = format_span(incident.start, incident.end)
        count = incident.windows
        message = (
            f"resolved: {message}; incident {span}, {count} window{'s' * (count > 1)}"
        )
    return Alert(
        id=alert_id(peak.rule, peak.key, incident.start),
        status=status,
        rule=peak.rule,
        series=peak.series,
        key=peak.key,
        detector=peak.detector,
        severity=incident.severity,
        start=incident.start,
        end=incident.end,
        window_start=incident.peak_start,
        window_end=incident.peak_end,
        value=peak.value,
        baseline=peak.baseline,
        spread=peak.spread,
        score=peak.score,
        windows=incident.windows,
        message=message,
        detail=dict(peak.detail),
    )


def with_detail(finding: Finding, **extra: Any) -> Finding:
    """``finding`` with more detail entries."""
    return replace(finding, detail={**finding.detail, **extra})


# -- formatting --------------------------------------------------------------


def format_span(start: datetime, end: datetime) -> str:
    """``14:05–14:06``; with seconds when the bounds are not whole minutes."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    whole = start.second == 0 and end.second == 0
    pattern = "%H:%M" if whole else "%H:%M:%S"
    return f"{start.strftime(pattern)}–{end.strftime(pattern)}"


def format_number(value: float) -> str:
    """Three significant digits or so, never in scientific notation."""
    magnitude = abs(value)
    if magnitude == 0:
        return "0"
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def format_bytes(value: float) -> str:
    """``1.2 MB`` style, decimal units."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{format_number(value)} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()
