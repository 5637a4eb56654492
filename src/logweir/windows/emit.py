"""Turning pane state into :data:`~logweir.schema.WINDOW_SCHEMA` rows.

Windows to emit are given as a frame ``(spec, start_s)``: the index of a
spec in the config and the window's start in epoch seconds. Every metric is
formed for all those windows at once, in two vectorized steps:

1. per pane, cells are summed into dimension rows (``group`` ids: the
   overall row and one per small-dimension value);
2. per window, the panes it spans are summed.

Keys are small integers packed into one 64-bit column (pane or window
index, group id, kind), so each step is a ``group_by`` on one integer.
HyperLogLog registers are merged with NumPy, a window's dimension rows all
at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from logweir.schema import WINDOW_SCHEMA
from logweir.windows import distinct, topk
from logweir.windows.batch import KINDS, STATUS_COLUMNS
from logweir.windows.dimensions import ALL, STATUS_CLASSES
from logweir.windows.quantiles import QUANTILES, quantiles
from logweir.windows.state import PaneState

_US = 1_000_000
#: Packing of (pane or window index, group id, kind) into one integer.
_KIND_SPAN = 4
_GROUP_SPAN = 1 << 20
#: Windows or panes one emission may span (keys must stay below 2**48).
MAX_INDEX = 1 << 24
_ITEM_SEED = 211
#: Stands for "every status class" where items are keyed by class.
_ALL_CLASS = 255


@dataclass(frozen=True)
class _Plan:
    """The windows being emitted and how panes and groups map onto them.

    * ``windows``: ``wid, spec, start_s`` (one row per window);
    * ``spans``: ``wid, pid`` (one row per window and pane it spans);
    * ``panes``: ``pid, pane`` (the panes any window needs);
    * ``groups``: ``gid, dimension, key``; ``cell_groups``: ``cell, gid``;
    * ``tables``: the state's tables, only the rows of those panes.
    """

    windows: pl.DataFrame
    spans: pl.DataFrame
    panes: pl.DataFrame
    groups: pl.DataFrame
    cell_groups: pl.DataFrame
    tables: dict[str, pl.DataFrame]


def emit(state: PaneState, windows: pl.DataFrame) -> pl.DataFrame:
    """Rows for ``windows`` (``spec``, ``start_s``), sorted by window and row."""
    if windows.is_empty():
        return pl.DataFrame(schema=WINDOW_SCHEMA)
    plan = _plan(state, windows)
    small = _small_rows(state, plan)
    for extra in (
        _quantile_rows(state, plan),
        _unique_rows(state, plan),
        _top_rows(state, plan),
    ):
        small = small.join(extra, on=["wid", "gid"], how="left")
    labelled = small.join(plan.groups, on="gid").drop("gid")
    rows = pl.concat([labelled, _heavy_rows(state, plan)], how="diagonal_relaxed")
    return _finish(state, rows.join(plan.windows, on="wid"))


def _plan(state: PaneState, windows: pl.DataFrame) -> _Plan:
    pane_s = state.config.pane_s
    sizes = pl.Series([spec.size_s for spec in state.config.specs], dtype=pl.Int64)
    numbered = (
        windows.select(pl.col("spec").cast(pl.Int32), pl.col("start_s").cast(pl.Int64))
        .sort("spec", "start_s")
        .with_row_index("wid")
    )
    size = pl.col("spec").map_batches(
        lambda spec: sizes.gather(spec), return_dtype=pl.Int64
    )
    spans = numbered.select(
        "wid",
        pl.int_ranges(
            pl.col("start_s") // pane_s,
            (pl.col("start_s") + size) // pane_s,
            dtype=pl.Int64,
        ).alias("pane"),
    ).explode("pane")
    panes = spans.select("pane").unique().sort("pane").with_row_index("pid")
    groups, cell_groups = _groups(state)
    return _Plan(
        windows=numbered,
        spans=spans.join(panes, on="pane").select("wid", "pid"),
        panes=panes,
        groups=groups,
        cell_groups=cell_groups,
        tables=_needed_rows(state, panes.get_column("pane")),
    )


def _needed_rows(state: PaneState, panes: pl.Series) -> dict[str, pl.DataFrame]:
    """The state's tables cut to ``panes``, once for every step below.

    Follow mode forms the one or two open windows of each size from a
    state holding an hour of panes; without the cut every step would hash
    every pane's rows only to join most of them away.
    """
    frames = {name: table.frame() for name, table in state.tables.items()}
    held = frames["numeric"].get_column("pane").n_unique()
    if held <= panes.len():
        return frames  # (nearly) every pane is needed: the cut saves nothing
    wanted = pl.col("pane").is_in(panes.implode())
    return {name: frame.filter(wanted) for name, frame in frames.items()}


#: The group numbering of the last group map seen (follow mode forms rows
#: many times a second from the same map): (map, groups, cell_groups).
_groups_cache: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame] | None = None


def _groups(state: PaneState) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``gid, dimension, key`` per dimension row, and ``cell, gid`` pairs.

    The group map is replaced (never changed in place) when new cells are
    learned, so the numbering is reused while the same frame is current.
    """
    global _groups_cache
    cached = _groups_cache
    if cached is not None and cached[0] is state.group_map:
        return cached[1], cached[2]
    groups = (
        state.group_map.select("dimension", "key")
        .unique()
        .sort("dimension", "key")
        .with_row_index("gid")
    )
    cell_groups = state.group_map.join(groups, on=["dimension", "key"]).select(
        "cell", "gid"
    )
    _groups_cache = (state.group_map, groups, cell_groups)
    return groups, cell_groups


