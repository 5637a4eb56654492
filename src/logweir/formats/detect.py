"""Which format is this log? Try every candidate on a sample and compare.

>>> from logweir.formats.detect import detect_format
>>> detection = detect_format(['{"ts": "2024-03-01T12:00:00Z", "msg": "hi"}'])
>>> detection.name
'json'

Every preset of :data:`~logweir.formats.registry.PRESETS` is a candidate
(``json``, ``syslog`` and ``logfmt`` among them), except ``agent``, whose
format is a single free-text field that every line fits, and aliases of
another candidate (``nginx_combined`` is ``nginx``). Each parses the sample;
the winner is the one that parses the most lines, then the one that fills
the most columns per line, then the first in :data:`PREFERENCE`.

Several presets describe the same line layout: Apache's ``combined`` and
Nginx's default ``combined`` format, or ``combined`` and
``combined_debian`` (``%O`` and ``%b`` both print a number). When they
parse exactly the same lines with as many fields, the choice is a
convention, and the detection says so: logweir takes the first of them in
:data:`PREFERENCE`, which puts Apache's names first because they are the
older and more widely known.

When no candidate parses at least :data:`MIN_MATCH_RATE` of the sample, the
detection names no format and says what came closest.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import polars as pl

from logweir.errors import FormatError
from logweir.formats.base import ParseOptions
from logweir.formats.registry import PRESETS, compile_format
from logweir.schema import LineBatch

#: Candidates in order of preference when two fit the sample equally well.
PREFERENCE: tuple[str, ...] = (
    "combined",
    "common",
    "vhost_combined",
    "vhost_common",
    "combined_debian",
    "common_debian",
    "nginx",
    "nginx_main",
    "json",
    "syslog",
    "logfmt",
    "referer",
)

#: Presets never tried: ``agent`` fits any line; the others are aliases.
NOT_DETECTED: frozenset[str] = frozenset({"agent", "nginx_combined"})

#: Below this share of the sample parsed, the format is called unknown.
MIN_MATCH_RATE = 0.5

#: Candidates this close to the best rate (and parsing the same lines) tie.
TIE_TOLERANCE = 0.02

#: Lines sampled by default.
DEFAULT_SAMPLE_LINES = 200

_NOT_FIELDS = ("source", "offset", "extra")


@dataclass(frozen=True)
class Score:
    """How one candidate did on the sample."""

    name: str
    matched: int
    sampled: int
    fields_per_line: float
    first_reject: str | None = None
    accepted: frozenset[int] = field(default=frozenset(), repr=False, compare=False)

    @property
    def match_rate(self) -> float:
        return self.matched / self.sampled if self.sampled else 0.0


@dataclass(frozen=True)
class Detection:
    """The verdict: ``name`` is ``None`` when no format fits well enough."""

    name: str | None
    match_rate: float
    sampled: int
    runners_up: tuple[Score, ...]
    ambiguous_with: tuple[str, ...]
    explanation: str

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form, as ``logweir detect --json`` prints it."""
        return {
            "format": self.name,
            "match_rate": round(self.match_rate, 4),
            "sampled": self.sampled,
            "ambiguous_with": list(self.ambiguous_with),
            "runners_up": [
                {"format": score.name, "match_rate": round(score.match_rate, 4)}
                for score in self.runners_up
            ],
            "explanation": self.explanation,
        }


def candidates() -> list[str]:
    """Preset names tried, preferred first."""
    names = [name for name in PRESETS if name not in NOT_DETECTED]
    rank = {name: index for index, name in enumerate(PREFERENCE)}
    return sorted(names, key=lambda name: rank.get(name, len(rank)))


def detect_format(
    lines: Sequence[str],
    options: ParseOptions | None = None,
    *,
    names: Iterable[str] | None = None,
    source: str = "sample",
) -> Detection:
    """Detect the format of ``lines`` (the first lines of a log, say 200).

    Blank lines are ignored. Never raises for what the lines hold.
    """
    sample = [line for line in lines if line.strip()]
    if not sample:
        return Detection(None, 0.0, 0, (), (), f"{source}: no lines to look at")
    batch = LineBatch.from_strings(source, sample)
    scores = [
        score
        for name in (names if names is not None else candidates())
        if (score := _score(name, batch, options)) is not None
    ]
    scores.sort(key=_rank)
    if not scores:
        return Detection(None, 0.0, len(sample), (), (), "no candidate format compiled")
    best, others = scores[0], scores[1:]
    ties = tuple(other.name for other in others if _ties(best, other))
    runners_up = tuple(score for score in others if score.matched)[:3]
    if best.match_rate < MIN_MATCH_RATE:
        return Detection(
            None, best.match_rate, len(sample), runners_up, (), _unknown(best)
        )
    return Detection(
        best.name,
        best.match_rate,
        len(sample),
        runners_up,
        ties,
        _explain(best, ties),
    )


