"""Window definitions: sizes and steps, parsed from ``--windows`` text.

A window spec is configuration only; the running state lives in
:class:`logweir.windows.aggregator.WindowAggregator`. Windows are aligned
to the Unix epoch in UTC, so a ``1h`` window always starts on the hour and
a ``1d`` window at UTC midnight.

>>> parse_windows("1m,5m,10m/1m")
[WindowSpec(size_s=60, step_s=60), WindowSpec(size_s=300, step_s=300), \
WindowSpec(size_s=600, step_s=60)]
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from logweir.errors import ConfigError

#: What ``logweir run`` aggregates when no ``--windows`` is given.
DEFAULT_WINDOWS = "1m,5m,1h"

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^(\d+)([smhd])$")

#: Panes finer than this many per largest window make state too large to be
#: useful (a 1 s pane under a 1 day window is 86 400 panes of sketches).
MAX_PANES_PER_WINDOW = 10_080


@dataclass(frozen=True, order=True)
class WindowSpec:
    """One family of windows: ``size_s`` long, starting every ``step_s``.

    Tumbling when ``step_s == size_s``; hopping (overlapping) when the step
    is shorter, in which case every event belongs to ``size_s // step_s``
    windows. The step must divide the size, so that this count is the same
    for every event.
    """

    size_s: int
    step_s: int

    def __post_init__(self) -> None:
        if self.size_s <= 0 or self.step_s <= 0:
            raise ConfigError(
                f"bad window {self.label!r}: size and step must be positive"
            )
        if self.step_s > self.size_s:
            raise ConfigError(
                f"bad window {self.label!r}: the step is longer than the size, "
                "which would leave gaps between windows"
            )
        if self.size_s % self.step_s:
            raise ConfigError(
                f"bad window {self.label!r}: the step must divide the size"
            )

    @property
    def tumbling(self) -> bool:
        """Whether windows follow each other without overlap."""
        return self.step_s == self.size_s

    @property
    def label(self) -> str:
        """The spec written back as ``--windows`` text (``5m``, ``10m/1m``)."""
        size = format_duration(self.size_s)
        if self.step_s == self.size_s:
            return size
        return f"{size}/{format_duration(self.step_s)}"


def format_duration(seconds: int) -> str:
    """Write ``seconds`` with the largest unit that divides it (``90s``, ``2h``)."""
    for unit, factor in sorted(_UNIT_SECONDS.items(), key=lambda kv: -kv[1]):
        if seconds > 0 and seconds % factor == 0:
            return f"{seconds // factor}{unit}"
    return f"{seconds}s"


def parse_duration(text: str, *, what: str = "duration") -> int:
    """Seconds in ``text`` such as ``30s``, ``5m``, ``1h`` or ``1d``.

    Raises :class:`ConfigError` naming ``what`` and ``text`` when it is not
    a positive whole number followed by one of ``s``, ``m``, ``h``, ``d``.
    """
    reason = _duration_problem(text)
    if reason:
        raise ConfigError(f"bad {what}: {text.strip()!r} {reason}")
    return _seconds(text)


def _duration_problem(text: str) -> str | None:
    """Why ``text`` is not a duration, or ``None`` when it is one."""
    match = _DURATION.match(text.strip())
    if not match:
        return (
            "is not a whole number and a unit s, m, h or d "
            "(such as '30s', '5m' or '1h')"
        )
    if int(match.group(1)) == 0:
        return "is not longer than zero"
    return None


def _seconds(text: str) -> int:
    match = _DURATION.match(text.strip())
    assert match is not None  # checked by _duration_problem
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_window(text: str) -> WindowSpec:
    """One spec: ``SIZE`` (tumbling) or ``SIZE/STEP`` (hopping)."""
    spec_text = text.strip()
    size_text, slash, step_text = spec_text.partition("/")
    parts = [("size", size_text)] + ([("step", step_text)] if slash else [])
    for role, part in parts:
        reason = _duration_problem(part)
        if reason:
            raise ConfigError(f"bad window {spec_text!r}: {role} {part!r} {reason}")
    size_s = _seconds(size_text)
    return WindowSpec(size_s, _seconds(step_text) if slash else size_s)


def parse_windows(text: str) -> list[WindowSpec]:
    """Parse a comma-separated list such as ``"1m,5m,1h,10m/1m"``.

    Duplicates are removed; order is kept. Raises :class:`ConfigError`
    naming the bad part (``bad window '5x': size '5x' is not ...``).
    """
    parts = [part for part in text.split(",") if part.strip()]
    if not parts:
        raise ConfigError(f"no windows in {text!r}: give sizes such as '1m,5m,1h'")
    specs: list[WindowSpec] = []
    for part in parts:
        spec = parse_window(part)
        if spec not in specs:
            specs.append(spec)
    check_pane_count(specs)
    return specs


def pane_seconds(specs: Iterable[WindowSpec]) -> int:
    """The pane length: the largest duration that divides every size and step.

    Window state is kept per pane; a window is the merge of its panes.
    """
    values = [value for spec in specs for value in (spec.size_s, spec.step_s)]
    if not values:
        raise ConfigError("at least one window is needed")
    return math.gcd(*values)


def check_pane_count(specs: Sequence[WindowSpec]) -> None:
    """Refuse spec sets whose panes would be too fine for their largest window."""
    pane_s = pane_seconds(specs)
    largest = max(spec.size_s for spec in specs)
    if largest // pane_s > MAX_PANES_PER_WINDOW:
        labels = ",".join(spec.label for spec in specs)
        raise ConfigError(
            f"windows {labels!r} need {format_duration(pane_s)} panes, "
            f"{largest // pane_s} per {format_duration(largest)} window "
            f"(at most {MAX_PANES_PER_WINDOW}); use sizes with a larger "
            "common divisor"
        )