def _per_pane(table: pl.DataFrame, plan: _Plan) -> pl.LazyFrame:
    """Rows of the needed panes, with their pane index and each group of
    their cell (a cell feeds several groups, so rows multiply)."""
    return (
        table.lazy()
        .join(plan.panes.lazy(), on="pane")
        .join(plan.cell_groups.lazy(), on="cell")
    )


def _small_rows(state: PaneState, plan: _Plan) -> pl.DataFrame:
    """Exact counting columns for the overall and small-dimension rows."""
    status = pl.col("status_class")
    per_pane = (
        _per_pane(plan.tables["numeric"], plan)
        .join(state.cells.lazy().select("cell", "status_class"), on="cell")
        .group_by("pid", "gid")
        .agg(
            pl.col("requests").sum(),
            pl.col("bytes").sum(),
            *[
                pl.col("requests").filter(status == f"{n}xx").sum().alias(name)
                for n, name in zip(STATUS_CLASSES, STATUS_COLUMNS, strict=True)
            ],
        )
    )
    return (
        per_pane.join(plan.spans.lazy(), on="pid")
        .group_by("wid", "gid")
        .agg(pl.col("requests", "bytes", *STATUS_COLUMNS).sum())
        .collect()
    )


def _quantile_rows(state: PaneState, plan: _Plan) -> pl.DataFrame:
    """Percentiles per window and group from the (pane, cell, bucket) rows.

    Each row counts towards every window its pane is in and every group its
    cell feeds; rather than materialize that product with joins, the
    (window, group) index of each pairing is computed with NumPy lookups
    and all pairings go to :func:`quantiles` at once.
    """
    hist = plan.tables["hist"]
    groups = plan.groups.height
    pane_ids = plan.panes.get_column("pane").to_numpy()
    panes = hist.get_column("pane").to_numpy()
    found = np.searchsorted(pane_ids, panes).clip(0, len(pane_ids) - 1)
    needed = pane_ids[found] == panes
    pids = found[needed]
    window_layers = _layers(plan.spans, "pid", "wid", len(pane_ids))
    cells, cell_layers = _cell_layers(plan)
    cell_index = np.searchsorted(cells, hist.get_column("cell").to_numpy()[needed])
    buckets = hist.get_column("bucket").to_numpy()[needed]
    counts = hist.get_column("count").to_numpy()[needed]
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for windows in window_layers:
        wid = windows[pids]
        for group_layer in cell_layers:
            gid = group_layer[cell_index]
            keep = (wid >= 0) & (gid >= 0)
            parts.append((wid[keep] * groups + gid[keep], buckets[keep], counts[keep]))
    index, bucket, count = (
        np.concatenate(column) for column in zip(*parts, strict=True)
    )
    values = quantiles(index, bucket, count, plan.windows.height * groups)
    rows = pl.int_range(plan.windows.height * groups, dtype=pl.Int64, eager=True)
    return pl.DataFrame(
        {
            "wid": (rows // groups).cast(pl.UInt32),
            "gid": (rows % groups).cast(pl.UInt32),
            **{name: pl.Series(array).fill_nan(None) for name, array in values.items()},
        }
    ).drop_nulls(QUANTILES[0][0])


def _layers(pairs: pl.DataFrame, source: str, target: str, size: int) -> np.ndarray:
    """A ``(fan-out, size)`` array: row k maps each source index to its k-th
    target index (or -1). ``pairs`` holds (source, target) index pairs."""
    ordered = pairs.select(
        pl.col(source).cast(pl.Int64), pl.col(target).cast(pl.Int64)
    ).sort(source)
    sources = ordered.get_column(source).to_numpy()
    targets = ordered.get_column(target).to_numpy()
    if len(sources) == 0:
        return np.full((0, size), -1, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, sources[1:] != sources[:-1]])
    lengths = np.diff(np.r_[starts, len(sources)])
    layer = np.arange(len(sources)) - np.repeat(starts, lengths)
    result = np.full((int(lengths.max()), size), -1, dtype=np.int64)
    result[layer, sources] = targets
    return result


