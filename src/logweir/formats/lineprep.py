"""The first and last step of every parser in this package, on whole batches.

:func:`prepare` strips the ``\\r`` of CRLF endings and sets empty lines
aside (looking at the bytes with numpy, see :func:`scan`); :func:`assemble`
turns a parsed frame (one row per kept line, with a
``_reason`` that is null for good lines) into the events and rejects of a
:class:`~logweir.schema.ParseResult`, with each line's source, offset and
line number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import polars as pl
import pyarrow as pa

from logweir.formats.keymap import FieldsPart, empty_extra
from logweir.schema import (
    EVENT_SCHEMA,
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


@dataclass(frozen=True)
class Scan:
    """Per line: its length in bytes and its first byte (0 when empty)."""

    length: np.ndarray
    first: np.ndarray


def scan(lines: pl.Series) -> Scan:
    """Lengths and first bytes of every line, read from Arrow's views.

    Polars hands its strings to Arrow as string views without a copy; a
    view holds the length and the first bytes, which numpy reads for the
    whole batch at once. (``str.head(1)`` costs about 60 ns a line.)
    """
    array = lines.to_arrow(compat_level=pl.CompatLevel.newest())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    height = len(array)
    if array.type != pa.string_view():
        return _scan_offsets(array.cast(pa.large_string()))
    view_buffer = array.buffers()[1]
    if view_buffer is None or height == 0:
        return Scan(np.zeros(height, dtype=np.int64), np.zeros(height, dtype=np.uint8))
    # A view is 16 bytes: the length, then the bytes themselves (up to 12)
    # or their first 4, a data buffer's index and the offset in it.
    views = np.frombuffer(view_buffer, dtype=np.uint8).reshape(-1, 16)
    views = views[array.offset : array.offset + height]
    length = views[:, :4].copy().view(np.int32).ravel().astype(np.int64)
    first = np.where(length > 0, views[:, 4], 0).astype(np.uint8)
    return Scan(length, first)


def _scan_offsets(array: pa.Array) -> Scan:
    """:func:`scan` for a plain (offsets and data) Arrow string array."""
    height = len(array)
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[
        array.offset : array.offset + height + 1
    ]
    length = np.diff(offsets)
    first = np.zeros(height, dtype=np.uint8)
    if data_buffer is not None:
        data = np.frombuffer(data_buffer, dtype=np.uint8)
        filled = length > 0
        first[filled] = data[offsets[:-1][filled]]
    return Scan(length, first)


#: First bytes of a line that may be blank: ASCII whitespace, and any
#: non-ASCII lead byte (Unicode has whitespace beyond ASCII).
_MAYBE_BLANK = np.zeros(256, dtype=bool)
_MAYBE_BLANK[[0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20]] = True
_MAYBE_BLANK[0x80:] = True


def prepare(batch: LineBatch) -> Prepared:
    """Lines without their CR, empty and blank lines left out."""
    lines = batch.lines.cast(pl.String).alias("line")
    if lines.null_count():
        lines = lines.fill_null("")
    if lines.str.ends_with("\r").any():
        lines = lines.str.strip_suffix("\r")
    bytes_ = scan(lines)
    frame = lines.to_frame().with_row_index("row")
    maybe = (bytes_.length == 0) | _MAYBE_BLANK[bytes_.first]
    blank = np.zeros(len(maybe), dtype=bool)
    if maybe.any():
        where = np.flatnonzero(maybe)
        stripped = lines.gather(where).str.strip_chars().str.len_bytes() == 0
        blank[where] = stripped.to_numpy()
    if not blank.any():
        return Prepared(frame, 0)
    return Prepared(frame.filter(pl.Series(~blank)), int(blank.sum()))


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
    if not parsed.get_column("row").is_sorted():
        parsed = parsed.sort("row")
    failed = parsed.get_column("_reason").is_not_null()
    good = parsed.filter(~failed) if failed.any() else parsed
    bad = parsed.filter(failed).select("row", "_reason")
    if rejected is not None and rejected.height:
        bad = pl.concat([bad, rejected.select("row", "_reason")]).sort("row")
    if "extra" not in good.columns:
        good = good.with_columns(empty_extra(good.height))
    # Columns the format does not fill, as nulls made in Polars: a Python
    # list of nulls (what conform_events would build) costs 2 ms per 100k.
    missing = [
        pl.repeat(None, good.height, dtype=dtype, eager=True).alias(name)
        for name, dtype in EVENT_SCHEMA.items()
        if name not in good.columns and name not in ("offset", "source")
    ]
    events = good.with_columns(
        batch.offsets.cast(pl.UInt64).gather(good.get_column("row")).alias("offset"),
        pl.lit(batch.source, pl.String).alias("source"),
        *missing,
    )
    bad_rows = bad.get_column("row")
    # Prepared rows are sorted: a search finds each rejected line's text.
    index = prepared.rows.search_sorted(bad_rows.cast(prepared.rows.dtype))
    lines = prepared.lines.gather(index)
    rejects = pl.DataFrame(
        {
            "source": pl.repeat(batch.source, bad.height, dtype=pl.String, eager=True),
            "line_number": batch.line_numbers.cast(pl.UInt64).gather(bad_rows),
            "offset": batch.offsets.cast(pl.UInt64).gather(bad_rows),
            "raw": lines,
            "reason": bad.get_column("_reason"),
        }
    )
    consumed = prepared.frame.height - good.height - bad.height
    return ParseResult(
        events=conform_events(events),
        rejects=conform_rejects(rejects),
        skipped=prepared.skipped + consumed + skipped,
    )


#: Below this many lines a batch is matched in one piece, not one per thread.
MIN_CHUNK_LINES = 20_000


def capture(
    lines: pl.Series,
    regex: str,
    outputs: Sequence[pl.Expr],
    *,
    keep: pl.Expr | None = None,
) -> pl.DataFrame:
    """``outputs`` of every line, read from the captures of ``regex``.

    ``outputs`` see the line as ``line`` and the named groups as the struct
    column ``␟groups``. With ``keep``, only the lines where it is true are
    returned, with their position in ``lines`` as ``␟index`` (the filter
    runs inside the same query). The batch is cut into one chunk per thread
    of Polars' pool (at least :data:`MIN_CHUNK_LINES` lines each), and the
    chunks run as parallel queries: a regex over a column runs on one core
    otherwise.
    """
    frame = lines.alias("line").to_frame()
    chunks = max(1, min(pl.thread_pool_size(), lines.len() // MIN_CHUNK_LINES))
    step = max(1, -(-lines.len() // chunks))
    plans = []
    for start in range(0, max(lines.len(), 1), step):
        plan = frame.slice(start, step).lazy()
        if keep is not None:
            plan = plan.with_row_index("␟index", offset=start)
        plan = plan.with_columns(
            pl.col("line").str.extract_groups(regex).alias("␟groups")
        )
        if keep is not None:
            plan = plan.filter(keep).select("␟index", *outputs)
        else:
            plan = plan.select(outputs)
        plans.append(plan)
    if len(plans) == 1:
        return plans[0].collect()
    return pl.concat(pl.collect_all(plans))


@dataclass(frozen=True)
class Matched:
    """The lines of a batch that have one shape: ``index``, their positions,
    and ``values``, one text column per key, one row per position."""

    index: pl.Series
    values: pl.DataFrame


class Shape(Protocol):
    """A shape of line (JSON keys, logfmt keys …) that can match a batch."""

    @property
    def keys(self) -> tuple[str, ...]: ...

    def match(self, lines: pl.Series) -> Matched: ...


def shape_road(
    rows: pl.Series,
    lines: pl.Series,
    learn: Callable[[list[str]], Shape | None],
    *,
    shapes: int,
) -> tuple[list[FieldsPart], pl.Series]:
    """Fields of the lines of the most common shapes, one part per shape,
    and the positions in ``lines`` of the lines no part holds (for the
    caller's general road).

    ``learn`` finds a shape in a sample of the lines left (the first 32 and
    32 spread over the rest); each shape is matched against the lines the
    one before left, up to ``shapes`` of them.
    """
    parts: list[FieldsPart] = []
    left = pl.int_range(lines.len(), dtype=pl.UInt32, eager=True)
    for _ in range(shapes):
        if left.len() == 0:
            break
        subset = lines if left.len() == lines.len() else lines.gather(left)
        shape = learn(sample(subset))
        if shape is None:
            break
        matched = shape.match(subset)
        if matched.index.len() == 0:
            break
        found = rows.gather(left.gather(matched.index))
        first = int(found[0])
        seen = {key: (first, place) for place, key in enumerate(shape.keys)}
        parts.append(FieldsPart(found, matched.values, seen))
        missed = np.ones(left.len(), dtype=bool)
        missed[matched.index.to_numpy()] = False
        left = left.filter(pl.Series(missed))
    return parts, left


#: Lines looked at to learn a shape.
SAMPLE_LINES = 64


def sample(lines: pl.Series) -> list[str]:
    """The first lines of ``lines`` and some spread over the rest."""
    height = lines.len()
    if height <= SAMPLE_LINES:
        return [text for text in lines.to_list() if text is not None]
    half = SAMPLE_LINES // 2
    index = np.concatenate(
        [np.arange(half), np.linspace(half, height - 1, half).astype(np.int64)]
    )
    return [text for text in lines.gather(index).to_list() if text is not None]


def reject_all(batch: LineBatch, prepared: Prepared, reason: pl.Series) -> ParseResult:
    """Every kept line rejected, each with its entry of ``reason``."""
    parsed = pl.DataFrame({"row": prepared.rows, "_reason": reason})
    return assemble(batch, prepared, parsed)


def diagnosed(
    rows: pl.Series, lines: pl.Series, diagnose: Callable[[str], str]
) -> pl.DataFrame:
    """Rejects (``row``, ``_reason``) for ``lines``, each reason written by
    ``diagnose``; for the few lines a parser's fast road did not take."""
    return pl.DataFrame(
        {
            "row": rows,
            "_reason": pl.Series(
                [diagnose(line) for line in lines.to_list()], dtype=pl.String
            ),
        }
    )


__all__ = [
    "MIN_CHUNK_LINES",
    "SAMPLE_LINES",
    "Matched",
    "Prepared",
    "Scan",
    "Shape",
    "assemble",
    "capture",
    "diagnosed",
    "prepare",
    "reject_all",
    "sample",
    "scan",
    "shape_road",
]
