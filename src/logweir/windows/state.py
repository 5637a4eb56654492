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
  overall and status-class rows are made; items are kept as 64-bit hashes,
  and their text once per distinct value in ``names`` (a busy path is in
  every pane's summary, its text only once);
* ``heavy``: counting columns per key of each heavy dimension, cut to the
  ``heavy_capacity`` keys with most requests per pane;
* ``registers``: HyperLogLog registers of client IPs per cell
  (see :mod:`.distinct`); a dimension row's registers are the maximum
  over its cells'.

Everything merges exactly (sums, register maxima) except the Misra–Gries
cut and the heavy-key cut, which act only once a pane holds more distinct
values than their capacity.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import polars as pl

from logweir.windows import distinct, topk
from logweir.windows.batch import (
    ITEM_COLUMNS,
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
#: Names of a batch up to which new ones are found by binary search, not a join.
_FEW_NAMES = 20_000
#: Pairs of a batch up to which their registers are found in plain Python.
_FEW_PAIRS = 500

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
#: Item text by hash (hashes are seeded per kind, so they never clash).
NAMES: dict[str, pl.DataType] = {"ihash": pl.UInt64(), "item": pl.String()}
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
            ITEM_COLUMNS,
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
    Misra–Gries cut."""
    summed = rows.group_by((pl.col("group") ^ pl.col("ihash")).alias("item_key")).agg(
        pl.col("count").sum(),
        pl.col("pane", "status_class", "kind", "group", "ihash").first(),
    )
    return _cut_items(summed.drop("item_key"), capacity)


def _cut_items(rows: pl.DataFrame, capacity: int) -> pl.DataFrame:
    """The Misra–Gries cut of each (pane, status class, kind) group."""
    return topk.truncate(rows, "group", capacity)


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
        #: Per cell, the hashes of the dimension rows it feeds, ascending.
        self._ghashes_of_cell: dict[int, list[int]] = {}
        self.registers = distinct.Registers()
        self.names = pl.DataFrame(schema=NAMES)
        #: The hashes in ``names``, sorted (None: to be read from it when
        #: needed).
        self._known: np.ndarray | None = None

    # -- feeding ---------------------------------------------------------

    def absorb(self, events: pl.DataFrame) -> pl.Series:
        """Count a batch of events (each with a timestamp) into its panes;
        return the panes it touched."""
        counts = count_batch(
            events, self.config.pane_s, self.config.small_strings, self.config.heavy
        )
        self.add_counts(counts)
        # NumPy: a Polars unique is a query of its own, and these are few.
        panes = np.unique(counts.numeric.get_column("pane").to_numpy())
        return pl.Series("pane", panes, dtype=pl.Int64)

    def add_counts(self, counts: BatchCounts) -> None:
        """Add counts made by :func:`~logweir.windows.batch.count_batch`."""
        self.learn_cells(counts.cells)
        self.tables["numeric"].add(counts.numeric)
        self.tables["hist"].add(counts.hist)
        self.tables["items"].add(counts.items)
        if self.config.heavy:
            self.tables["heavy"].add(counts.heavy)
        self.learn_names(counts.names)
        self._add_clients(counts.pairs, counts.clients)

    def learn_names(self, names: pl.DataFrame) -> None:
        """Keep the text of items not seen before (``ihash, item`` rows,
        one per hash), copied out of the batch's buffers."""
        if names.height <= _FEW_NAMES:
            # A binary search in the sorted hashes held: the anti join reads
            # every name held, many times what a follow-mode batch brings.
            # (Sorted needles: NumPy then starts each search at the last.)
            known = self._known_names()
            hashes = names.get_column("ihash").to_numpy()
            order = np.argsort(hashes)
            ordered = hashes[order]
            at = np.searchsorted(known, ordered)
            inside = at < len(known)
            absent = np.ones(len(hashes), dtype=bool)
            absent[inside] = known[at[inside]] != ordered[inside]
            if not absent.any():
                return
            fresh = np.empty(len(hashes), dtype=bool)
            fresh[order] = absent
            new = names.filter(pl.Series(fresh))
            self._known = np.insert(known, at[absent], ordered[absent])
        else:
            new = names.join(self.names, on="ihash", how="anti")
            if new.is_empty():
                return
            self._known = None
        self.names = pl.concat([self.names, new.with_columns(detached("item"))])
        if self.names.n_chunks() > 64:
            self.names = self.names.rechunk()
        if self.names.height > max(4 * self.tables["items"].height, 100_000):
            self._forget_names()

    def _known_names(self) -> np.ndarray:
        """The hashes in :attr:`names`, sorted (made again after it was
        replaced)."""
        if self._known is None:
            self._known = np.sort(self.names.get_column("ihash").to_numpy())
        return self._known

    def learn_cells(self, cells: pl.DataFrame) -> None:
        """Record cells not seen before, and the dimension rows each feeds.

        ``cells`` has ``cell``, ``status_class`` (``"2xx"``…) and the other
        small dimensions.
        """
        # ``groups_of_cell`` has every cell of ``self.cells``: a dict lookup
        # per cell costs less than an anti join.
        known = self.groups_of_cell
        fresh = [cell not in known for cell in cells.get_column("cell").to_list()]
        if not any(fresh):
            return
        new = cells.filter(pl.Series(fresh, dtype=pl.Boolean))
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
        ghashes: dict[int, list[int]] = {}
        for cell, ghash in self.group_map.select("cell", "ghash").iter_rows():
            ghashes.setdefault(cell, []).append(ghash)
        self._ghashes_of_cell = {cell: sorted(found) for cell, found in ghashes.items()}

    def _add_clients(self, pairs: pl.DataFrame, clients: pl.DataFrame) -> None:
        """Fold the batch's client hashes into the registers of the pane and
        every dimension row of their cell.

        ``pairs`` numbers the batch's (pane, cell) pairs; ``clients`` has
        the pair, register and rank of every event with a client. Each
        pair feeds a few rows (the overall row, its status class, its
        method…): the events are folded in once per such layer.
        """
        if clients.is_empty():
            return
        if pairs.height <= _FEW_PAIRS:
            # The same fan-out, in the same order, from a dict: a join and a
            # sort cost more than the loop for a follow-mode batch's pairs.
            sources: list[int] = []
            panes: list[int] = []
            ghashes: list[int] = []
            cells = pairs.get_column("cell").to_list()
            for number, (pane, cell) in enumerate(
                zip(pairs.get_column("pane").to_list(), cells, strict=True)
            ):
                fed = self._ghashes_of_cell.get(cell, [])
                sources.extend([number] * len(fed))
                panes.extend([pane] * len(fed))
                ghashes.extend(fed)
            rows = self.registers.rows_of(
                np.array(panes, dtype=np.int64), np.array(ghashes, dtype=np.uint64)
            )
            layers = _layers_of(np.array(sources, dtype=np.int64), rows, pairs.height)
        else:
            fan = (
                pairs.with_row_index("pair")
                .join(self.group_map.select("cell", "ghash"), on="cell")
                .sort("pair", "ghash")
            )
            rows = self.registers.rows_of(
                fan.get_column("pane").to_numpy(), fan.get_column("ghash").to_numpy()
            )
            layers = _layers_of(fan.get_column("pair").to_numpy(), rows, pairs.height)
        pair = clients.get_column("pair").to_numpy()
        register = clients.get_column("register").to_numpy()
        rank = clients.get_column("rank").to_numpy()
        for layer in layers:
            target = layer[pair]
            keep = target >= 0
            if keep.all():
                self.registers.add(target, register, rank)
            else:
                self.registers.add(target[keep], register[keep], rank[keep])

    # -- combining and forgetting ------------------------------------------

    def merge(self, other: PaneState) -> None:
        """Add ``other`` (same config, disjoint events) into this state."""
        self.learn_cells(other.cells)
        for name, table in self.tables.items():
            table.add(other.tables[name].frame())
        self.learn_names(other.names)
        self.registers.merge(other.registers)

    def compact(self) -> None:
        """Reduce every table's pending rows (see :class:`.PaneTable`)."""
        for table in self.tables.values():
            table.compact()

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
        self.registers.drop_panes(set(series.to_list()))
        self._forget_names()

    def _forget_names(self) -> None:
        """Drop the text of items no summary holds any more, once it is
        most of what is kept (so that this runs now and then, not on
        every drop)."""
        items = self.tables["items"].frame()
        if self.names.height <= max(2 * items.height, 10_000):
            return
        self.names = self.names.join(
            items.select("ihash").unique(), on="ihash", how="semi"
        ).rechunk()
        self._known = None

    def estimated_bytes(self) -> int:
        """Rough memory held: tables and names as Polars counts them, and
        the registers' array."""
        tables = sum(table.estimated_bytes() for table in self.tables.values())
        names = int(self.names.estimated_size())
        return tables + names + self.registers.estimated_bytes()

    # -- serialization -----------------------------------------------------

    def to_frames(self) -> dict[str, pl.DataFrame]:
        """Every part as a Polars frame (sketches in their own binary form)."""
        frames = {name: table.frame() for name, table in self.tables.items()}
        frames["cells"] = self.cells
        frames["names"] = self.names
        frames["registers"], _ = self.registers.to_parts()
        return frames

    def registers_bytes(self) -> bytes:
        """The registers of :meth:`to_frames`' ``registers`` keys, raw."""
        return self.registers.to_parts()[1]

    def load_frames(
        self, frames: dict[str, pl.DataFrame], registers: bytes = b""
    ) -> None:
        """Replace the state by one written with :meth:`to_frames` and
        :meth:`registers_bytes`."""
        for name, table in self.tables.items():
            table.replace(frames[name])
        self.learn_cells(frames["cells"])
        self.names = frames["names"]
        self._known = None
        self.registers = distinct.Registers.from_parts(frames["registers"], registers)


def _layers_of(sources: np.ndarray, targets: np.ndarray, size: int) -> np.ndarray:
    """A ``(fan-out, size)`` array: row k maps each source to its k-th
    target (or -1). ``sources`` is sorted; it pairs with ``targets``."""
    if len(sources) == 0:
        return np.full((0, size), -1, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, sources[1:] != sources[:-1]])
    lengths = np.diff(np.r_[starts, len(sources)])
    depth = np.arange(len(sources)) - np.repeat(starts, lengths)
    result = np.full((int(lengths.max()), size), -1, dtype=np.int64)
    result[depth, sources] = targets
    return result


def _name_status_classes(cells: pl.DataFrame) -> pl.DataFrame:
    """Status classes as their names (3 becomes ``"3xx"``)."""
    return cells.with_columns(
        (pl.col("status_class").cast(pl.String) + pl.lit("xx")).alias("status_class")
    )
