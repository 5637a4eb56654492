"""When requests arrive: a Poisson process with a rate that changes.

The rate is given per second on a grid: the base rate, shaped by the daily
curve when asked, multiplied by traffic incidents; each scanner incident
adds its own rate on top. Arrival times come from inverting the cumulative
rate at the sums of exponential gaps, which gives Poisson arrivals for any
rate curve in a few vectorized steps. Each arrival is then given to a
scanner with the probability of that scanner's share of the rate at that
moment, or else to the ordinary traffic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from logweir.errors import ConfigError
from logweir.gen.incidents import Incident

#: The longest log, in seconds, the generator lays out (about three years):
#: the rate grid has one value per second.
MAX_SPAN_S = 100_000_000

DAY_S = 86_400

#: Source code of an arrival that belongs to the ordinary traffic.
ORDINARY = -1


@dataclass(frozen=True)
class Timeline:
    """Arrival times, in seconds after the start, sorted, with their origin.

    ``origin[i]`` is :data:`ORDINARY` or the index, in the incident list, of
    the scanner incident that made arrival ``i``.
    """

    seconds: np.ndarray  # float64
    origin: np.ndarray  # int16


def daily_curve(seconds_of_day: np.ndarray) -> np.ndarray:
    """Relative traffic by time of day (UTC); its mean over a day is 1.

    Lowest at about 03:30 (a quarter of the mean), a broad high from late
    morning to mid-afternoon (one and a half times the mean), then a slow
    evening decline: the shape of a site whose users share a time zone.
    """
    phase = 2 * np.pi * seconds_of_day / DAY_S
    # A first harmonic peaking at 15:00, and a second one peaking at 10:00
    # and 22:00 that lifts the morning and slows the evening decline.
    main = 0.62 * np.cos(phase - 2 * np.pi * 15 / 24)
    shoulder = 0.16 * np.cos(2 * (phase - 2 * np.pi * 10 / 24))
    result: np.ndarray = 1.0 + main + shoulder
    return result


def rate_grid(
    span_s: int,
    rate_per_s: float,
    start_second_of_day: int,
    seasonal: bool,
    incidents: Sequence[Incident],
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Ordinary rate per second of ``[0, span_s)``, and each scanner's rate."""
    ordinary = np.full(span_s, rate_per_s, dtype=np.float64)
    if seasonal:
        seconds = (np.arange(span_s) + start_second_of_day) % DAY_S
        ordinary *= daily_curve(seconds.astype(np.float64))
    scanners = []
    for incident in incidents:
        window = slice(min(incident.offset_s, span_s), min(incident.end_s, span_s))
        if incident.kind in ("traffic_spike", "traffic_drop"):
            ordinary[window] *= incident.strength
        elif incident.kind == "scanner":
            extra = np.zeros(span_s, dtype=np.float64)
            extra[window] = incident.strength
            scanners.append(extra)
    return ordinary, scanners


def arrivals(
    lines: int,
    rate_per_s: float,
    start_second_of_day: int,
    seasonal: bool,
    incidents: Sequence[Incident],
    rng: np.random.Generator,
) -> Timeline:
    """Lay out ``lines`` arrivals; raise :class:`ConfigError` if they would
    take longer than :data:`MAX_SPAN_S`."""
    if lines == 0:
        return Timeline(np.zeros(0), np.zeros(0, dtype=np.int16))
    targets = np.cumsum(rng.exponential(1.0, size=lines))
    span_s = max(60, math.ceil(1.25 * targets[-1] / rate_per_s) + 60)
    while True:
        ordinary, scanners = rate_grid(
            span_s, rate_per_s, start_second_of_day, seasonal, incidents
        )
        total = ordinary + sum(scanners, np.zeros(span_s))
        cumulative = np.concatenate(([0.0], np.cumsum(total)))
        if cumulative[-1] >= targets[-1]:
            break
        if span_s >= MAX_SPAN_S:
            raise ConfigError(
                f"{lines} lines at {rate_per_s:g} requests/s would span more than "
                f"{MAX_SPAN_S // (365 * DAY_S)} years: raise --rate or lower --lines"
            )
        span_s = min(span_s * 2, MAX_SPAN_S)
    # Piecewise-linear inverse of the cumulative rate: arrivals spread
    # evenly within each second, Poisson across seconds.
    seconds = np.interp(targets, cumulative, np.arange(span_s + 1, dtype=np.float64))
    origin = np.full(lines, ORDINARY, dtype=np.int16)
    if scanners:
        origin = _assign_scanners(seconds, total, scanners, incidents, rng)
    return Timeline(seconds, origin)


def _assign_scanners(
    seconds: np.ndarray,
    total: np.ndarray,
    scanners: list[np.ndarray],
    incidents: Sequence[Incident],
    rng: np.random.Generator,
) -> np.ndarray:
    second = np.minimum(seconds.astype(np.int64), total.size - 1)
    draw = rng.random(seconds.size)
    origin = np.full(seconds.size, ORDINARY, dtype=np.int16)
    scanner_incidents = [i for i, inc in enumerate(incidents) if inc.kind == "scanner"]
    floor = np.zeros(seconds.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        for index, extra in zip(scanner_incidents, scanners, strict=True):
            share = np.nan_to_num(extra[second] / total[second])
            mine = (draw >= floor) & (draw < floor + share)
            origin[mine] = index
            floor += share
    return origin
