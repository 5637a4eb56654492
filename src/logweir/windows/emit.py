"""Turning pane state into :data:`~logweir.schema.WINDOW_SCHEMA` rows.

Windows to emit are given as a frame ``(spec, start_s)``: the index of a
spec in the config and the window's start in epoch seconds. Each window
is expanded to its panes, and every metric is summed over panes and cells
in one ``group_by`` for all windows at once; only the HyperLogLog unions
are merged in a Python loop (one union per window and dimension row).
"""

from __future__ import annotations

import polars as pl

from logweir.schema import WINDOW_SCHEMA
from logweir.windows import distinct, topk
from logweir.windows.dimensions import STATUS_CLASSES
from logweir.windows.quantiles import quantiles
from logweir.windows.state import KINDS, STATUS_COLUMNS, GroupKey, PaneState

_KEYS = ["spec", "start_s", "dimension", "key"]
_US = 1_000_000


def emit(state: PaneState, windows: pl.DataFrame) -> pl.DataFrame:
    """Rows for ``windows`` (``spec``, ``start_s``), sorted by window and row."""
    if windows.is_empty():
        return pl.DataFrame(schema=WINDOW_SCHEMA)
    panes = _window_panes(state, windows)
    small = _small_rows(state, panes)
    small = _join(small, _quantile_rows(state, panes))
    small = _join(small, _unique_rows(state, windows))
    small = _join(small, _top_rows(state, panes))
    rows = pl.concat([small, _heavy_rows(state, panes)], how="diagonal_relaxed")
    return _finish(state, rows)


def _specs_frame(state: PaneState) -> pl.DataFrame:
    specs = state.config.specs
    return pl.DataFrame(
        {
            "spec": list(range(len(specs))),
            "window_size_s": [spec.size_s for spec in specs],
            "window_step_s": [spec.step_s for spec in specs],
        },
        schema={"spec": pl.Int32, "window_size_s": pl.Int64, "window_step_s": pl.Int64},
    )


def _window_panes(state: PaneState, windows: pl.DataFrame) -> pl.DataFrame:
    """One row per (window, pane it spans)."""
    pane_s = state.config.pane_s
    return (
        windows.cast({"spec": pl.Int32, "start_s": pl.Int64})
        .join(_specs_frame(state), on="spec")
        .select(
            "spec",
            "start_s",
            pl.int_ranges(
                pl.col("start_s") // pane_s,
                (pl.col("start_s") + pl.col("window_size_s")) // pane_s,
                dtype=pl.Int64,
            ).alias("pane"),
        )
        .explode("pane")
    )


def _join(left: pl.DataFrame, right: pl.DataFrame) -> pl.DataFrame:
    return left.join(right, on=_KEYS, how="left", nulls_equal=True)


def _small_rows(state: PaneState, panes: pl.DataFrame) -> pl.DataFrame:
    """Exact counting columns for the overall and small-dimension rows."""
    status = pl.col("status_class")
    return (
        state.tables["numeric"]
        .frame()
        .join(panes, on="pane")
        .join(state.cells.select("cell", "status_class"), on="cell")
        .join(state.group_map, on="cell")
        .group_by(_KEYS)
        .agg(
            pl.col("requests").sum(),
            pl.col("bytes").sum(),
            *[
                pl.col("requests").filter(status == f"{n}xx").sum().alias(name)
                for n, name in zip(STATUS_CLASSES, STATUS_COLUMNS, strict=True)
            ],
        )
    )


def _quantile_rows(state: PaneState, panes: pl.DataFrame) -> pl.DataFrame:
    hist = (
        state.tables["hist"]
        .frame()
        .join(panes, on="pane")
        .join(state.group_map, on="cell")
        .select(*_KEYS, "bucket", "count")
    )
    return quantiles(hist, _KEYS)


def _top_rows(state: PaneState, panes: pl.DataFrame) -> pl.DataFrame:
    """``top_*`` JSON columns, one per summarised event column."""
    items = (
        state.tables["items"]
        .frame()
        .join(panes, on="pane")
        .join(state.group_map, on="cell")
        .group_by(*_KEYS, "kind", "item")
        .agg(pl.col("count").sum())
    )
    tops = topk.top_json(items, [*_KEYS, "kind"], state.config.top_n)
    result: pl.DataFrame | None = None
    for kind, (column, _) in enumerate(KINDS):
        part = tops.filter(pl.col("kind") == kind).select(
            *_KEYS, pl.col("top").alias(column)
        )
        result = part if result is None else result.join(
            part, on=_KEYS, how="full", coalesce=True, nulls_equal=True
        )
    assert result is not None
    return result


def _unique_rows(state: PaneState, windows: pl.DataFrame) -> pl.DataFrame:
    """Distinct client estimates, merging each row's pane unions."""
    pane_s = state.config.pane_s
    specs = state.config.specs
    rows: list[tuple[int, int, str, str, float]] = []
    for spec_index, start_s in windows.select("spec", "start_s").iter_rows():
        first = start_s // pane_s
        last = (start_s + specs[spec_index].size_s) // pane_s
        groups: dict[GroupKey, list[distinct.HllUnion]] = {}
        for pane in range(first, last):
            for group, union in state.hll.get(pane, {}).items():
                groups.setdefault(group, []).append(union)
        for (dimension, key), unions in groups.items():
            rows.append(
                (spec_index, start_s, dimension, key, distinct.estimate(unions))
            )
    return pl.DataFrame(
        rows,
        schema={
            "spec": pl.Int32,
            "start_s": pl.Int64,
            "dimension": pl.String,
            "key": pl.String,
            "unique_clients": pl.Float64,
        },
        orient="row",
    )


def _heavy_rows(state: PaneState, panes: pl.DataFrame) -> pl.DataFrame:
    """The ``top_n`` busiest keys of each heavy dimension per window."""
    summed = (
        state.tables["heavy"]
        .frame()
        .join(panes, on="pane")
        .group_by(_KEYS)
        .agg(pl.col("requests", "bytes", *STATUS_COLUMNS).sum())
    )
    ordered = summed.sort(
        [*_KEYS[:3], "requests", "key"], descending=[False, False, False, True, False]
    )
    return ordered.group_by(_KEYS[:3], maintain_order=True).head(state.config.top_n)


def _finish(state: PaneState, rows: pl.DataFrame) -> pl.DataFrame:
    """Window columns, error rate and the exact schema, in a stable order."""
    classified = pl.sum_horizontal(*STATUS_COLUMNS)
    start = (pl.col("start_s") * _US).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    size = pl.duration(seconds=pl.col("window_size_s"))
    shaped = rows.join(_specs_frame(state), on="spec").with_columns(
        window_start=start,
        window_end=start + size,
        error_rate=pl.when(classified > 0)
        .then(pl.col("status_5xx") / classified)
        .otherwise(None),
        unique_clients=pl.col("unique_clients").round(0),
    )
    for name, dtype in WINDOW_SCHEMA.items():
        if name not in shaped.columns:
            shaped = shaped.with_columns(pl.lit(None, dtype=dtype).alias(name))
    ordered = shaped.sort(
        ["window_size_s", "window_step_s", "window_start", "dimension", "key"]
    )
    return ordered.select(
        [pl.col(name).cast(dtype) for name, dtype in WINDOW_SCHEMA.items()]
    )

