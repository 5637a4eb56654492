"""Turning pane state into :data:`~logweir.schema.WINDOW_SCHEMA` rows.

Windows to emit are given as a frame ``(spec, start_s)``: the index of a
spec in the config and the window's start in epoch seconds. Every metric is
formed for all those windows at once.

A state row (a pane's counts for one cell, one duration bucket, one item…)
counts towards every window its pane is in and every dimension row its
cell feeds. Both fan-outs are small integer lookups (*layers*: the k-th
window of each pane, the k-th group of each cell), done with NumPy on the
rows' pane and cell numbers, so each metric is one pass of array
arithmetic, plus one Polars query for the item lists. Follow mode forms
the few open windows many times a second: there, the fixed cost of each
query is what counts (about a quarter of a millisecond each, measured), so
the steps are kept to a handful of queries in all.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from json.encoder import encode_basestring

import numpy as np
import polars as pl

from logweir.schema import WINDOW_SCHEMA
from logweir.windows import distinct
from logweir.windows.batch import KINDS, STATUS_COLUMNS
from logweir.windows.dimensions import ALL, STATUS_CLASSES
from logweir.windows.quantiles import QUANTILES, quantiles
from logweir.windows.state import PaneState
from logweir.windows.tables import split_panes

_US = 1_000_000
#: Kinds of top list: the list's index is ``wid * groups * KINDS + gid * KINDS
#: + kind``.
_KIND_SPAN = len(KINDS)
#: Spreads list numbers over 64 bits before they are mixed into item hashes.
_LIST_MIX = 0x9E3779B97F4A7C15
#: Tables whose rows emission only sums by key (no cut to apply first).
_SUMMED = frozenset({"numeric", "hist"})
#: Windows or panes one emission may span (as a sanity bound).
MAX_INDEX = 1 << 24


@dataclass(frozen=True)
class _Plan:
    """The windows being emitted and how panes and groups map onto them.

    * ``spec``, ``start_s``: per window (``wid`` is the index);
    * ``pane_ids``: the panes any window needs, sorted (``pid`` the index);
    * ``window_layers``: ``(fan-out, panes)``, the wid of each pane's k-th
      window (or -1);
    * ``groups``: ``gid, dimension, key``; ``cells`` (sorted) and
      ``cell_layers``: the gid of each cell's k-th group (or -1);
    * ``overall_gid``, ``class_gids``: see :func:`_class_groups`;
    * ``tables``: the state's tables, only the rows of those panes.
    """

    spec: np.ndarray
    start_s: np.ndarray
    pane_ids: np.ndarray
    window_layers: np.ndarray
    panes_per_window: np.ndarray
    groups: pl.DataFrame
    cells: np.ndarray
    cell_layers: np.ndarray
    overall_gid: int
    class_gids: np.ndarray
    tables: dict[str, pl.DataFrame]

    @property
    def windows(self) -> int:
        return len(self.spec)

    @property
    def group_count(self) -> int:
        return self.groups.height


def emit(state: PaneState, windows: pl.DataFrame) -> pl.DataFrame:
    """Rows for ``windows`` (``spec``, ``start_s``), sorted by window and row."""
    if windows.is_empty():
        return pl.DataFrame(schema=WINDOW_SCHEMA)
    plan = _plan(state, windows)
    # Every metric is formed as a dense array over the (window, group)
    # targets; the rows are the targets with requests, and each metric is
    # read at those with NumPy rather than joined to them (a join is a
    # query of its own, which is most of the cost when follow mode forms
    # one open window).
    present, columns = _small_rows(state, plan)
    columns.update(_quantile_rows(plan, present))
    columns.update(_unique_rows(state, plan, present))
    groups = plan.groups
    labelled = (
        pl.DataFrame([groups.get_column("dimension"), groups.get_column("key")])
        .gather(present % plan.group_count)
        .hstack(list(columns.values()))
    )
    tops = _top_rows(state, plan, present)
    if tops is not None:
        labelled = labelled.hstack(tops.get_columns())
    labelled = labelled.hstack(
        _window_columns(state, plan, present // plan.group_count)
    )
    heavy = _heavy_rows(state, plan)
    if heavy is None:
        return _finish(labelled.lazy(), set(labelled.columns))
    heavy = heavy.hstack(
        _window_columns(state, plan, heavy.get_column("wid").to_numpy())
    ).drop("wid")
    both = pl.concat([labelled.lazy(), heavy.lazy()], how="diagonal_relaxed")
    return _finish(both, set(labelled.columns) | set(heavy.columns))


# -- planning ------------------------------------------------------------------


def _plan(state: PaneState, windows: pl.DataFrame) -> _Plan:
    pane_s = state.config.pane_s
    sizes = np.array([spec.size_s for spec in state.config.specs], dtype=np.int64)
    spec = windows.get_column("spec").cast(pl.Int64).to_numpy()
    start = windows.get_column("start_s").cast(pl.Int64).to_numpy()
    order = np.lexsort((start, spec))
    spec, start = spec[order], start[order]
    first = start // pane_s
    count = (start + sizes[spec]) // pane_s - first
    wid = np.repeat(np.arange(len(spec)), count)
    pane = np.repeat(first, count) + (
        np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    )
    pane_ids = np.unique(pane)
    if len(spec) > MAX_INDEX or len(pane_ids) > MAX_INDEX:
        raise ValueError(f"too many windows or panes at once: {len(spec)}")
    groups, cells, cell_layers, (overall_gid, class_gids) = _groups(state)
    return _Plan(
        spec=spec,
        start_s=start,
        pane_ids=pane_ids,
        window_layers=layers(np.searchsorted(pane_ids, pane), wid, len(pane_ids)),
        panes_per_window=count,
        groups=groups,
        cells=cells,
        cell_layers=cell_layers,
        overall_gid=overall_gid,
        class_gids=class_gids,
        tables=_needed_rows(state, pane_ids),
    )


def _needed_rows(state: PaneState, panes: np.ndarray) -> dict[str, pl.DataFrame]:
    """The state's tables cut to ``panes``, once for every step below.

    Follow mode forms the one or two open windows of each size from a
    state holding an hour of panes; without the cut every step would go
    through every pane's rows.
    """
    # Counts and buckets are summed by key below whether or not their rows
    # were compacted (which costs a few queries a table); summaries (items,
    # heavy keys) need their cut first.
    frames = {
        name: table.rows() if name in _SUMMED else table.frame()
        for name, table in state.tables.items()
    }
    held = frames["numeric"].get_column("pane")
    if held.is_empty():
        return frames
    inside = held.min() >= panes[0] and held.max() <= panes[-1]
    if inside and len(panes) >= held.n_unique():
        return frames  # every pane is needed: the cut saves nothing
    return {
        name: split_panes(frame, panes)[0] if frame.height else frame
        for name, frame in frames.items()
    }


_Groups = tuple[pl.DataFrame, np.ndarray, np.ndarray, tuple[int, np.ndarray]]
#: The group numbering of the last group map seen (follow mode forms rows
#: many times a second from the same map): (map, what :func:`_groups` gives).
_groups_cache: tuple[pl.DataFrame, _Groups] | None = None


def _groups(state: PaneState) -> _Groups:
    """``gid, dimension, key, ghash`` per dimension row, the sorted cells,
    the gid of each cell's k-th group as :func:`layers`, and the overall and
    status-class gids (:func:`_class_groups`).

    The group map is replaced (never changed in place) when new cells are
    learned, so the numbering is reused while the same frame is current.
    """
    global _groups_cache
    cached = _groups_cache
    if cached is not None and cached[0] is state.group_map:
        return cached[1]
    mapping = state.group_map
    groups = (
        mapping.select("dimension", "key", "ghash")
        .unique("ghash")
        .sort("dimension", "key")
        .with_row_index("gid")
    )
    numbered = mapping.join(groups.select("ghash", "gid"), on="ghash")
    cell_of = numbered.get_column("cell").to_numpy()
    cells = np.unique(cell_of)
    cell_layers = layers(
        np.searchsorted(cells, cell_of),
        numbered.get_column("gid").to_numpy().astype(np.int64),
        len(cells),
    )
    found = (groups, cells, cell_layers, _class_groups(groups))
    _groups_cache = (mapping, found)
    return found


def layers(sources: np.ndarray, targets: np.ndarray, size: int) -> np.ndarray:
    """A ``(fan-out, size)`` array: row k maps each source index to its k-th
    target index (or -1), from (source, target) index pairs."""
    if len(sources) == 0:
        return np.full((0, size), -1, dtype=np.int64)
    order = np.argsort(sources, kind="stable")
    sources, targets = sources[order], targets[order]
    starts = np.flatnonzero(np.r_[True, sources[1:] != sources[:-1]])
    lengths = np.diff(np.r_[starts, len(sources)])
    depth = np.arange(len(sources)) - np.repeat(starts, lengths)
    result = np.full((int(lengths.max()), size), -1, dtype=np.int64)
    result[depth, sources] = targets
    return result


@dataclass(frozen=True)
class _Fanned:
    """Rows of a table sent to every (window, group) they count in:
    ``target`` is ``wid * groups + gid``, ``row`` the table row."""

    target: np.ndarray
    row: np.ndarray


def _fan_out(plan: _Plan, panes: np.ndarray, cells: np.ndarray | None) -> _Fanned:
    """Where each table row (by its pane and, if given, cell) counts.

    Rows of panes outside the plan go nowhere; without ``cells``, every
    row goes to group 0 (the caller adds the group itself).
    """
    found = np.searchsorted(plan.pane_ids, panes).clip(0, len(plan.pane_ids) - 1)
    inside = np.flatnonzero(plan.pane_ids[found] == panes)
    pids = found[inside]
    targets, rows = [], []
    groups = plan.group_count
    if cells is None:
        group_layers = [np.zeros(len(inside), dtype=np.int64)]
    else:
        index = np.searchsorted(plan.cells, cells[inside])
        group_layers = [layer[index] for layer in plan.cell_layers]
    for windows in plan.window_layers:
        wid = windows[pids]
        for gid in group_layers:
            keep = (wid >= 0) & (gid >= 0)
            targets.append(wid[keep] * groups + gid[keep])
            rows.append(inside[keep])
    if not targets:
        empty = np.zeros(0, dtype=np.int64)
        return _Fanned(empty, empty)
    return _Fanned(np.concatenate(targets), np.concatenate(rows))


def _at(keys: np.ndarray, targets: np.ndarray, size: int) -> np.ndarray:
    """The position in ``keys`` (distinct, below ``size``) of each of
    ``targets``, or -1 for a target not among them."""
    position = np.full(size, -1, dtype=np.int64)
    position[keys] = np.arange(len(keys))
    result: np.ndarray = position[targets]
    return result


# -- metrics -----------------------------------------------------------------


def _small_rows(
    state: PaneState, plan: _Plan
) -> tuple[np.ndarray, dict[str, pl.Series]]:
    """The targets (``wid * groups + gid``) that have rows, sorted, and the
    exact counting columns of those rows (overall and small dimensions)."""
    numeric = plan.tables["numeric"]
    cells = numeric.get_column("cell").to_numpy()
    fanned = _fan_out(plan, numeric.get_column("pane").to_numpy(), cells)
    size = plan.windows * plan.group_count
    requests = numeric.get_column("requests").to_numpy()[fanned.row]
    sizes = numeric.get_column("bytes").to_numpy()[fanned.row]
    totals = {
        "requests": _summed(fanned.target, requests, size),
        "bytes": _summed(fanned.target, sizes, size),
    }
    classes = _cell_classes(state, cells)[fanned.row]
    for number, name in zip(STATUS_CLASSES, STATUS_COLUMNS, strict=True):
        totals[name] = _summed(
            fanned.target, np.where(classes == number, requests, 0), size
        )
    present = np.flatnonzero(_summed(fanned.target, np.ones_like(requests), size))
    return present, {
        name: pl.Series(name, values[present], dtype=pl.UInt64)
        for name, values in totals.items()
    }


def _summed(target: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """Exact integer sums of ``values`` per target (0 to ``size - 1``)."""
    total = np.zeros(size, dtype=np.uint64)
    np.add.at(total, target, values.astype(np.uint64, copy=False))
    return total


#: The status class numbers of the last cell table seen: (cells, ids in
#: order, classes in that order). Cells are replaced, never changed in
#: place, when new ones are learned.
_classes_cache: tuple[pl.DataFrame, np.ndarray, np.ndarray] | None = None


def _cell_classes(state: PaneState, cells: np.ndarray) -> np.ndarray:
    """The status class number (1-5, 0 for none) of each cell."""
    global _classes_cache
    cached = _classes_cache
    if (
        cached is not None
        and cached[0] is state.cells
        and len(cached[1]) == state.cells.height
    ):
        ids, classes = cached[1], cached[2]
    else:
        known = state.cells
        ids = known.get_column("cell").to_numpy()
        classes = (
            known.get_column("status_class")
            .str.head(1)
            .cast(pl.UInt8, strict=False)
            .fill_null(0)
            .to_numpy()
        )
        order = np.argsort(ids)
        ids, classes = ids[order], classes[order]
        _classes_cache = (known, ids, classes)
    found = np.searchsorted(ids, cells).clip(0, len(ids) - 1)
    result: np.ndarray = classes[found]
    return result


def _quantile_rows(plan: _Plan, present: np.ndarray) -> dict[str, pl.Series]:
    """Percentiles of the rows at ``present`` from the (pane, cell, bucket)
    rows, and ``_has_quantiles`` (false where a row has no duration)."""
    hist = plan.tables["hist"]
    if hist.is_empty():
        return {}
    fanned = _fan_out(
        plan, hist.get_column("pane").to_numpy(), hist.get_column("cell").to_numpy()
    )
    size = plan.windows * plan.group_count
    values = quantiles(
        fanned.target,
        hist.get_column("bucket").to_numpy()[fanned.row],
        hist.get_column("count").to_numpy()[fanned.row],
        size,
    )
    columns = {
        name: pl.Series(name, array[present], dtype=pl.Float64)
        for name, array in values.items()
    }
    has = ~np.isnan(values[QUANTILES[0][0]][present])
    columns[_HAS_QUANTILES] = pl.Series(_HAS_QUANTILES, has)
    return columns


#: Columns that say whether a row has percentiles or a distinct count
#: (where not, the column is null); dropped before the rows are returned.
_HAS_QUANTILES = "_has_quantiles"
_HAS_UNIQUE = "_has_unique"


def _unique_rows(
    state: PaneState, plan: _Plan, present: np.ndarray
) -> dict[str, pl.Series]:
    """Distinct client estimates of the rows at ``present``, and
    ``_has_unique`` (false where a row has no registers).

    Registers are kept per pane and dimension row; a window of one pane
    reads its pane's row, a longer one merges its panes' rows (by maximum)
    first. Every row is estimated in one vectorized pass.
    """
    panes, ghashes, rows = state.registers.select(plan.pane_ids)
    if len(rows) == 0:
        return {}
    hashes = plan.groups.get_column("ghash").to_numpy()
    order = np.argsort(hashes)
    found = np.searchsorted(hashes, ghashes, sorter=order).clip(0, len(hashes) - 1)
    mapped = hashes[order][found] == ghashes
    gids = order[found][mapped].astype(np.int64)
    pids = np.searchsorted(plan.pane_ids, panes[mapped])
    rows = rows[mapped]
    groups = plan.group_count
    single = plan.panes_per_window == 1
    targets, sources, alone = [], [], []
    for windows in plan.window_layers:
        wid = windows[pids]
        keep = np.flatnonzero(wid >= 0)
        targets.append(wid[keep] * groups + gids[keep])
        sources.append(rows[keep])
        alone.append(single[wid[keep]])
    target, source, one = (np.concatenate(part) for part in (targets, sources, alone))
    keys = [target[one]]
    values = [distinct.estimate(state.registers.rows[source[one]])]
    if (~one).any():
        merged_keys, merged = distinct.max_by(
            target[~one], state.registers.rows, source[~one]
        )
        keys.append(merged_keys)
        values.append(distinct.estimate(merged))
    at = _at(present, np.concatenate(keys), plan.windows * groups)
    kept = at >= 0
    estimates = np.zeros(len(present), dtype=np.float64)
    has = np.zeros(len(present), dtype=bool)
    estimates[at[kept]] = np.concatenate(values)[kept]
    has[at[kept]] = True
    return {
        "unique_clients": pl.Series("unique_clients", estimates, dtype=pl.Float64),
        _HAS_UNIQUE: pl.Series(_HAS_UNIQUE, has),
    }


def _top_rows(
    state: PaneState, plan: _Plan, present: np.ndarray
) -> pl.DataFrame | None:
    """``top_*`` JSON columns of the rows at ``present`` (null but for the
    overall and status-class rows).

    Item summaries are kept per pane and status class (each cut to the
    Misra–Gries capacity); a window's overall row sums its panes' classes,
    a status-class row its panes' summaries of that class. The ``top_n``
    items of each list are kept by count, ties to the smaller item hash (so
    the choice does not depend on row order); the text is looked up only
    for those.
    """
    items = plan.tables["items"]
    if items.is_empty():
        return None
    overall, class_gid = plan.overall_gid, plan.class_gids
    groups = plan.group_count
    classes = items.get_column("status_class").to_numpy().astype(np.int64)
    fanned = _fan_out(plan, items.get_column("pane").to_numpy(), None)
    row = fanned.row
    wid = fanned.target // groups
    targets = [wid * groups + overall] if overall >= 0 else []
    rows = [row] if overall >= 0 else []
    by_class = class_gid[classes[row]]
    keep = by_class >= 0
    targets.append(wid[keep] * groups + by_class[keep])
    rows.append(row[keep])
    row = np.concatenate(rows)
    if len(row) == 0:
        return None
    kinds = items.get_column("kind").to_numpy()[row].astype(np.int64)
    lists = (np.concatenate(targets) * _KIND_SPAN + kinds).astype(np.uint64)
    ihash = items.get_column("ihash").to_numpy()[row]
    count = items.get_column("count").to_numpy()[row]
    if len(lists) <= SMALL_TOP_ROWS:
        return _top_lists_small(state, lists, ihash, count, present)
    listed = _top_lists(state, lists, ihash, count, groups)
    # each row's position in ``listed``; rows without lists read a null row
    at = _at(
        (
            listed.get_column("wid").cast(pl.Int64).to_numpy() * groups
            + listed.get_column("gid").cast(pl.Int64).to_numpy()
        ),
        present,
        groups * plan.windows,
    )
    missing = pl.DataFrame({column: [None] for column in _TOPS}, schema=_TOP_SCHEMA)
    tops = listed.select(_TOPS).vstack(missing)
    return tops.gather(np.where(at >= 0, at, listed.height))


#: The ``top_*`` columns, by kind.
_TOPS = [column for column, _ in KINDS]
_TOP_SCHEMA = dict.fromkeys(_TOPS, pl.String())


#: Item rows up to which the top lists are formed with NumPy and Python
#: rather than one Polars query: follow mode's open windows (a couple of
#: thousand rows) take ~2 ms instead of ~4.5; on many windows at once the
#: query wins (Python writes each list's JSON).
SMALL_TOP_ROWS = 5_000


def _top_lists(
    state: PaneState,
    lists: np.ndarray,
    ihash: np.ndarray,
    count: np.ndarray,
    groups: int,
) -> pl.DataFrame:
    """The ``top_*`` columns per (wid, gid) from item rows keyed by list
    number (``wid * groups * KINDS + gid * KINDS + kind``), in one query."""
    top_n = state.config.top_n
    listed = (
        pl.DataFrame({"list": lists, "ihash": ihash, "count": count})
        .lazy()
        # One 64-bit key per (list, item): Polars groups a single integer
        # about twice as fast as two columns (a clash of two keys is as
        # unlikely as one of item hashes, see .batch).
        .group_by((pl.col("ihash") ^ (pl.col("list") * _LIST_MIX)).alias("k"))
        .agg(pl.col("list", "ihash").first(), pl.col("count").sum())
        # Only the rows that can be among a list's top_n are sorted.
        .filter(pl.col("count") >= pl.col("count").top_k(top_n).min().over("list"))
        .sort(["list", "count", "ihash"], descending=[False, True, False])
        .group_by("list", maintain_order=True)
        .head(top_n)
        .join(state.names.lazy(), on="ihash", how="left")
        .sort(["list", "count", "item"], descending=[False, True, False])
        .group_by("list", maintain_order=True)
        .agg(
            top=pl.lit("[")
            + pl.struct(pl.col("item").alias("key"), "count")
            .struct.json_encode()
            .str.join(",")
            + pl.lit("]")
        )
        .select(
            (pl.col("list") // (_KIND_SPAN * groups)).cast(pl.UInt32).alias("wid"),
            (pl.col("list") // _KIND_SPAN % groups).cast(pl.UInt32).alias("gid"),
            (pl.col("list") % _KIND_SPAN).alias("kind"),
            "top",
        )
        .group_by("wid", "gid")
        .agg(
            pl.col("top").filter(pl.col("kind") == kind).first().alias(column)
            for kind, (column, _) in enumerate(KINDS)
        )
    )
    return listed.collect()


def _top_lists_small(
    state: PaneState,
    lists: np.ndarray,
    ihash: np.ndarray,
    count: np.ndarray,
    present: np.ndarray,
) -> pl.DataFrame:
    """What :func:`_top_lists` gives, for few rows, as the ``top_*`` columns
    of the rows at ``present``: NumPy picks each list's ``top_n`` items
    (count descending, ties to the smaller item hash), one query fetches
    their text, and Python writes the JSON (the same text as Polars'
    ``json_encode``; checked by the tests)."""
    top_n = state.config.top_n
    order = np.lexsort((ihash, lists))
    lists, ihash, count = lists[order], ihash[order], count[order]
    new = np.r_[True, (lists[1:] != lists[:-1]) | (ihash[1:] != ihash[:-1])]
    starts = np.flatnonzero(new)
    summed = np.add.reduceat(count.astype(np.uint64), starts)
    lists, ihash = lists[starts], ihash[starts]
    order = np.lexsort((ihash, -summed.astype(np.int64), lists))
    lists, ihash, summed = lists[order], ihash[order], summed[order]
    first = np.flatnonzero(np.r_[True, lists[1:] != lists[:-1]])
    position = np.arange(len(lists)) - np.repeat(
        first, np.diff(np.r_[first, len(lists)])
    )
    keep = position < top_n
    lists, ihash, summed = lists[keep], ihash[keep], summed[keep]
    wanted = pl.Series("ihash", np.unique(ihash), dtype=pl.UInt64)
    found = state.names.filter(pl.col("ihash").is_in(wanted.implode()))
    text: dict[int, str | None] = dict(
        zip(
            found.get_column("ihash").to_list(),
            found.get_column("item").to_list(),
            strict=True,
        )
    )
    entries: dict[int, list[tuple[int, str | None]]] = {}
    for number, item_hash, total in zip(
        lists.tolist(), ihash.tolist(), summed.tolist(), strict=True
    ):
        entries.setdefault(number, []).append((total, text.get(item_hash)))
    # the row of each list's (wid, gid) target among ``present``
    numbers = np.fromiter(entries, dtype=np.int64, count=len(entries))
    at = np.searchsorted(present, numbers // _KIND_SPAN).clip(0, len(present) - 1)
    if len(present):
        held = present[at] == numbers // _KIND_SPAN
    else:
        held = np.zeros(len(numbers), dtype=bool)
    columns: list[list[str | None]] = [[None] * len(present) for _ in KINDS]
    for (number, listed), row, kept in zip(
        entries.items(), at.tolist(), held.tolist(), strict=True
    ):
        if not kept:
            continue
        # most frequent first, ties by item (a missing text first, as Polars
        # sorts nulls)
        listed.sort(key=lambda entry: (-entry[0], entry[1] is not None, entry[1] or ""))
        top = ",".join(
            f'{{"key":{_json_text(item)},"count":{total}}}' for total, item in listed
        )
        columns[number % _KIND_SPAN][row] = f"[{top}]"
    return pl.DataFrame(
        {
            column: pl.Series(column, values, dtype=pl.String)
            for column, values in zip(_TOPS, columns, strict=True)
        }
    )


def _json_text(item: str | None) -> str:
    """``item`` as a JSON value, as ``json.dumps(item, ensure_ascii=False)``
    writes it."""
    return "null" if item is None else encode_basestring(item)


def _class_groups(groups: pl.DataFrame) -> tuple[int, np.ndarray]:
    """The overall row's gid, and per status class number (0 for none, then
    1 to 5) the gid of its row: -1 where there is none (classes not chosen,
    or no such class seen)."""
    overall = -1
    by_class = np.full(max(STATUS_CLASSES) + 1, -1, dtype=np.int64)
    for gid, dimension, key in groups.select("gid", "dimension", "key").iter_rows():
        if dimension == ALL:
            overall = gid
        elif dimension == "status_class" and key[:1].isdigit():
            number = int(key[0])
            if 0 < number < len(by_class):
                by_class[number] = gid
    return overall, by_class


def _heavy_rows(state: PaneState, plan: _Plan) -> pl.DataFrame | None:
    """The ``top_n`` busiest keys of each heavy dimension per window."""
    heavy = plan.tables["heavy"]
    if not state.config.heavy or heavy.is_empty():
        return None
    fanned = _fan_out(plan, heavy.get_column("pane").to_numpy(), None)
    wid = pl.Series("wid", fanned.target // plan.group_count, dtype=pl.UInt32)
    return (
        heavy[fanned.row]
        .lazy()
        .with_columns(wid)
        .group_by("wid", "dimension", "key")
        .agg(pl.col("requests", "bytes", *STATUS_COLUMNS).sum())
        .sort(
            ["wid", "dimension", "requests", "key"],
            descending=[False, False, True, False],
        )
        .group_by("wid", "dimension", maintain_order=True)
        .head(state.config.top_n)
        .collect()
    )


def _window_columns(state: PaneState, plan: _Plan, wid: np.ndarray) -> list[pl.Series]:
    """Size, step and start of the windows ``wid``, one value per row."""
    specs = state.config.specs
    index = wid.astype(np.int64)
    number = plan.spec[index]
    sizes = np.array([spec.size_s for spec in specs], dtype=np.int64)
    steps = np.array([spec.step_s for spec in specs], dtype=np.int64)
    return [
        pl.Series("window_size_s", sizes[number], dtype=pl.Int64),
        pl.Series("window_step_s", steps[number], dtype=pl.Int64),
        pl.Series("start_s", plan.start_s[index], dtype=pl.Int64),
    ]


def _finish(rows: pl.LazyFrame, names: set[str]) -> pl.DataFrame:
    """Window columns, error rate and the exact schema, in a stable order.

    ``names`` are the columns of ``rows``.
    """
    added, columns = _finishing(frozenset(names))
    return (
        rows.with_columns(**added)
        .select(columns)
        .sort(["window_size_s", "window_step_s", "window_start", "dimension", "key"])
        .collect()
    )


@functools.cache
def _finishing(
    names: frozenset[str],
) -> tuple[dict[str, pl.Expr], list[pl.Expr]]:
    """The columns :func:`_finish` adds, and its selection of the schema
    (made once per set of columns: building the expressions in Python costs
    about as much as running them on an open window)."""
    classified = pl.sum_horizontal(*STATUS_COLUMNS)
    start = (
        (pl.col("start_s") * _US).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    )
    added = {
        "window_start": start,
        "window_end": start + pl.duration(seconds=pl.col("window_size_s")),
        "error_rate": pl.when(classified > 0)
        .then(pl.col("status_5xx") / classified)
        .otherwise(None),
    }
    shaped = set(names) | set(added)
    columns = []
    for name, dtype in WINDOW_SCHEMA.items():
        if name not in shaped:
            columns.append(pl.lit(None, dtype=dtype).alias(name))
        elif name == "unique_clients":
            value = pl.col(name).round(0).cast(dtype)
            columns.append(pl.when(pl.col(_HAS_UNIQUE)).then(value).alias(name))
        elif name.startswith("duration_"):
            value = pl.col(name).cast(dtype)
            columns.append(pl.when(pl.col(_HAS_QUANTILES)).then(value).alias(name))
        else:
            columns.append(pl.col(name).cast(dtype))
    return added, columns
