"""Keyed Polars tables that absorb batches cheaply and compact now and then.

Every part of the window state that is not a sketch object is a table with
a ``pane`` column: appending a batch's rows is a list append, and the rows
are summed (and, for summaries, cut) only when the pending rows outgrow
the compacted ones, so each row is re-read a bounded number of times.
Compaction touches only the panes that have pending rows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
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
        base_panes = self._base.get_column("pane").unique().to_numpy()
        pending_panes = [panes.to_numpy() for panes in self._pending_panes]
        self._pending = []
        self._pending_panes = []
        self._pending_height = 0
        # Which panes to sum, worked out on the few distinct panes with
        # NumPy; whole frames are filtered only where a cut splits them
        # (follow mode compacts its open pane several times a second, and
        # each query costs more than the work on its rows).
        in_pending = np.unique(np.concatenate(pending_panes))
        if self._cutter is None:
            shared = in_pending
        else:
            values, counts = np.unique(
                np.concatenate([base_panes, *pending_panes]), return_counts=True
            )
            shared = values[counts > 1]
        parts = []
        base_shared = np.isin(base_panes, shared)
        if base_shared.all():
            merging = [self._base]
        elif not base_shared.any():
            parts.append(self._base)
            # (empty, but it gives the concatenation the table's types)
            merging = [self._base.clear()]
        else:
            inside, outside = split_panes(self._base, shared)
            parts.append(outside)
            merging = [inside]
        pending_shared = np.isin(in_pending, shared)
        alone = pending.clear()
        if pending_shared.all():
            merging.append(pending)
        elif pending_shared.any():
            inside, alone = split_panes(pending, shared)
            merging.append(inside)
        else:
            alone = pending
        merged = pl.concat(merging, how="vertical_relaxed")
        if not merged.is_empty():
            parts.append(self._reducer(merged))
        if self._cutter is not None and not alone.is_empty():
            parts.append(self._cutter(alone))
        self._base = self._stacked(parts)

    def _stacked(self, parts: list[pl.DataFrame]) -> pl.DataFrame:
        """``parts`` in the table's columns and types, one after another."""
        if not parts:
            return pl.DataFrame(schema=self.schema)
        shaped = [self._shaped(part) for part in parts]
        if len(shaped) == 1:
            return shaped[0]
        stacked = pl.concat(shaped, how="vertical")
        # (the parts are often slices of the former rows: copied now and
        # then so that readers do not go through many pieces)
        return stacked.rechunk() if stacked.n_chunks() > 16 else stacked

    def _shaped(self, part: pl.DataFrame) -> pl.DataFrame:
        """``part`` in the table's column order and types (a cast only where
        a type differs: each is a query of its own)."""
        if part.schema == self._schema:
            return part
        ordered = pl.DataFrame([part.get_column(name) for name in self.schema])
        if ordered.schema == self._schema:
            return ordered
        return ordered.cast(self._schema)

    def frame(self) -> pl.DataFrame:
        """Every row, compacted."""
        self.compact()
        return self._base

    def rows(self) -> pl.DataFrame:
        """Every row as it is, compacted or pending (a key may repeat: its
        rows add up to its value). For readers that sum rows by key anyway."""
        if not self._pending:
            return self._base
        if len(self._pending) > 1:
            # Kept as one frame for the next call: follow mode reads these
            # rows several times a second while a batch's frame is added
            # between reads, and concatenating them all again each time
            # costs in proportion to the frames. (The panes of each frame
            # stay apart, so a compaction sums the same panes.)
            pending = pl.concat(self._pending, how="vertical_relaxed")
            if pending.n_chunks() > 64:
                pending = pending.rechunk()
            self._pending = [pending]
        return pl.concat([self._base, self._pending[0]], how="vertical_relaxed")

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


#: Rows up to which :func:`split_panes` works with NumPy (and a slice where
#: the panes' rows are contiguous, as the compacted rows of the newest
#: panes are) rather than with two Polars filters.
SMALL_SPLIT_ROWS = 500_000


def split_panes(
    frame: pl.DataFrame, panes: np.ndarray
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the rows of ``panes``, the other rows) of ``frame``, each in order."""
    if frame.height > SMALL_SPLIT_ROWS:
        listed = pl.Series("pane", panes).cast(frame.schema["pane"])
        wanted = pl.col("pane").is_in(listed.implode())
        return frame.filter(wanted), frame.filter(~wanted)
    mask = np.isin(frame.get_column("pane").to_numpy(), panes)
    inside = np.flatnonzero(mask)
    if len(inside) == frame.height:
        return frame, frame.clear()
    if len(inside) == 0:
        return frame.clear(), frame
    first, end = int(inside[0]), int(inside[-1]) + 1
    if end - first == len(inside):
        if end == frame.height:
            return frame.slice(first), frame.slice(0, first)
        if first == 0:
            return frame.slice(0, end), frame.slice(end)
    return frame.gather(inside), frame.gather(np.flatnonzero(~mask))
