"""The exceptions logweir raises, as one small family.

::

    LogweirError
    ├── FormatError            a format string, preset name or regex is bad
    ├── ParseError             a line does not match (strict mode only)
    ├── SourceError            an input is missing, unreadable or not a log
    ├── SinkError              an output cannot be written (full, read-only…)
    ├── ConfigError            a config file or flag value is bad
    └── MissingExtraError      an optional dependency is not installed

Each message says what and where, in one line, so that the CLI can print
``logweir: <message>`` and exit non-zero.
"""

from __future__ import annotations


class LogweirError(Exception):
    """Base of every error logweir raises on purpose."""


class FormatError(LogweirError):
    """A format cannot be compiled.

    ``format`` is the text given, ``position`` the 0-based index of the bad
    part in it (or ``None`` when the whole format is wrong).
    """

    def __init__(
        self, message: str, *, format: str = "", position: int | None = None
    ) -> None:
        super().__init__(message)
        self.format = format
        self.position = position


class ParseError(LogweirError):
    """A line failed to parse while running strict.

    Carries the raw ``line``, its ``source``, ``line_number`` and byte
    ``offset``, and the ``reason`` a lenient run would have recorded.
    """

    def __init__(
        self,
        reason: str,
        *,
        line: str,
        source: str,
        line_number: int,
        offset: int,
    ) -> None:
        super().__init__(f"{source}:{line_number} (byte {offset}): {reason}")
        self.reason = reason
        self.line = line
        self.source = source
        self.line_number = line_number
        self.offset = offset


class SourceError(LogweirError):
    """An input cannot be read."""


class SinkError(LogweirError):
    """An output cannot be written; what was committed before stays intact."""


class ConfigError(LogweirError):
    """A configuration file, key or flag value is invalid."""


class MissingExtraError(LogweirError):
    """An optional part is used without its extra installed."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"{module} is not installed; install it with: "
            f"pip install 'logweir[{extra}]'"
        )
        self.module = module
        self.extra = extra
