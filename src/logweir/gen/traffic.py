"""What each request is: client, target, status, size and response time.

Everything is drawn for a block of arrivals at once, one numpy call per
field and client class, never per line. Incidents that change answers
rather than arrival rates (``error_rate``, ``latency``) are applied here,
to the ordinary requests inside their windows; scanner requests come from
the scanner's own client.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from logweir.gen import vocab
from logweir.gen.incidents import Incident
from logweir.gen.timeline import ORDINARY

#: Status codes each target group answers with, and how often.
STATUS_MIX: dict[int, tuple[tuple[int, ...], tuple[float, ...]]] = {
    vocab.PAGE: (
        (200, 304, 301, 302, 404, 500, 502, 503),
        (0.915, 0.03, 0.015, 0.01, 0.025, 0.003, 0.001, 0.001),
    ),
    vocab.STATIC: ((200, 304, 206, 404), (0.68, 0.29, 0.005, 0.025)),
    vocab.API_READ: (
        (200, 400, 401, 403, 404, 429, 500, 502, 503, 504),
        (0.925, 0.01, 0.02, 0.005, 0.025, 0.004, 0.005, 0.002, 0.003, 0.001),
    ),
    vocab.API_WRITE: (
        (201, 200, 204, 400, 401, 409, 422, 500, 503),
        (0.62, 0.2, 0.08, 0.04, 0.02, 0.01, 0.02, 0.005, 0.005),
    ),
    vocab.HEALTH: ((200, 503), (0.999, 0.001)),
    vocab.SCAN: ((404, 403, 301, 400), (0.92, 0.05, 0.02, 0.01)),
}

#: Typical body size (median bytes, spread) of answers that are not a 2xx.
_OTHER_SIZES: dict[int, tuple[float, float]] = {
    301: (235, 0.02),
    302: (220, 0.05),
    400: (120, 0.3),
    401: (60, 0.1),
    403: (199, 0.05),
    404: (196, 0.02),
    409: (80, 0.2),
    422: (140, 0.3),
    429: (70, 0.1),
    500: (530, 0.05),
    502: (166, 0.01),
    503: (190, 0.02),
    504: (176, 0.01),
}

#: Response time per target group: (median ms, spread of the lognormal).
_DURATIONS: dict[int, tuple[float, float]] = {
    vocab.PAGE: (45.0, 0.7),
    vocab.STATIC: (2.5, 0.8),
    vocab.API_READ: (60.0, 0.8),
    vocab.API_WRITE: (140.0, 0.7),
    vocab.HEALTH: (1.2, 0.4),
    vocab.SCAN: (1.5, 0.5),
}

#: Multipliers of the response time for some statuses: a 304 skips the
#: body, an upstream that refuses (502) or a server shedding load (503)
#: answers at once, a gateway timeout (504) takes its full timeout.
_STATUS_TIME_FACTOR = {304: 0.4, 404: 0.5, 500: 3.0, 502: 0.05, 503: 0.02}
_GATEWAY_TIMEOUT_MS = 60_000.0

PROTOCOLS = ("HTTP/1.1", "HTTP/2.0", "HTTP/1.0")
#: Protocol shares per client class (browsers speak HTTP/2 most).
_PROTOCOL_MIX = {
    vocab.BROWSER: (0.4, 0.6, 0.0),
    vocab.CRAWLER: (0.7, 0.3, 0.0),
    vocab.TOOL: (0.8, 0.2, 0.0),
    vocab.MONITOR: (1.0, 0.0, 0.0),
    vocab.SCANNER: (0.85, 0.0, 0.15),
}

_FIVE_XX = np.array([500, 502, 503, 504])
_FIVE_XX_P = np.array([0.45, 0.3, 0.2, 0.05])


@dataclass(frozen=True)
class ScannerClient:
    """The client behind one scanner incident."""

    ip: str
    agent: str


@dataclass(frozen=True)
class Requests:
    """One block of requests, as parallel arrays (one entry per request).

    ``client`` indexes the site's clients followed by the incident
    scanners; ``size_bytes`` is -1 where no body was sent.
    """

    client: np.ndarray
    target: np.ndarray
    status: np.ndarray
    size_bytes: np.ndarray
    duration_ms: np.ndarray
    referer: np.ndarray
    protocol: np.ndarray
    klass: np.ndarray


def draw_requests(
    site: vocab.Site,
    seconds: np.ndarray,
    origin: np.ndarray,
    incidents: Sequence[Incident],
    rng: np.random.Generator,
) -> Requests:
    """Draw every field of the requests arriving at ``seconds``."""
    count = seconds.size
    klass = rng.choice(len(vocab.CLASS_SHARES), size=count, p=vocab.CLASS_SHARES)
    klass = klass.astype(np.int8)
    scanning = origin != ORDINARY
    klass[scanning] = vocab.SCANNER
    client = np.empty(count, dtype=np.int64)
    target = np.empty(count, dtype=np.int64)
    for cls in range(len(vocab.CLASS_SHARES)):
        rows = np.flatnonzero((klass == cls) & ~scanning)
        members, member_p = site.class_clients[cls]
        client[rows] = members[rng.choice(members.size, size=rows.size, p=member_p)]
        candidates, candidate_p = site.class_targets[cls]
        target[rows] = candidates[
            rng.choice(candidates.size, size=rows.size, p=candidate_p)
        ]
    _draw_scanner_requests(site, origin, incidents, client, target, rng)
    group = site.targets.group[target]
    status = _draw_status(group, rng)
    _apply_error_incidents(status, seconds, scanning, incidents, rng)
    duration_ms = _draw_durations(group, status, rng)
    _apply_latency_incidents(duration_ms, seconds, scanning, incidents)
    methods = np.array(site.targets.method)[target]
    return Requests(
        client=client,
        target=target,
        status=status,
        size_bytes=_draw_sizes(site, target, status, methods, rng),
        duration_ms=duration_ms,
        referer=_draw_referers(site, klass, group, rng),
        protocol=_draw_protocols(klass, rng),
        klass=klass,
    )


def _draw_scanner_requests(
    site: vocab.Site,
    origin: np.ndarray,
    incidents: Sequence[Incident],
    client: np.ndarray,
    target: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Scanner incidents probe the scan targets from their own client."""
    probes = np.flatnonzero(site.targets.group == vocab.SCAN)
    scanner_number = 0
    for index, incident in enumerate(incidents):
        if incident.kind != "scanner":
            continue
        rows = np.flatnonzero(origin == index)
        client[rows] = len(site.clients) + scanner_number
        target[rows] = probes[rng.integers(0, probes.size, size=rows.size)]
        scanner_number += 1


