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
DEFAULT_PENDING_ROWS = 500_000


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
        cutter: Reducer | None = None,
    ) -> None:
        self.schema = schema
        self._cutter = cutter
        self._schema = pl.Schema(schema)
        self._reducer = reducer
        self._limit = pending_rows
        self._base = pl.DataFrame(schema=schema)
        self._pending: list[pl.DataFrame] = []
        self._pending_panes: list[pl.Series] = []
        self._pending_height = 0

    def add(self, rows: pl.DataFrame) -> None:
        """Queue ``rows`` (same columns as the table); compact when due."""
        if rows.is_empty():
            return
        self._pending.append(rows.select(list(self.schema)))
        self._pending_panes.append(rows.get_column("pane").unique())
        self._pending_height += rows.height
        if self._pending_height > max(self._limit, self._base.height):
            self.compact()

    def compact(self) -> None:
        """Reduce the pending rows into the panes they touch.

        With a ``cutter``, the rows of a pane that only one pending frame
        holds (and the compacted rows do not) skip the summing: a frame
        has one row per key already, so they only need the cut. Input in
        time order mostly has such panes, so this saves most of the work.
        """
        if not self._pending:
            return
        pending = pl.concat(self._pending, how="vertical_relaxed")
        sources = pl.concat(
            [self._base.get_column("pane").unique(), *self._pending_panes]
        )
        self._pending = []
        self._pending_panes = []
        self._pending_height = 0
        if self._cutter is None:
            shared = pending.get_column("pane").unique()
        else:
            counted = sources.value_counts()
            shared = counted.filter(pl.col("count") > 1).get_column("pane")
        in_shared = pl.col("pane").is_in(shared.implode())
        parts = [self._base.filter(~in_shared)]
        merged = pl.concat(
            [self._base.filter(in_shared), pending.filter(in_shared)],
            how="vertical_relaxed",
        )
        if not merged.is_empty():
            parts.append(self._reducer(merged))
        if self._cutter is not None:
            alone = pending.filter(~in_shared)
            if not alone.is_empty():
                parts.append(self._cutter(alone))
        self._base = pl.concat(
            [part.select(list(self.schema)).cast(self._schema) for part in parts],
            how="vertical_relaxed",
        )

    def frame(self) -> pl.DataFrame:
        """Every row, compacted."""
        self.compact()
        return self._base

    def rows(self) -> pl.DataFrame:
        """Every row as it is, compacted or pending (a key may repeat: its
        rows add up to its value). For readers that sum rows by key anyway."""
        if not self._pending:
            return self._base
        return pl.concat([self._base, *self._pending], how="vertical_relaxed")

    def drop_panes(self, panes: pl.Series) -> None:
        """Forget the rows of ``panes``."""
        self.compact()
        self._base = self._base.filter(~pl.col("pane").is_in(panes.implode()))

    def clear(self) -> None:
        """Forget everything."""
        self._base = pl.DataFrame(schema=self.schema)
        self._pending = []
        self._pending_panes = []
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
