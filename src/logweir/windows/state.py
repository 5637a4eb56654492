"""The mergeable state behind the windows: per-pane tables and sketches.

Time is cut into *panes* (the largest duration dividing every window size
and step, one minute for the defaults); a window is the merge of its
panes, so a 1 h window costs no more to keep than its sixty 1 min panes,
and a hopping window shares panes with its neighbours.

Within a pane, events are counted per *cell*: one combination of status
class and small dimensions (status class, host, method, …). A batch is
grouped by cell once (:mod:`.batch`); the rows of each dimension are sums
of cells, formed when windows are emitted. Per pane the state holds:

* ``numeric``: requests and bytes per cell, exact;
* ``hist``: duration bucket counts per cell, exact (see :mod:`.quantiles`);
* ``items``: Misra–Gries summaries of paths, clients and user agents per
  status class (see :mod:`.topk`), from which the ``top_*`` lists of the
  overall and status-class rows are made;
* ``heavy``: counting columns per key of each heavy dimension, cut to the
  ``heavy_capacity`` keys with most requests per pane;
* ``hll``: a HyperLogLog union of client IPs per dimension row
  (see :mod:`.distinct`).

Everything merges exactly (sums, register maxima) except the Misra–Gries
cut and the heavy-key cut, which act only once a pane holds more distinct
values than their capacity.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import datasketches as ds
import polars as pl

from logweir.windows import distinct, topk
from logweir.windows.batch import (
    KINDS,
    STATUS_COLUMNS,
    BatchCounts,
    count_batch,
    detached,
)
from logweir.windows.dimensions import ALL
from logweir.windows.spec import WindowSpec, pane_seconds
from logweir.windows.tables import DEFAULT_PENDING_ROWS, PaneTable

GroupKey = tuple[str, str]

_GROUP_SEED = 120

__all__ = ["KINDS", "STATUS_COLUMNS", "GroupKey", "PaneState", "StateConfig"]


@dataclass(frozen=True)
class StateConfig:
    """What the state is keyed and bounded by; two states merge only if equal."""

    specs: tuple[WindowSpec, ...]
    small: tuple[str, ...]
    heavy: tuple[str, ...]
    top_n: int
    top_capacity: int
    heavy_capacity: int

    @property
    def pane_s(self) -> int:
        """Pane length in seconds."""
        return pane_seconds(self.specs)

    @property
    def small_strings(self) -> tuple[str, ...]:
        """Small dimensions read as they are (all but the status class)."""
        return tuple(name for name in self.small if name != "status_class")


_NUMERIC: dict[str, pl.DataType] = {
    "pane": pl.Int64(),
    "cell": pl.UInt64(),
    "requests": pl.UInt64(),
    "bytes": pl.UInt64(),
}
_HIST: dict[str, pl.DataType] = {
    "pane": pl.Int64(),
    "cell": pl.UInt64(),
    "bucket": pl.Int16(),
    "count": pl.UInt64(),
}
_ITEMS: dict[str, pl.DataType] = {
    "pane": pl.Int64(),
    "status_class": pl.UInt8(),
    "kind": pl.UInt8(),
    "item": pl.String(),
    "count": pl.UInt64(),
    "group": pl.UInt64(),
    "ihash": pl.UInt64(),
}
_HEAVY: dict[str, pl.DataType] = {
    "pane": pl.Int64(),
    "dimension": pl.String(),
    "key": pl.String(),
    "requests": pl.UInt64(),
    "bytes": pl.UInt64(),
    **{name: pl.UInt64() for name in STATUS_COLUMNS},
}


def _tables(config: StateConfig, pending_rows: int) -> dict[str, PaneTable]:
    return {
        "numeric": PaneTable(
            _NUMERIC,
            lambda rows: _summed(rows, ["pane", "cell"]),
            pending_rows,
            cutter=_as_is,
        ),
        "hist": PaneTable(
            _HIST,
            lambda rows: _summed(rows, ["pane", "cell", "bucket"]),
            pending_rows,
            cutter=_as_is,
        ),
        "items": PaneTable(
            _ITEMS,
            lambda rows: _reduce_items(rows, config.top_capacity),
            pending_rows,
            cutter=lambda rows: _cut_items(rows, config.top_capacity),
        ),
        "heavy": PaneTable(
            _HEAVY, lambda rows: _cut_heavy(rows, config.heavy_capacity), pending_rows
        ),
    }


def _as_is(rows: pl.DataFrame) -> pl.DataFrame:
    return rows


def _summed(rows: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    return rows.group_by(keys).agg(pl.all().sum())


def _reduce_items(rows: pl.DataFrame, capacity: int) -> pl.DataFrame:
    """Sum item counts per (pane, status class, kind, item), then the
    Misra–Gries cut. Strings are gathered once per result row rather than
    carried through the ``group_by``."""
    numbered = rows.with_row_index("row")
    summed = numbered.group_by(
        (pl.col("group") ^ pl.col("ihash")).alias("item_key")
    ).agg(pl.col("count").sum(), pl.col("row").first())
    picked = numbered.select(pl.exclude("row", "count"))[summed.get_column("row")]
    reduced = picked.with_columns(summed.get_column("count"))
    return _cut_items(reduced, capacity)


def _cut_items(rows: pl.DataFrame, capacity: int) -> pl.DataFrame:
    """The Misra–Gries cut, with the kept text copied out of the old
    buffers (see :func:`~logweir.windows.batch.detached`)."""
    return topk.truncate(rows, "group", capacity).with_columns(detached("item"))


def _cut_heavy(rows: pl.DataFrame, capacity: int) -> pl.DataFrame:
    """Sum heavy rows per key and keep each pane's ``capacity`` busiest keys.

    Ties are broken by key, so the cut does not depend on row order.
    """
    summed = rows.group_by(["pane", "dimension", "key"]).agg(pl.all().sum())
    ordered = summed.sort(
        ["pane", "dimension", "requests", "key"],
        descending=[False, False, True, False],
    )
    kept = ordered.group_by(["pane", "dimension"], maintain_order=True).head(capacity)
    return kept.with_columns(detached("key"))


class PaneState:
    """Window state per pane for one configuration; see the module docstring.

    :meth:`absorb` counts a batch of events that all have a timestamp; the
    aggregator decides which panes to emit and drop.
    """

    def __init__(
        self, config: StateConfig, pending_rows: int = DEFAULT_PENDING_ROWS
    ) -> None:
        self.config = config
        self.tables = _tables(config, pending_rows)
        cell_schema: dict[str, pl.DataType] = {"cell": pl.UInt64()}
        cell_schema["status_class"] = pl.String()
        cell_schema.update({name: pl.String() for name in config.small_strings})
        self.cells = pl.DataFrame(schema=cell_schema)
        self.groups_of_cell: dict[int, list[GroupKey]] = {}
        self.group_map = pl.DataFrame(
            schema={
                "cell": pl.UInt64,
                "dimension": pl.String,
                "key": pl.String,
                "ghash": pl.UInt64,
            }
        )
        self.hll: dict[int, dict[GroupKey, ds.hll_union]] = {}

    # -- feeding ---------------------------------------------------------

    def absorb(self, events: pl.DataFrame) -> None:
        """Count a batch of events (each with a timestamp) into its panes."""
        counts = count_batch(
            events, self.config.pane_s, self.config.small_strings, self.config.heavy
        )
        self.add_counts(counts)

    def add_counts(self, counts: BatchCounts) -> None:
        """Add counts made by :func:`~logweir.windows.batch.count_batch`."""
        self.learn_cells(counts.cells)
        self.tables["numeric"].add(counts.numeric)
        self.tables["hist"].add(counts.hist)
        self.tables["items"].add(counts.items)
        if self.config.heavy:
            self.tables["heavy"].add(counts.heavy)
        self._add_clients(counts.clients)

    def learn_cells(self, cells: pl.DataFrame) -> None:
        """Record cells not seen before, and the dimension rows each feeds.

        ``cells`` has ``cell``, ``status_class`` (``"2xx"``…) and the other
        small dimensions.
        """
        new = cells.join(self.cells, on="cell", how="anti")
        if new.is_empty():
            return
        new = new.unique("cell").select(
            [
                detached(name) if name != "cell" else pl.col(name)
                for name in self.cells.columns
            ]
        )
        self.cells = pl.concat([self.cells, new])
        for row in new.iter_rows(named=True):
            groups: list[GroupKey] = [(ALL, "")]
            for name in self.config.small:
                if row[name] is not None:
                    groups.append((name, row[name]))
            self.groups_of_cell[row["cell"]] = groups
        pairs = pl.DataFrame(
            [
                (cell, dimension, key)
                for cell, groups in self.groups_of_cell.items()
                for dimension, key in groups
            ],
            schema={"cell": pl.UInt64, "dimension": pl.String, "key": pl.String},
            orient="row",
        )
        self.group_map = pairs.with_columns(
            ghash=pl.struct("dimension", "key").hash(_GROUP_SEED)
        )

    def _add_clients(self, rows: pl.DataFrame) -> None:
        """Fold each cell's distinct clients into its dimension rows' unions.

        Clients arrive as 64-bit hashes, fed to the sketch as signed
        integers: DataSketches takes those about twice as fast as strings.
        """
        per_cell = rows.group_by("pane", "cell").agg(
            pl.col("client").reinterpret(signed=True)
        )
        for pane, cell, clients in per_cell.iter_rows():
            sketch = distinct.sketch_of(clients)
            unions = self.hll.setdefault(pane, {})
            for group in self.groups_of_cell[cell]:
                union = unions.get(group)
                if union is None:
                    union = unions[group] = distinct.new_union()
                distinct.add_sketch(union, sketch)

    # -- combining and forgetting ------------------------------------------

    def merge(self, other: PaneState) -> None:
        """Add ``other`` (same config, disjoint events) into this state."""
        self.learn_cells(other.cells)
        for name, table in self.tables.items():
            table.add(other.tables[name].frame())
        for pane, groups in other.hll.items():
            unions = self.hll.setdefault(pane, {})
            for group, union in groups.items():
                target = unions.get(group)
                if target is None:
                    target = unions[group] = distinct.new_union()
                distinct.merge_into(target, union)

    def panes(self) -> pl.Series:
        """The panes holding any event, sorted."""
        numeric = self.tables["numeric"].frame()
        return numeric.get_column("pane").unique().sort()

    def drop_panes(self, panes: Iterable[int]) -> None:
        """Forget ``panes`` entirely."""
        series = pl.Series("pane", list(panes), dtype=pl.Int64)
        if series.is_empty():
            return
        for table in self.tables.values():
            table.drop_panes(series)
        for pane in series.to_list():
            self.hll.pop(pane, None)

    def estimated_bytes(self) -> int:
        """Rough memory held: tables as Polars counts them, 4 KiB per union."""
        tables = sum(table.estimated_bytes() for table in self.tables.values())
        unions = sum(len(groups) for groups in self.hll.values())
        return tables + unions * 4096

    # -- serialization -----------------------------------------------------

    def to_frames(self) -> dict[str, pl.DataFrame]:
        """Every part as a Polars frame (sketches in their own binary form)."""
        frames = {name: table.frame() for name, table in self.tables.items()}
        frames["cells"] = self.cells
        frames["hll"] = pl.DataFrame(
            [
                (pane, dimension, key, distinct.to_bytes(union))
                for pane, groups in self.hll.items()
                for (dimension, key), union in groups.items()
            ],
            schema={
                "pane": pl.Int64,
                "dimension": pl.String,
                "key": pl.String,
                "sketch": pl.Binary,
            },
            orient="row",
        )
        return frames

    def load_frames(self, frames: dict[str, pl.DataFrame]) -> None:
        """Replace the state by one written with :meth:`to_frames`."""
        for name, table in self.tables.items():
            table.replace(frames[name])
        self.learn_cells(frames["cells"])
        self.hll = {}
        for pane, dimension, key, sketch in frames["hll"].iter_rows():
            unions = self.hll.setdefault(pane, {})
            unions[(dimension, key)] = distinct.from_bytes(sketch)


def _name_status_classes(cells: pl.DataFrame) -> pl.DataFrame:
    """Status classes as their names (3 becomes ``"3xx"``)."""
    return cells.with_columns(
        (pl.col("status_class").cast(pl.String) + pl.lit("xx")).alias("status_class")
    )
