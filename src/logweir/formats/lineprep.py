"""The first and last step of every parser in this package, on whole batches.

:func:`prepare` strips the ``\\r`` of CRLF endings and sets empty lines
aside; :func:`assemble` turns a parsed frame (one row per kept line, with a
``_reason`` that is null for good lines) into the events and rejects of a
:class:`~logweir.schema.ParseResult`, with each line's source, offset and
line number.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from logweir.formats.keymap import empty_extra
from logweir.schema import (
    LineBatch,
    ParseResult,
    conform_events,
    conform_rejects,
)


@dataclass(frozen=True)
class Prepared:
    """The lines worth parsing: ``row`` (index in the batch) and ``line``."""

    frame: pl.DataFrame
    skipped: int

    @property
    def lines(self) -> pl.Series:
        return self.frame.get_column("line")

    @property
    def rows(self) -> pl.Series:
        return self.frame.get_column("row")


def prepare(batch: LineBatch) -> Prepared:
    """Lines without their CR, empty and blank lines left out."""
    lines = batch.lines.cast(pl.String).alias("line")
    if lines.null_count():
        lines = lines.fill_null("")
    # Each step only when some line needs it: most batches need none.
    if lines.str.ends_with("\r").any():
        lines = lines.str.strip_suffix("\r")
    frame = lines.to_frame().with_row_index("row")
    blank = lines.str.strip_chars().str.len_bytes() == 0
    if not blank.any():
        return Prepared(frame, 0)
    return Prepared(frame.filter(~blank), int(blank.sum()))


def assemble(
    batch: LineBatch,
    prepared: Prepared,
    parsed: pl.DataFrame,
    *,
    skipped: int = 0,
    rejected: pl.DataFrame | None = None,
) -> ParseResult:
    """Split ``parsed`` into events and rejects.

    ``parsed`` has ``row`` and ``_reason``, plus whatever canonical columns
    the format fills; rows of ``prepared`` missing from ``parsed`` are
    taken as consumed by a neighbour (continuation lines) and counted with
    ``skipped``. ``rejected`` (``row`` and ``_reason``) holds more rejected
    lines, kept apart so that ``parsed`` need not be filtered.
    """
    if rejected is not None and rejected.height:
        parsed = pl.concat([parsed, rejected], how="diagonal")
    if not parsed.get_column("row").is_sorted():
        parsed = parsed.sort("row")
    failed = parsed.get_column("_reason").is_not_null()
    good = parsed.filter(~failed) if failed.any() else parsed
    bad = parsed.filter(failed) if failed.any() else parsed.clear()
    if "extra" not in good.columns:
        good = good.with_columns(empty_extra(good.height))
    good_rows = good.get_column("row")
    events = good.with_columns(
        batch.offsets.cast(pl.UInt64).gather(good_rows).alias("offset"),
        pl.lit(batch.source, pl.String).alias("source"),
    )
    bad_rows = bad.get_column("row")
    # Prepared rows are sorted: a search finds each rejected line's text.
    lines = prepared.lines.gather(prepared.rows.search_sorted(bad_rows))
    rejects = pl.DataFrame(
        {
            "source": pl.repeat(batch.source, bad.height, dtype=pl.String, eager=True),
            "line_number": batch.line_numbers.cast(pl.UInt64).gather(bad_rows),
            "offset": batch.offsets.cast(pl.UInt64).gather(bad_rows),
            "raw": lines,
            "reason": bad.get_column("_reason"),
        }
    )
    consumed = prepared.frame.height - parsed.height
    return ParseResult(
        events=conform_events(events),
        rejects=conform_rejects(rejects),
        skipped=prepared.skipped + consumed + skipped,
    )


def reject_all(batch: LineBatch, prepared: Prepared, reason: pl.Series) -> ParseResult:
    """Every kept line rejected, each with its entry of ``reason``."""
    parsed = pl.DataFrame({"row": prepared.rows, "_reason": reason})
    return assemble(batch, prepared, parsed)


__all__ = ["Prepared", "assemble", "prepare", "reject_all"]
