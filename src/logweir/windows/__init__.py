"""Event-time windows: specs, mergeable per-window state, emitted rows.

See :mod:`logweir.windows.aggregator` for when windows are emitted and
``docs/windows.md`` for what each column means and how exact it is.
"""

from logweir.windows.aggregator import WindowAggregator
from logweir.windows.dimensions import DEFAULT_DIMENSIONS
from logweir.windows.spec import (
    DEFAULT_WINDOWS,
    WindowSpec,
    parse_duration,
    parse_windows,
)

__all__ = [
    "DEFAULT_DIMENSIONS",
    "DEFAULT_WINDOWS",
    "WindowAggregator",
    "WindowSpec",
    "parse_duration",
    "parse_windows",
]
