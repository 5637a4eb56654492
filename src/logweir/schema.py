"""The canonical schemas every stage shares.

Every format parses into :data:`EVENT_SCHEMA`; columns a format lacks are
null. ``(source, offset)`` is an event's identity: replaying the same input
gives the same identities, which is what makes writes idempotent.

A malformed line becomes a row of :data:`REJECT_SCHEMA` instead of an event.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

TS_TYPE = pl.Datetime("us", "UTC")

#: ``extra`` holds fields a format names that the schema does not, as a list
#: of key/value string pairs (a map; Polars has no map type, Arrow reads it as
#: a list of structs and DuckDB as ``STRUCT(key, value)[]``).
EXTRA_TYPE = pl.List(pl.Struct({"key": pl.String, "value": pl.String}))

EVENT_SCHEMA: dict[str, pl.DataType] = {
    "ts": TS_TYPE,
    "client_ip": pl.String(),
    "method": pl.String(),
    "path": pl.String(),
    "query": pl.String(),
    "protocol": pl.String(),
    "status": pl.UInt16(),
    "bytes": pl.UInt64(),
    "referer": pl.String(),
    "user_agent": pl.String(),
    "host": pl.String(),
    "duration_ms": pl.Float64(),
    "level": pl.String(),
    "message": pl.String(),
    "service": pl.String(),
    "source": pl.String(),
    "offset": pl.UInt64(),
    "extra": EXTRA_TYPE,
}

EVENT_COLUMNS: tuple[str, ...] = tuple(EVENT_SCHEMA)

#: Longest raw text kept in a reject row; the rest is cut and marked.
REJECT_RAW_MAX_CHARS = 2048

REJECT_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "line_number": pl.UInt64(),
    "offset": pl.UInt64(),
    "raw": pl.String(),
    "reason": pl.String(),
}


def arrow_array(values: np.ndarray) -> pa.Array:
    """A NumPy array as an Arrow array, without copying it.

    ``pa.array`` asks pandas whether the input is one of its types, and so
    imports pandas (a quarter of a second) the first time, in every worker
    process, when pandas is installed; going through Polars does not.
    """
    return pl.Series(values).to_arrow()


def empty_events() -> pl.DataFrame:
    """An events batch with no rows and every canonical column."""
    return pl.DataFrame(schema=EVENT_SCHEMA)


def empty_rejects() -> pl.DataFrame:
    """A rejects batch with no rows."""
    return pl.DataFrame(schema=REJECT_SCHEMA)


def conform_events(frame: pl.DataFrame) -> pl.DataFrame:
    """Return ``frame`` with exactly the canonical columns, order and types.

    Missing columns are added as nulls; extra columns are dropped (a parser
    that wants to keep them puts them in ``extra`` first). Casts are strict:
    a parser must have converted its values already, so a failing cast here
    is a bug, not bad input.

    The result holds one chunk per column: parsers match a batch in one
    piece per thread, and a later gather or sort over a column of several
    chunks costs ten to twenty times more (measured: 140 against 6 ns per
    string in the lake's clustering sort), while joining the chunks copies
    only string views.
    """
    height = frame.height
    columns = []
    for name, dtype in EVENT_SCHEMA.items():
        if name in frame.columns:
            column = frame.get_column(name)
            if column.dtype != dtype:
                column = column.cast(dtype, strict=True)
            columns.append(column)
        else:
            columns.append(pl.Series(name, dtype=dtype).extend_constant(None, height))
    return pl.DataFrame(columns).rechunk()


def conform_rejects(frame: pl.DataFrame) -> pl.DataFrame:
    """Return ``frame`` with the reject columns, raw text capped in length."""
    frame = frame.select(
        [
            pl.col(name).cast(dtype, strict=True)
            if name in frame.columns
            else pl.lit(None, dtype=dtype).alias(name)
            for name, dtype in REJECT_SCHEMA.items()
        ]
    )
    return frame.with_columns(
        pl.when(pl.col("raw").str.len_chars() > REJECT_RAW_MAX_CHARS)
        .then(pl.col("raw").str.slice(0, REJECT_RAW_MAX_CHARS) + pl.lit("…[cut]"))
        .otherwise(pl.col("raw"))
        .alias("raw")
    )


@dataclass(frozen=True)
class LineBatch:
    """Raw lines from one source, as sources hand them to parsers.

    ``lines`` holds the text of each line without its ``\\n`` (a trailing
    ``\\r`` is kept: parsers strip it). Bytes that are not UTF-8 are replaced
    by U+FFFD; ``offsets`` are the byte offsets of each line's first byte in
    the *raw* source, so they stay exact. ``line_numbers`` are 1-based.
    """

    source: str
    lines: pl.Series
    offsets: pl.Series
    line_numbers: pl.Series

    def __len__(self) -> int:
        return self.lines.len()

    @classmethod
    def from_strings(
        cls, source: str, lines: list[str], first_offset: int = 0, first_line: int = 1
    ) -> LineBatch:
        """Build a batch from decoded lines (tests and small inputs).

        Offsets assume each line was followed by a single ``\\n``.
        """
        offsets = []
        position = first_offset
        for line in lines:
            offsets.append(position)
            position += len(line.encode("utf-8", "surrogateescape")) + 1
        return cls(
            source=source,
            lines=pl.Series("line", lines, dtype=pl.String),
            offsets=pl.Series("offset", offsets, dtype=pl.UInt64),
            line_numbers=pl.Series(
                "line_number",
                range(first_line, first_line + len(lines)),
                dtype=pl.UInt64,
            ),
        )


@dataclass(frozen=True)
class ParseResult:
    """What a parser gives for one :class:`LineBatch`.

    ``events`` follows :data:`EVENT_SCHEMA`, ``rejects`` :data:`REJECT_SCHEMA`.
    Empty lines are neither events nor rejects; ``skipped`` counts them.
    """

    events: pl.DataFrame
    rejects: pl.DataFrame
    skipped: int = 0


#: One row per (window, dimension, key): what the windows stage emits and
#: the aggregate store keeps, keyed by ``(window_size_s, window_step_s,
#: window_start, dimension, key)``. The overall row of a window has
#: ``dimension == "all"`` and ``key == ""``. ``top_*`` columns hold JSON
#: arrays of ``{"key": str, "count": int}``, most frequent first.
WINDOW_SCHEMA: dict[str, pl.DataType] = {
    "window_size_s": pl.Int64(),
    "window_step_s": pl.Int64(),
    "window_start": TS_TYPE,
    "window_end": TS_TYPE,
    "dimension": pl.String(),
    "key": pl.String(),
    "requests": pl.UInt64(),
    "bytes": pl.UInt64(),
    "status_1xx": pl.UInt64(),
    "status_2xx": pl.UInt64(),
    "status_3xx": pl.UInt64(),
    "status_4xx": pl.UInt64(),
    "status_5xx": pl.UInt64(),
    "error_rate": pl.Float64(),
    "duration_p50_ms": pl.Float64(),
    "duration_p95_ms": pl.Float64(),
    "duration_p99_ms": pl.Float64(),
    "unique_clients": pl.UInt64(),
    "top_paths": pl.String(),
    "top_clients": pl.String(),
    "top_user_agents": pl.String(),
}