def _score(name: str, batch: LineBatch, options: ParseOptions | None) -> Score | None:
    try:
        parser = compile_format(name, options)
    except (FormatError, ImportError):
        return None  # a format whose compiler is not there yet
    result = parser.parse(batch)
    events = result.events
    columns = [name for name in events.columns if name not in _NOT_FIELDS]
    filled = 0.0
    if events.height:
        counts = events.select(pl.sum_horizontal(pl.col(columns).is_not_null()))
        filled = float(counts.to_series().cast(pl.Float64).sum()) / events.height
    rejected = result.rejects.get_column("line_number").to_list()
    first = result.rejects.head(1).to_dicts()
    return Score(
        name=name,
        matched=len(batch) - len(rejected),
        sampled=len(batch),
        fields_per_line=filled,
        first_reject=(
            f"line {first[0]['line_number']}: {first[0]['reason']}" if first else None
        ),
        accepted=frozenset(range(1, len(batch) + 1)) - frozenset(rejected),
    )


def _rank(score: Score) -> tuple[float, float, int]:
    preference = (
        PREFERENCE.index(score.name) if score.name in PREFERENCE else len(PREFERENCE)
    )
    return (-score.match_rate, -round(score.fields_per_line, 6), preference)


def _ties(best: Score, other: Score) -> bool:
    return (
        best.match_rate - other.match_rate <= TIE_TOLERANCE
        and other.accepted == best.accepted
        and round(other.fields_per_line, 6) == round(best.fields_per_line, 6)
    )


def _percent(score: Score) -> str:
    counts = f"{score.matched}/{score.sampled}"
    return f"{score.match_rate:.1%} of {score.sampled} sampled lines ({counts})"


def _explain(best: Score, ties: tuple[str, ...]) -> str:
    text = f"{best.name}: parses {_percent(best)}"
    if best.first_reject is not None:
        text += f"; the rest will be rejected (first: {best.first_reject})"
    if ties:
        others = ", ".join(ties)
        text += (
            f". Ambiguous: {others} parse{'s' if len(ties) == 1 else ''} exactly the "
            f"same lines with as many fields; {best.name} is chosen as the first in "
            "logweir's preference order (Apache's preset names first)"
        )
    return text


def _unknown(best: Score) -> str:
    if best.matched == 0:
        text = (
            f"unknown format: no candidate parses any of {best.sampled} sampled lines"
        )
    else:
        text = (
            f"unknown format: no candidate parses {MIN_MATCH_RATE:.0%} of the sample; "
            f"the closest, {best.name}, parses {_percent(best)}"
        )
        if best.first_reject is not None:
            text += f" (first reject: {best.first_reject})"
    return (
        text + ". Give the format with --format: a preset, an Apache LogFormat or "
        "Nginx log_format string, 'regex:…' or 'grok:…'"
    )


def detect_paths(
    paths: Sequence[str],
    options: ParseOptions | None = None,
    *,
    sample_lines: int = DEFAULT_SAMPLE_LINES,
) -> list[tuple[str, Detection]]:
    """Detect the format of each file (``-`` is standard input).

    Reads only the first ``sample_lines`` lines of each, through
    :mod:`logweir.sources` (plain, gzip, bzip2, xz or zstd). Raises
    :class:`~logweir.errors.SourceError` for a path that cannot be read.
    """
    # Imported here: formats do not depend on sources, only this helper does.
    from logweir.sources import STDIN, expand_inputs

    found: list[tuple[str, Detection]] = []
    for path in paths:
        inputs = [None] if path == STDIN else expand_inputs([path])
        for inp in inputs:
            name = STDIN if inp is None else inp.path
            lines = head_lines(name, sample_lines)
            found.append((name, detect_format(lines, options, source=name)))
    return found


def head_lines(path: str, count: int) -> list[str]:
    """The first ``count`` non-blank lines of ``path`` (``-``: standard input)."""
    import sys

    from logweir.sources import STDIN, read_stream

    lines: list[str] = []
    if path == STDIN:
        batches = read_stream(sys.stdin.buffer, STDIN, 1 << 20)
        return _take(batches, count, lines)
    with open(path, "rb") as stream:
        return _take(read_stream(stream, path, 1 << 20), count, lines)


def _take(batches: Iterable[LineBatch], count: int, lines: list[str]) -> list[str]:
    for batch in batches:
        for line in batch.lines.to_list():
            if line and line.strip():
                lines.append(line.rstrip("\r"))
                if len(lines) >= count:
                    return lines
    return lines


__all__ = [
    "DEFAULT_SAMPLE_LINES",
    "MIN_MATCH_RATE",
    "NOT_DETECTED",
    "PREFERENCE",
    "Detection",
    "Score",
    "candidates",
    "detect_format",
    "detect_paths",
    "head_lines",
]
