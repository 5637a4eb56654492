"""Incidents the generator can inject, and the labels it writes for them.

An :class:`Incident` says what goes wrong, when (seconds after the start of
the generated log) and for how long. Kinds and what their ``magnitude``
means:

=================  ==========================================  =========
kind               effect on the traffic                       default
=================  ==========================================  =========
``traffic_spike``  request rate multiplied by the magnitude    5.0
``traffic_drop``   request rate multiplied by the magnitude    0.2
``error_rate``     this share of requests answered 5xx         0.10
``latency``        response times multiplied by the magnitude  3.0
``scanner``        one new client probing for files, at this   50.0
                   many requests per second, mostly 404s
=================  ==========================================  =========

On the command line an incident is ``KIND@OFFSET/DURATION[:MAGNITUDE]``,
e.g. ``error_rate@30m/2m`` or ``scanner@1h5m/90s:20``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from logweir.errors import ConfigError

IncidentKind = Literal[
    "traffic_spike", "traffic_drop", "error_rate", "latency", "scanner"
]
INCIDENT_KINDS: tuple[IncidentKind, ...] = get_args(IncidentKind)

DEFAULT_MAGNITUDE: dict[IncidentKind, float] = {
    "traffic_spike": 5.0,
    "traffic_drop": 0.2,
    "error_rate": 0.10,
    "latency": 3.0,
    "scanner": 50.0,
}


@dataclass(frozen=True)
class Incident:
    """An incident to inject, relative to the start of the log."""

    kind: IncidentKind
    offset_s: int
    duration_s: int
    magnitude: float | None = None

    @property
    def strength(self) -> float:
        """The magnitude, or the kind's default."""
        if self.magnitude is not None:
            return self.magnitude
        return DEFAULT_MAGNITUDE[self.kind]

    @property
    def end_s(self) -> int:
        return self.offset_s + self.duration_s

    def spec(self) -> str:
        """The incident as the command line writes it."""
        text = f"{self.kind}@{format_duration(self.offset_s)}/"
        text += format_duration(self.duration_s)
        if self.magnitude is not None:
            text += f":{self.magnitude:g}"
        return text


#: What ``logweir gen --incidents`` injects: the five kinds, one after
#: another, with 20 minutes of normal traffic first so that detectors have
#: a baseline, and 7 to 8 quiet minutes between them. It spans 67 minutes.
DEFAULT_INCIDENTS: tuple[Incident, ...] = (
    Incident("traffic_spike", 20 * 60, 3 * 60),
    Incident("error_rate", 30 * 60, 2 * 60),
    Incident("latency", 40 * 60, 5 * 60),
    Incident("scanner", 52 * 60, 3 * 60),
    Incident("traffic_drop", 62 * 60, 5 * 60),
)


@dataclass(frozen=True)
class IncidentLabel:
    """An injected incident as it lies in the generated log.

    ``start`` and ``end`` are aware UTC datetimes (end excluded).
    ``client_ip`` is the scanner's address for a ``scanner`` incident.
    ``observable`` is false when the format cannot show the effect (a
    latency incident in a format without response times).
    """

    kind: IncidentKind
    start: datetime
    end: datetime
    magnitude: float
    client_ip: str | None
    observable: bool

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "magnitude": self.magnitude,
            "client_ip": self.client_ip,
            "observable": self.observable,
            "description": describe(self.kind, self.magnitude),
        }


def describe(kind: IncidentKind, magnitude: float) -> str:
    """One line a person reads: what the incident did."""
    if kind in ("traffic_spike", "traffic_drop"):
        return f"request rate x{magnitude:g}"
    if kind == "error_rate":
        return f"{magnitude:.0%} of requests answered 5xx"
    if kind == "latency":
        return f"response times x{magnitude:g}"
    return f"one client probing for files at {magnitude:g} requests/s, mostly 404"


_SPEC = re.compile(
    r"^(?P<kind>[a-z_]+)@(?P<offset>[0-9hms.]+)/(?P<duration>[0-9hms.]+)"
    r"(?::(?P<magnitude>[0-9.]+))?$"
)
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$")


def parse_incident(text: str) -> Incident:
    """Parse ``KIND@OFFSET/DURATION[:MAGNITUDE]``; raise :class:`ConfigError`.

    >>> parse_incident("latency@40m/5m:2.5")
    Incident(kind='latency', offset_s=2400, duration_s=300, magnitude=2.5)
    """
    match = _SPEC.match(text.strip())
    if match is None:
        raise ConfigError(
            f"bad incident {text!r}: write KIND@OFFSET/DURATION[:MAGNITUDE], "
            "e.g. error_rate@30m/2m or scanner@1h/90s:20"
        )
    kind = match["kind"]
    if kind not in INCIDENT_KINDS:
        raise ConfigError(
            f"bad incident {text!r}: unknown kind {kind!r} "
            f"(known: {', '.join(INCIDENT_KINDS)})"
        )
    offset_s = parse_duration(match["offset"], f"incident {text!r}")
    duration_s = parse_duration(match["duration"], f"incident {text!r}")
    if duration_s == 0:
        raise ConfigError(f"bad incident {text!r}: its duration is zero")
    magnitude = None
    if match["magnitude"] is not None:
        magnitude = _parse_magnitude(kind, match["magnitude"], text)
    return Incident(kind, offset_s, duration_s, magnitude)


def _parse_magnitude(kind: str, raw: str, text: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(
            f"bad incident {text!r}: magnitude {raw!r} is not a number"
        ) from None
    if value <= 0 or (kind == "error_rate" and value > 1):
        allowed = "a share in (0, 1]" if kind == "error_rate" else "above 0"
        raise ConfigError(f"bad incident {text!r}: the magnitude must be {allowed}")
    return value


def parse_duration(text: str, what: str = "duration") -> int:
    """Seconds in ``90``, ``90s``, ``5m``, ``1h30m``; raise :class:`ConfigError`."""
    match = _DURATION.match(text)
    if not text or match is None:
        raise ConfigError(
            f"bad {what}: {text!r} is not a duration such as 90s, 5m or 1h30m"
        )
    hours, minutes, seconds = (int(part) if part else 0 for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def format_duration(seconds: int) -> str:
    """The shortest of ``1h30m``, ``5m``, ``90s`` forms for ``seconds``."""
    if seconds == 0:
        return "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "m"), (secs, "s")]
    return "".join(f"{value}{unit}" for value, unit in parts if value)
