"""Generate a realistic, seeded web access log, with labelled incidents.

The same arguments give the same bytes on every machine: every random draw
comes from a generator seeded with the seed and a fixed stream number, and
lines are drawn in blocks of a fixed size, whatever the output.

Besides the requests, a log holds what real logs hold:

* **out-of-order lines**: ``disorder_share`` of lines (1 % by default) are
  written 0.5 to 5 s late, after lines with later timestamps, as a server
  that logs a request when it ends, or a buffered writer, does;
* **malformed lines**: ``malformed_share`` of lines (0.2 % by default)
  replaced by one of :data:`~logweir.gen.render.MALFORMED_KINDS`, in equal
  shares; ``0`` turns them off.
"""

from __future__ import annotations

import bz2
import gzip
import json
import logging
import lzma
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import numpy as np
import zstandard

from logweir.errors import ConfigError, SinkError
from logweir.gen import render, timeline, traffic, vocab
from logweir.gen.incidents import Incident, IncidentLabel, format_duration

logger = logging.getLogger(__name__)

DEFAULT_START = datetime(2024, 6, 3, 8, 0, tzinfo=UTC)
DEFAULT_RATE_PER_S = 30.0
DEFAULT_MALFORMED_SHARE = 0.002
DEFAULT_DISORDER_SHARE = 0.01

#: Lines drawn and rendered together. Fixed: the draws depend on it.
BLOCK_LINES = 65_536

_LATE_S = (0.5, 5.0)

# Stream numbers of the seeded generators, one per kind of draw.
_TIMELINE, _SITE, _SCANNERS, _ORDER, _BLOCK = range(5)


@dataclass(frozen=True)
class GenResult:
    """What :func:`generate` wrote: counts, time span and incident labels."""

    lines: int
    bytes_written: int
    format: str
    seed: int
    rate_per_s: float
    start: datetime
    first_ts: datetime | None
    last_ts: datetime | None
    incidents: tuple[IncidentLabel, ...]
    malformed: dict[str, int] = field(default_factory=dict)
    out_of_order: int = 0

    def labels(self) -> dict[str, Any]:
        """The incident labels and how the log was made, as JSON data."""
        return {
            "generator": "logweir gen",
            "format": self.format,
            "seed": self.seed,
            "lines": self.lines,
            "rate_per_s": self.rate_per_s,
            "start": self.start.isoformat(),
            "first_ts": self.first_ts.isoformat() if self.first_ts else None,
            "last_ts": self.last_ts.isoformat() if self.last_ts else None,
            "malformed": self.malformed,
            "out_of_order": self.out_of_order,
            "incidents": [label.to_json() for label in self.incidents],
        }


def labels_path_for(output: str | os.PathLike[str]) -> Path:
    """Where the labels of ``output`` go: ``<output>.incidents.json``."""
    return Path(f"{os.fspath(output)}.incidents.json")


def generate(
    lines: int,
    out: IO[bytes] | str | os.PathLike[str],
    *,
    fmt: str = "combined",
    seed: int = 0,
    rate_per_s: float = DEFAULT_RATE_PER_S,
    start: datetime = DEFAULT_START,
    incidents: Sequence[Incident] = (),
    malformed_share: float = DEFAULT_MALFORMED_SHARE,
    disorder_share: float = DEFAULT_DISORDER_SHARE,
    seasonal: bool = False,
    labels_path: str | os.PathLike[str] | None = None,
) -> GenResult:
    """Write ``lines`` log lines to ``out``; return what was written.

    ``out`` is a binary stream, or a path: then the file is written under a
    temporary name and renamed into place, compressed when its name ends in
    ``.gz``, ``.bz2``, ``.xz`` or ``.zst``. When there are incidents, their
    labels (:meth:`GenResult.labels`) go to ``labels_path``, by default
    ``<path>.incidents.json`` beside a file and nowhere for a stream.

    ``rate_per_s`` is the mean rate of ordinary requests (over a day when
    ``seasonal``, which makes traffic follow a daily curve). Raises
    :class:`ConfigError` for bad arguments, and when an incident would not
    fit in the time ``lines`` requests take.

    >>> import io
    >>> result = generate(1000, io.BytesIO(), seed=7)
    >>> result.lines
    1000
    """
    _check(lines, fmt, rate_per_s, start, malformed_share, disorder_share)
    plan = _Plan.build(lines, fmt, seed, rate_per_s, start, incidents, seasonal)
    if isinstance(out, (str, os.PathLike)):
        result = _write_to_path(plan, Path(out), malformed_share, disorder_share)
        if labels_path is None:
            labels_path = labels_path_for(out)
    else:
        result = plan.write(out, malformed_share, disorder_share)
    if result.incidents and labels_path is not None:
        write_labels(result, Path(labels_path))
    return result


