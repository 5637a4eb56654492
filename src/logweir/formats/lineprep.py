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

from logweir.schema import (
    EXTRA_TYPE,
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
    frame = pl.DataFrame({"line": batch.lines.cast(pl.String)}).with_row_index("row")
    frame = frame.with_columns(pl.col("line").fill_null("").str.strip_suffix("\r"))
    kept = frame.filter(pl.col("line").str.strip_chars().str.len_bytes() > 0)
    return Prepared(kept, frame.height - kept.height)


def assemble(
    batch: LineBatch, prepared: Prepared, parsed: pl.DataFrame, *, skipped: int = 0
) -> ParseResult:
    """Split ``parsed`` into events and rejects.

    ``parsed`` has ``row`` and ``_reason``, plus whatever canonical columns
    the format fills; rows of ``prepared`` missing from ``parsed`` are
    taken as consumed by a neighbour (continuation lines) and counted with
    ``skipped``.
    """
    position = pl.DataFrame(
        {
            "offset": batch.offsets.cast(pl.UInt64),
            "line_number": batch.line_numbers.cast(pl.UInt64),
        }
    ).with_row_index("row")
    joined = (
        parsed.join(prepared.frame, on="row", how="left")
        .join(position, on="row", how="left")
        .sort("row")
        .with_columns(pl.lit(batch.source, pl.String).alias("source"))
    )
    good = joined.filter(pl.col("_reason").is_null())
    if "extra" not in good.columns:
        good = good.with_columns(pl.lit([], dtype=EXTRA_TYPE).alias("extra"))
    bad = joined.filter(pl.col("_reason").is_not_null()).select(
        "source",
        "line_number",
        "offset",
        pl.col("line").alias("raw"),
        pl.col("_reason").alias("reason"),
    )
    consumed = prepared.frame.height - parsed.height
    return ParseResult(
        events=conform_events(good),
        rejects=conform_rejects(bad),
        skipped=prepared.skipped + consumed + skipped,
    )


def reject_all(batch: LineBatch, prepared: Prepared, reason: pl.Series) -> ParseResult:
    """Every kept line rejected, each with its entry of ``reason``."""
    parsed = pl.DataFrame({"row": prepared.rows, "_reason": reason})
    return assemble(batch, prepared, parsed)


__all__ = ["Prepared", "assemble", "prepare", "reject_all"]
