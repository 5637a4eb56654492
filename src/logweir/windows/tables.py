"""Keyed Polars tables that absorb batches cheaply and compact now and then.

Every part of the window state that is not a sketch object is a table with
a ``pane`` column: appending a batch's rows is a list append, and the rows
are summed (and, for summaries, cut) only when the pending rows outgrow
the compacted ones, so each row is re-read a bounded number of times.
Compaction touches only the panes that have pending rows.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

Reducer = Callable[[pl.DataFrame], pl.DataFrame]

#: Pending rows allowed before a compaction, whatever the compacted size.
DEFAULT_PENDING_ROWS = 1_000_000


class PaneTable:
    """A table keyed by ``pane`` and more, reduced by ``reducer`` on demand.

    ``reducer`` takes rows that may repeat keys and returns one row per key
    with the same columns; it must be associative (summing, or the
    Misra–Gries cut), since rows are reduced in several rounds.
    """

    def __init__(
        self,
        schema: dict[str, pl.DataType],
        reducer: Reducer,
        pending_rows: int = DEFAULT_PENDING_ROWS,
    ) -> None:
        self.schema = schema
        self._schema = pl.Schema(schema)
        self._reducer = reducer
        self._limit = pending_rows
        self._base = pl.DataFrame(schema=schema)
        self._pending: list[pl.DataFrame] = []
        self._pending_height = 0

    def add(self, rows: pl.DataFrame) -> None:
        """Queue ``rows`` (same columns as the table); compact when due."""
        if rows.is_empty():
            return
        self._pending.append(rows.select(list(self.schema)))
        self._pending_height += rows.height
        if self._pending_height > max(self._limit, self._base.height):
            self.compact()

    def compact(self) -> None:
        """Reduce the pending rows into the panes they touch."""
        if not self._pending:
            return
        pending = pl.concat(self._pending, how="vertical_relaxed")
        self._pending = []
        self._pending_height = 0
        touched = pending.get_column("pane").unique()
        in_touched = pl.col("pane").is_in(touched.implode())
        old = self._base.filter(in_touched)
        rest = self._base.filter(~in_touched)
        merged = self._reducer(pl.concat([old, pending], how="vertical_relaxed"))
        self._base = pl.concat(
            [rest, merged.select(list(self.schema)).cast(self._schema)],
            how="vertical_relaxed",
        )

    def frame(self) -> pl.DataFrame:
        """Every row, compacted."""
        self.compact()
        return self._base

    def drop_panes(self, panes: pl.Series) -> None:
        """Forget the rows of ``panes``."""
        self.compact()
        self._base = self._base.filter(~pl.col("pane").is_in(panes.implode()))

    def clear(self) -> None:
        """Forget everything."""
        self._base = pl.DataFrame(schema=self.schema)
        self._pending = []
        self._pending_height = 0

    def replace(self, rows: pl.DataFrame) -> None:
        """Start over from ``rows`` (already reduced), as when restoring."""
        self.clear()
        self._base = rows.select(list(self.schema)).cast(self._schema)

    @property
    def height(self) -> int:
        """Rows held, compacted or not."""
        return self._base.height + self._pending_height

    def estimated_bytes(self) -> int:
        """Memory held by the rows, as Polars estimates it."""
        pending = sum(frame.estimated_size() for frame in self._pending)
        return int(self._base.estimated_size() + pending)