def write_labels(result: GenResult, path: Path) -> None:
    """Write ``result``'s labels as JSON, atomically."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        temporary.write_text(json.dumps(result.labels(), indent=2) + "\n")
        os.replace(temporary, path)
    except OSError as error:
        reason = (error.strerror or type(error).__name__).lower()
        raise SinkError(f"cannot write {str(path)!r}: {reason}") from error
    finally:
        temporary.unlink(missing_ok=True)


def _check(
    lines: int,
    fmt: str,
    rate_per_s: float,
    start: datetime,
    malformed_share: float,
    disorder_share: float,
) -> None:
    if lines < 0:
        raise ConfigError(f"--lines must be 0 or more, not {lines}")
    if fmt not in render.FORMATS:
        raise ConfigError(
            f"unknown generator format {fmt!r} (known: {', '.join(render.FORMATS)})"
        )
    if not rate_per_s > 0:
        raise ConfigError(f"--rate must be above 0 requests/s, not {rate_per_s:g}")
    if start.tzinfo is None:
        raise ConfigError(f"start time {start.isoformat()} has no time zone")
    for name, share in (("malformed", malformed_share), ("disorder", disorder_share)):
        if not 0 <= share < 1:
            raise ConfigError(f"the {name} share must be in [0, 1), not {share:g}")


def _write_to_path(
    plan: _Plan, path: Path, malformed_share: float, disorder_share: float
) -> GenResult:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as raw, _compressing(raw, path.name) as stream:
            result = plan.write(stream, malformed_share, disorder_share)
        os.replace(temporary, path)
    except OSError as error:
        reason = (error.strerror or type(error).__name__).lower()
        raise SinkError(f"cannot write {str(path)!r}: {reason}") from error
    finally:
        temporary.unlink(missing_ok=True)
    return result


def _compressing(raw: IO[bytes], name: str) -> Any:
    """A writer compressing by the file name's extension, else ``raw``."""
    if name.endswith(".gz"):
        # mtime=0: the same log gives the same bytes, whenever written.
        return gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0)
    if name.endswith(".bz2"):
        return bz2.BZ2File(raw, mode="wb")
    if name.endswith(".xz"):
        return lzma.LZMAFile(raw, mode="wb")
    if name.endswith(".zst"):
        return zstandard.ZstdCompressor().stream_writer(raw, closefd=False)
    return _Unclosed(raw)