def _cell_layers(plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
    """Sorted cell ids, and the groups of each cell as :func:`_layers`."""
    cells = np.unique(plan.cell_groups.get_column("cell").to_numpy())
    indexed = plan.cell_groups.with_columns(
        cell_index=pl.Series(
            np.searchsorted(cells, plan.cell_groups.get_column("cell").to_numpy())
        )
    )
    return cells, _layers(indexed, "cell_index", "gid", len(cells))


def _top_rows(state: PaneState, plan: _Plan) -> pl.DataFrame:
    """``top_*`` JSON columns for the overall and status-class rows.

    Item summaries are kept per pane and status class (each cut to the
    Misra–Gries capacity); the overall row of a pane sums its classes. A
    window of one pane lists its pane's items directly; a longer window
    sums its panes first. Item text is gathered only for the items listed.
    """
    items = plan.tables["items"].with_row_index("row")
    per_pane = _pane_items(state, plan, items)
    single, multi = _split_spans(plan)
    exact = per_pane.join(single, on="pid").with_columns(
        group=_pack(pl.col("wid"), pl.col("gid"), pl.col("kind"))
    )
    summed = (
        per_pane.lazy()
        .join(multi.lazy(), on="pid")
        .with_columns(group=_pack(pl.col("wid"), pl.col("gid"), pl.col("kind")))
        .group_by((pl.col("group").hash(_ITEM_SEED) ^ pl.col("ihash")).alias("k"))
        .agg(pl.col("count").sum(), pl.col("row", "group", "ihash").first())
        .collect()
    )
    columns = ["group", "row", "ihash", "count"]
    listed = topk.top_rows(
        pl.concat([exact.select(columns), summed.select(columns)]),
        "group",
        state.config.top_n,
    )
    named = listed.with_columns(
        ihash=items.get_column("ihash").gather(listed.get_column("row"))
    ).join(state.names, on="ihash", how="left")
    tops = topk.to_json(named, "group").with_columns(
        wid=(pl.col("group") // (_GROUP_SPAN * _KIND_SPAN)).cast(pl.UInt32),
        gid=(pl.col("group") // _KIND_SPAN % _GROUP_SPAN).cast(pl.UInt32),
        kind=(pl.col("group") % _KIND_SPAN).cast(pl.UInt8),
    )
    return tops.group_by("wid", "gid").agg(
        pl.col("top").filter(pl.col("kind") == kind).first().alias(column)
        for kind, (column, _) in enumerate(KINDS)
    )


def _pane_items(state: PaneState, plan: _Plan, items: pl.DataFrame) -> pl.DataFrame:
    """Item counts per (pane index, group, kind) for the overall and
    status-class groups, keyed by a packed ``group``."""
    gids = plan.groups.with_columns(
        status_class=pl.when(pl.col("dimension") == "status_class")
        .then(pl.col("key").str.head(1).cast(pl.UInt8, strict=False))
        .when(pl.col("dimension") == ALL)
        .then(pl.lit(_ALL_CLASS, dtype=pl.UInt8))
    ).filter(pl.col("status_class").is_not_null())
    base = (
        items.lazy()
        .select("row", "pane", "status_class", "kind", "ihash", "count")
        .join(plan.panes.lazy(), on="pane")
    )
    overall = (
        base.group_by("pid", "kind", "ihash")
        .agg(pl.col("count").sum(), pl.col("row").first())
        .with_columns(status_class=pl.lit(_ALL_CLASS, dtype=pl.UInt8))
    )
    parts = [overall]
    if "status_class" in state.config.small:
        parts.append(base.filter(pl.col("status_class") > 0))
    columns = ["pid", "status_class", "kind", "ihash", "count", "row"]
    return (
        pl.concat([part.select(columns) for part in parts])
        .join(gids.lazy().select("gid", "status_class"), on="status_class")
        .with_columns(group=_pack(pl.col("pid"), pl.col("gid"), pl.col("kind")))
        .collect()
    )


def _split_spans(plan: _Plan) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Spans of one-pane windows, and of the others."""
    counted = plan.spans.with_columns(panes=pl.len().over("wid"))
    single = counted.filter(pl.col("panes") == 1).select("wid", "pid")
    multi = counted.filter(pl.col("panes") > 1).select("wid", "pid")
    return single, multi


def _pack(index: pl.Expr, gid: pl.Expr, kind: pl.Expr) -> pl.Expr:
    """One integer for (pane or window index, group id, kind)."""
    wide = pl.UInt64
    return (index.cast(wide) * _GROUP_SPAN + gid.cast(wide)) * _KIND_SPAN + kind.cast(
        wide
    )


def _unique_rows(state: PaneState, plan: _Plan) -> pl.DataFrame:
    """Distinct client estimates per window and dimension row.

    Registers are kept per pane and dimension row; a window of one pane
    reads its pane's row, a longer one merges its panes' rows (by maximum)
    first. Every row is estimated in one vectorized pass.
    """
    schema = {"wid": pl.UInt32, "gid": pl.UInt32, "unique_clients": pl.Float64}
    groups = plan.groups.height
    pane_ids = plan.panes.get_column("pane").to_numpy()
    panes, ghashes, rows = state.registers.select(pane_ids)
    if len(rows) == 0:
        return pl.DataFrame(schema=schema)
    gid_of = _gid_by_hash(state, plan)
    known = np.searchsorted(gid_of[0], ghashes).clip(0, len(gid_of[0]) - 1)
    mapped = gid_of[0][known] == ghashes
    pids = np.searchsorted(pane_ids, panes[mapped])
    gids = gid_of[1][known[mapped]]
    rows = rows[mapped]
    spans = plan.spans.with_columns(panes=pl.len().over("wid"))
    single = spans.filter(pl.col("panes") == 1)
    multi = spans.filter(pl.col("panes") > 1)
    parts = []
    if single.height:
        window_of = _layers(single, "pid", "wid", len(pane_ids))[0]
        wid = window_of[pids]
        keep = wid >= 0
        parts.append(
            (
                wid[keep] * groups + gids[keep],
                distinct.estimate(state.registers.rows[rows[keep]]),
            )
        )
    if multi.height:
        targets, sources = [], []
        for windows in _layers(multi, "pid", "wid", len(pane_ids)):
            wid = windows[pids]
            keep = np.flatnonzero(wid >= 0)
            targets.append(wid[keep] * groups + gids[keep])
            sources.append(rows[keep])
        keys, merged = distinct.max_by(
            np.concatenate(targets), state.registers.rows, np.concatenate(sources)
        )
        parts.append((keys, distinct.estimate(merged)))
    keys = np.concatenate([key for key, _ in parts])
    values = np.concatenate([value for _, value in parts])
    return pl.DataFrame(
        {
            "wid": pl.Series(keys // groups, dtype=pl.UInt32),
            "gid": pl.Series(keys % groups, dtype=pl.UInt32),
            "unique_clients": values,
        }
    )


def _gid_by_hash(state: PaneState, plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
    """Sorted dimension-row hashes and the group id of each."""
    hashed = (
        state.group_map.select("dimension", "key", "ghash")
        .unique("ghash")
        .join(plan.groups, on=["dimension", "key"])
        .sort("ghash")
    )
    return (
        hashed.get_column("ghash").to_numpy(),
        hashed.get_column("gid").to_numpy().astype(np.int64),
    )


def _heavy_rows(state: PaneState, plan: _Plan) -> pl.DataFrame:
    """The ``top_n`` busiest keys of each heavy dimension per window."""
    summed = (
        plan.tables["heavy"]
        .lazy()
        .join(plan.panes.lazy(), on="pane")
        .join(plan.spans.lazy(), on="pid")
        .group_by("wid", "dimension", "key")
        .agg(pl.col("requests", "bytes", *STATUS_COLUMNS).sum())
        .collect()
    )
    ordered = summed.sort(
        ["wid", "dimension", "requests", "key"], descending=[False, False, True, False]
    )
    return ordered.group_by("wid", "dimension", maintain_order=True).head(
        state.config.top_n
    )


def _finish(state: PaneState, rows: pl.DataFrame) -> pl.DataFrame:
    """Window columns, error rate and the exact schema, in a stable order."""
    specs = state.config.specs
    spec_frame = pl.DataFrame(
        {
            "spec": list(range(len(specs))),
            "window_size_s": [spec.size_s for spec in specs],
            "window_step_s": [spec.step_s for spec in specs],
        },
        schema={"spec": pl.Int32, "window_size_s": pl.Int64, "window_step_s": pl.Int64},
    )
    classified = pl.sum_horizontal(*STATUS_COLUMNS)
    start = (
        (pl.col("start_s") * _US).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    )
    shaped = rows.join(spec_frame, on="spec").with_columns(
        window_start=start,
        window_end=start + pl.duration(seconds=pl.col("window_size_s")),
        error_rate=pl.when(classified > 0)
        .then(pl.col("status_5xx") / classified)
        .otherwise(None),
        unique_clients=pl.col("unique_clients").round(0),
    )
    missing = [
        pl.lit(None, dtype=dtype).alias(name)
        for name, dtype in WINDOW_SCHEMA.items()
        if name not in shaped.columns
    ]
    ordered = shaped.with_columns(missing).sort(
        ["window_size_s", "window_step_s", "window_start", "dimension", "key"]
    )
    return ordered.select(
        [pl.col(name).cast(dtype) for name, dtype in WINDOW_SCHEMA.items()]
    )