def _draw_status(group: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    status = np.empty(group.size, dtype=np.int64)
    for name, (codes, weights) in STATUS_MIX.items():
        rows = np.flatnonzero(group == name)
        p = np.array(weights) / sum(weights)
        status[rows] = np.array(codes)[rng.choice(len(codes), size=rows.size, p=p)]
    return status


def _apply_error_incidents(
    status: np.ndarray,
    seconds: np.ndarray,
    scanning: np.ndarray,
    incidents: Sequence[Incident],
    rng: np.random.Generator,
) -> None:
    """Inside an ``error_rate`` window exactly that share of answers is 5xx
    on average: the drawn ones are kept as 5xx, the others made 200."""
    for incident in incidents:
        if incident.kind != "error_rate":
            continue
        inside = _inside(seconds, incident) & ~scanning
        rows = np.flatnonzero(inside)
        failing = rng.random(rows.size) < incident.strength
        failed = rows[failing]
        status[failed] = rng.choice(_FIVE_XX, size=failed.size, p=_FIVE_XX_P)
        healthy = rows[~failing]
        was_5xx = status[healthy] >= 500
        status[healthy[was_5xx]] = 200


def _apply_latency_incidents(
    duration_ms: np.ndarray,
    seconds: np.ndarray,
    scanning: np.ndarray,
    incidents: Sequence[Incident],
) -> None:
    for incident in incidents:
        if incident.kind == "latency":
            duration_ms[_inside(seconds, incident) & ~scanning] *= incident.strength


def _inside(seconds: np.ndarray, incident: Incident) -> np.ndarray:
    inside: np.ndarray = (seconds >= incident.offset_s) & (seconds < incident.end_s)
    return inside


def _draw_durations(
    group: np.ndarray, status: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    duration = np.empty(group.size, dtype=np.float64)
    for name, (median, spread) in _DURATIONS.items():
        rows = np.flatnonzero(group == name)
        duration[rows] = rng.lognormal(np.log(median), spread, size=rows.size)
    for code, factor in _STATUS_TIME_FACTOR.items():
        duration[status == code] *= factor
    timeouts = np.flatnonzero(status == 504)
    duration[timeouts] = _GATEWAY_TIMEOUT_MS + rng.uniform(0, 40, size=timeouts.size)
    return np.maximum(duration, 0.05)


def _draw_sizes(
    site: vocab.Site,
    target: np.ndarray,
    status: np.ndarray,
    methods: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Body bytes: a target's own size for a 2xx (varying a little for
    dynamic pages and API answers), a fixed-ish error page otherwise."""
    group = site.targets.group[target]
    size = site.targets.base_bytes[target].astype(np.float64)
    dynamic = np.isin(group, (vocab.PAGE, vocab.API_READ, vocab.API_WRITE))
    size[dynamic] *= rng.lognormal(0.0, 0.25, size=int(dynamic.sum()))
    api = np.isin(group, (vocab.API_READ, vocab.API_WRITE))
    size[api] *= rng.lognormal(0.0, 0.9, size=int(api.sum()))
    partial = np.flatnonzero(status == 206)
    size[partial] *= rng.uniform(0.05, 0.9, size=partial.size)
    for code, (median, spread) in _OTHER_SIZES.items():
        rows = np.flatnonzero(status == code)
        size[rows] = rng.lognormal(np.log(median), spread, size=rows.size)
    size_bytes: np.ndarray = np.maximum(size, 1).astype(np.int64)
    size_bytes[(status == 304) | (status == 204) | (methods == "HEAD")] = -1
    return size_bytes


def _draw_referers(
    site: vocab.Site, klass: np.ndarray, group: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Index into ``site.referers``: browsers arrive from search engines and
    social sites or move between pages; other clients send none."""
    referer = np.zeros(klass.size, dtype=np.int64)
    rows = np.flatnonzero(klass == vocab.BROWSER)
    # 0: none, 1: an external site, 2: a page of this site. Assets and API
    # calls are almost always requested from one of the site's pages.
    pages = group[rows] == vocab.PAGE
    kind = np.where(
        pages,
        rng.choice(3, size=rows.size, p=[0.42, 0.28, 0.30]),
        rng.choice(3, size=rows.size, p=[0.04, 0.0, 0.96]),
    )
    external = rows[kind == 1]
    referer[external] = 1 + rng.integers(0, site.external_referers, size=external.size)
    internal = rows[kind == 2]
    pick = rng.choice(
        site.internal_referer_p.size, size=internal.size, p=site.internal_referer_p
    )
    referer[internal] = 1 + site.external_referers + pick
    return referer


def _draw_protocols(klass: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    protocol = np.zeros(klass.size, dtype=np.int64)
    for cls, mix in _PROTOCOL_MIX.items():
        rows = np.flatnonzero(klass == cls)
        protocol[rows] = rng.choice(len(PROTOCOLS), size=rows.size, p=mix)
    return protocol