class _Unclosed:
    """``raw`` as a context manager that leaves closing to its owner."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw

    def __enter__(self) -> IO[bytes]:
        return self.raw

    def __exit__(self, *exc: object) -> None:
        return None


@dataclass(frozen=True)
class _Plan:
    """Everything drawn before the first line is written."""

    lines: int
    fmt: str
    seed: int
    rate_per_s: float
    start: datetime
    incidents: tuple[Incident, ...]
    site: vocab.Site
    scanners: tuple[traffic.ScannerClient, ...]
    arrivals: timeline.Timeline

    @classmethod
    def build(
        cls,
        lines: int,
        fmt: str,
        seed: int,
        rate_per_s: float,
        start: datetime,
        incidents: Sequence[Incident],
        seasonal: bool,
    ) -> _Plan:
        start = start.astimezone(UTC)
        second_of_day = start.hour * 3600 + start.minute * 60 + start.second
        arrivals = timeline.arrivals(
            lines,
            rate_per_s,
            second_of_day,
            seasonal,
            incidents,
            np.random.default_rng([seed, _TIMELINE]),
        )
        _check_incidents_fit(
            arrivals, lines, rate_per_s, second_of_day, seasonal, incidents
        )
        scanner_rng = np.random.default_rng([seed, _SCANNERS])
        scanners = tuple(
            traffic.ScannerClient(
                vocab.random_ipv4(scanner_rng),
                str(scanner_rng.choice(vocab.SCANNER_AGENTS)),
            )
            for incident in incidents
            if incident.kind == "scanner"
        )
        if fmt not in render.FORMATS_WITH_DURATION and any(
            i.kind == "latency" for i in incidents
        ):
            # Labelled unobservable; the command line warns when it was asked
            # for explicitly.
            logger.info(
                "a latency incident cannot be seen in format %s: use %s",
                fmt,
                " or ".join(render.FORMATS_WITH_DURATION),
            )
        return cls(
            lines=lines,
            fmt=fmt,
            seed=seed,
            rate_per_s=rate_per_s,
            start=start,
            incidents=tuple(incidents),
            site=vocab.build_site(np.random.default_rng([seed, _SITE])),
            scanners=scanners,
            arrivals=arrivals,
        )

    def write(
        self, out: IO[bytes], malformed_share: float, disorder_share: float
    ) -> GenResult:
        seconds, origin = self._written_order(disorder_share)
        start_us = int(self.start.timestamp()) * 1_000_000 + self.start.microsecond
        timestamps_us = start_us + np.round(seconds * 1e6).astype(np.int64)
        ips = [*self.site.clients.ip, *(s.ip for s in self.scanners)]
        agents = [*self.site.clients.agent, *(s.agent for s in self.scanners)]
        words = render.vocabulary(self.site, ips, agents, self.fmt)
        malformed_counts = np.zeros(len(render.MALFORMED_KINDS), dtype=np.int64)
        written = 0
        for block_start in range(0, self.lines, BLOCK_LINES):
            block = slice(block_start, block_start + BLOCK_LINES)
            rng = np.random.default_rng([self.seed, _BLOCK, block_start // BLOCK_LINES])
            requests = traffic.draw_requests(
                self.site, seconds[block], origin[block], self.incidents, rng
            )
            malformed = _draw_malformed(seconds[block].size, malformed_share, rng)
            malformed_counts += np.bincount(
                malformed[malformed >= 0], minlength=len(render.MALFORMED_KINDS)
            )
            data = render.render_block(
                words, requests, timestamps_us[block], malformed, self.fmt, rng
            )
            out.write(data)
            written += len(data)
        return self._result(timestamps_us, written, malformed_counts)

    def _written_order(self, disorder_share: float) -> tuple[np.ndarray, np.ndarray]:
        """Arrival times and origins in the order the lines are written."""
        seconds, origin = self.arrivals.seconds, self.arrivals.origin
        rng = np.random.default_rng([self.seed, _ORDER])
        late = rng.random(seconds.size) < disorder_share
        delay = np.where(late, rng.uniform(*_LATE_S, size=seconds.size), 0.0)
        order = np.argsort(seconds + delay, kind="stable")
        return seconds[order], origin[order]

    def _result(
        self, timestamps_us: np.ndarray, written: int, malformed_counts: np.ndarray
    ) -> GenResult:
        first = last = None
        out_of_order = 0
        if timestamps_us.size:
            first = _datetime(int(timestamps_us.min()))
            last = _datetime(int(timestamps_us.max()))
            running_max = np.maximum.accumulate(timestamps_us)
            out_of_order = int(np.count_nonzero(timestamps_us[1:] < running_max[:-1]))
        return GenResult(
            lines=self.lines,
            bytes_written=written,
            format=self.fmt,
            seed=self.seed,
            rate_per_s=self.rate_per_s,
            start=self.start,
            first_ts=first,
            last_ts=last,
            incidents=self._labels(),
            malformed=dict(
                zip(
                    render.MALFORMED_KINDS,
                    (int(c) for c in malformed_counts),
                    strict=True,
                )
            ),
            out_of_order=out_of_order,
        )

    def _labels(self) -> tuple[IncidentLabel, ...]:
        labels = []
        scanners = iter(self.scanners)
        for incident in self.incidents:
            client = next(scanners).ip if incident.kind == "scanner" else None
            labels.append(
                IncidentLabel(
                    kind=incident.kind,
                    start=self.start + timedelta(seconds=incident.offset_s),
                    end=self.start + timedelta(seconds=incident.end_s),
                    magnitude=incident.strength,
                    client_ip=client,
                    observable=incident.kind != "latency"
                    or self.fmt in render.FORMATS_WITH_DURATION,
                )
            )
        return tuple(labels)


def _datetime(microseconds: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=microseconds)


def _draw_malformed(count: int, share: float, rng: np.random.Generator) -> np.ndarray:
    """-1 for a good line, else the index of its malformed kind."""
    bad = rng.random(count) < share
    kind = rng.integers(0, len(render.MALFORMED_KINDS), size=count)
    return np.where(bad, kind, -1)


def _check_incidents_fit(
    arrivals: timeline.Timeline,
    lines: int,
    rate_per_s: float,
    second_of_day: int,
    seasonal: bool,
    incidents: Sequence[Incident],
) -> None:
    if not incidents:
        return
    span_s = float(arrivals.seconds[-1]) if lines else 0.0
    latest = max(incidents, key=lambda i: i.end_s)
    if latest.end_s <= span_s:
        return
    needed_s = latest.end_s + 60
    ordinary, scanners = timeline.rate_grid(
        needed_s, rate_per_s, second_of_day, seasonal, incidents
    )
    needed = int(ordinary.sum() + sum(float(s.sum()) for s in scanners))
    raise ConfigError(
        f"incident {latest.spec()} ends {format_duration(latest.end_s)} into the log, "
        f"but {lines} lines at {rate_per_s:g} requests/s last only "
        f"{format_duration(int(span_s))}: give --lines {needed} or more, "
        "or a higher --rate"
    )
