"""What every parser is, and the options every parser takes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from logweir.schema import LineBatch, ParseResult


@dataclass(frozen=True)
class ParseOptions:
    """Options shared by all formats.

    ``timezone`` is the IANA zone (or ``+HH:MM`` offset) assumed for
    timestamps that carry no offset of their own (RFC 3164 syslog, some
    strftime formats). ``reference_year`` is the year given to timestamps
    without one (RFC 3164); ``None`` means infer from the current date.
    ``json_mapping`` maps canonical column names to JSON paths
    (``{"method": "http.request.method"}``), overriding the defaults.
    """

    timezone: str = "UTC"
    reference_year: int | None = None
    json_mapping: dict[str, str] = field(default_factory=dict)


class Parser(ABC):
    """A compiled format: turns line batches into events and rejects.

    A parser is compiled once and then called on many batches, from any
    number of worker processes, so it must be picklable and hold no state
    that changes between batches.
    """

    #: Short human name, shown by ``logweir detect`` and in reports.
    name: str

    @abstractmethod
    def parse(self, batch: LineBatch) -> ParseResult:
        """Parse every line of ``batch``; never raise for bad input."""
