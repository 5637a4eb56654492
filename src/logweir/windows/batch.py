"""Counting one events batch per pane and cell, in a few vectorized passes.

This is the hot path of the windows stage: every event goes through it
once, so it is written for speed. Each grouping is a ``group_by`` on a
single 64-bit key (a hash of the pane, the cell and the value), which
Polars groups about twice as fast as the same columns as separate keys;
the readable columns are then gathered from one representative row per
group. Two different groups sharing a 64-bit key would be counted as one;
with at most a few million groups per batch the odds are below 1e-6
over a year of batches, which we accept.

A *cell* is one combination of status class and small dimensions (see
:mod:`.state`).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from logweir.windows.dimensions import STATUS_CLASSES
from logweir.windows.distinct import rank_expr, register_expr
from logweir.windows.quantiles import bucket_expr

#: Columns summarised per dimension row: (``top_*`` output column, event column).
KINDS: tuple[tuple[str, str], ...] = (
    ("top_paths", "path"),
    ("top_clients", "client_ip"),
    ("top_user_agents", "user_agent"),
)
CLIENT_KIND = 1

STATUS_COLUMNS: tuple[str, ...] = tuple(f"status_{n}xx" for n in STATUS_CLASSES)

# Hash seeds; any distinct constants do, but they must never change, since
# keys computed with them are kept in serialized state.
_PANE_SEED = 101
_BUCKET_SEED = 102
_KIND_SEEDS = (103, 104, 105)
_CELL_SEED = 110
_CLASS_SEED = 106

#: Xor-ed into a (pane, cell) key to tell the three summaries apart.
KIND_SALTS: tuple[int, ...] = (
    0x9E3779B97F4A7C15,
    0xC2B2AE3D27D4EB4F,
    0x165667B19E3779F9,
)


@dataclass(frozen=True)
class BatchCounts:
    """What one batch adds to the state, per pane and cell.

    * ``numeric``: ``pane, cell, requests, bytes`` (``count_batch`` adds
      each pair's ``slot`` and its events with a client, ``clients``);
    * ``cells``: ``cell, status_class`` (``"2xx"``…) and the small
      dimensions, one row per cell in the batch;
    * ``hist``: ``pane, cell, bucket, count``;
    * ``items``: ``pane, status_class, kind, count, group, ihash``:
      item counts per pane and status class (1-5, 0 for none); ``group``
      identifies (pane, status class, kind) and ``ihash`` is the item's
      hash (seeded per kind, so kinds never share one);
    * ``names``: ``ihash, item``, the text of each item hash, once;
    * ``pairs``: ``pane, cell`` of the batch's (pane, cell) pairs, whose
      row number ``clients`` refers to;
    * ``clients``: ``pair, register, rank`` of every event with a client
      (the HyperLogLog register and rank of its hash, :mod:`.distinct`);
    * ``heavy``: ``pane, dimension, key, requests, bytes, status_*``.
    """

    numeric: pl.DataFrame
    cells: pl.DataFrame
    hist: pl.DataFrame
    items: pl.DataFrame
    names: pl.DataFrame
    pairs: pl.DataFrame
    clients: pl.DataFrame
    heavy: pl.DataFrame


def count_batch(
    events: pl.DataFrame, pane_s: int, small: tuple[str, ...], heavy: tuple[str, ...]
) -> BatchCounts:
    """Count ``events`` (all with a timestamp) per pane of ``pane_s`` seconds.

    ``small`` are the small dimensions besides the status class, ``heavy``
    the heavy ones.
    """
    prepared = _prepare(events, pane_s, small)
    lazy = prepared.lazy()
    bucket_key = pl.col("slot") ^ pl.col("bucket").hash(_BUCKET_SEED)
    queries = [_grouped(lazy, bucket_key, with_bytes=True)]
    for kind, (_, column) in enumerate(KINDS):
        key = pl.col("class_slot") ^ pl.col(f"h{kind}")
        queries.append(
            _grouped(lazy.filter(pl.col(column).is_not_null()), key, column in heavy)
        )
    client_column = KINDS[CLIENT_KIND][1]
    queries.append(
        lazy.filter(pl.col(client_column).is_not_null()).select(
            "slot",
            register_expr(pl.col(f"h{CLIENT_KIND}")).alias("register"),
            rank_expr(pl.col(f"h{CLIENT_KIND}")).alias("rank"),
        )
    )
    by_bucket, *by_kind, with_client = pl.collect_all(queries)
    numeric, cells, hist = _numeric_and_hist(prepared, by_bucket, small)
    items = pl.concat(
        [_items(prepared, rows, kind) for kind, rows in enumerate(by_kind)]
    )
    names = pl.concat(
        [_names(prepared, rows, kind) for kind, rows in enumerate(by_kind)]
    )
    pairs, clients = _number_pairs(numeric, with_client)
    heavy_rows = [
        _heavy(prepared, by_kind[kind], column)
        for kind, (_, column) in enumerate(KINDS)
        if column in heavy
    ]
    return BatchCounts(
        numeric=numeric,
        cells=cells,
        hist=hist,
        items=items,
        names=names,
        pairs=pairs,
        clients=clients,
        heavy=pl.concat(heavy_rows) if heavy_rows else pl.DataFrame(),
    )


def _prepare(events: pl.DataFrame, pane_s: int, small: tuple[str, ...]) -> pl.DataFrame:
    """Pane, status class, cell, bucket and value hashes for every event."""
    status = pl.col("status")
    status_class = (
        pl.when((status >= 100) & (status < 600)).then(status // 100).cast(pl.UInt8)
    )
    cell = pl.col("status_class").fill_null(0).cast(pl.UInt64)
    for seed, name in enumerate(small, start=_CELL_SEED):
        cell = cell ^ pl.col(name).hash(seed)
    hashes = [
        pl.col(column).hash(seed).alias(f"h{kind}")
        for kind, ((_, column), seed) in enumerate(zip(KINDS, _KIND_SEEDS, strict=True))
    ]
    return (
        events.lazy()
        .select(
            (pl.col("ts").dt.epoch("us") // (pane_s * 1_000_000)).alias("pane"),
            status_class.alias("status_class"),
            *[pl.col(name) for name in small],
            pl.col("bytes"),
            bucket_expr(pl.col("duration_ms")),
            *[pl.col(column) for _, column in KINDS],
            *hashes,
            pl.int_range(pl.len(), dtype=pl.UInt32).alias("row"),
        )
        .with_columns(cell=cell, pane_hash=pl.col("pane").hash(_PANE_SEED))
        .with_columns(
            slot=pl.col("pane_hash") ^ pl.col("cell"),
            class_slot=pl.col("pane_hash")
            ^ pl.col("status_class").fill_null(0).hash(_CLASS_SEED),
        )
        .collect()
        .rechunk()  # gathers from one chunk are many times cheaper
    )


def _grouped(lazy: pl.LazyFrame, key: pl.Expr, with_bytes: bool) -> pl.LazyFrame:
    """Count rows per ``key``, remembering one row of each group (and, with
    ``with_bytes``, summing bytes and counting events with a client)."""
    aggregates = [pl.len().cast(pl.UInt64).alias("count"), pl.col("row").first()]
    if with_bytes:
        aggregates.append(pl.col("bytes").sum())
        client = KINDS[CLIENT_KIND][1]
        aggregates.append(pl.col(client).is_not_null().sum().alias("clients"))
    return lazy.group_by(key.alias("key")).agg(aggregates)


def _numeric_and_hist(
    prepared: pl.DataFrame, by_bucket: pl.DataFrame, small: tuple[str, ...]
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Per-cell requests and bytes, the cells themselves, and bucket counts."""
    rows = by_bucket.get_column("row")
    picked = prepared.select("pane", "cell", "slot", "bucket", "status_class", *small)[
        rows
    ]
    picked = picked.with_columns(by_bucket.select("count", "bytes", "clients"))
    numeric = picked.group_by("pane", "cell").agg(
        pl.col("count").sum().alias("requests"),
        pl.col("bytes").sum(),
        pl.col("slot").first(),
        pl.col("clients").sum(),
    )
    cells = picked.select(
        "cell",
        (pl.col("status_class").cast(pl.String) + pl.lit("xx")).alias("status_class"),
        *small,
    ).unique("cell")
    hist = picked.filter(pl.col("bucket").is_not_null()).select(
        "pane", "cell", "bucket", "count"
    )
    return numeric, cells, hist


def _number_pairs(
    numeric: pl.DataFrame, with_client: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The (pane, cell) pairs holding a client, numbered, and each client's
    pair, register and rank.

    ``numeric`` has one row per (pane, cell), its ``slot`` (the pair's key)
    and how many of its events have a client; ``with_client`` has ``slot,
    register, rank`` per event with a client. Numbering the pairs from
    ``numeric`` spares a grouping of the events (a third of the cost).
    """
    pairs = (
        numeric.filter(pl.col("clients") > 0)
        .select("pane", "cell", "slot")
        .with_row_index("pair")
    )
    clients = with_client.join(pairs.select("slot", "pair"), on="slot").select(
        "pair", "register", "rank"
    )
    return pairs.select("pane", "cell"), clients


def _items(prepared: pl.DataFrame, grouped: pl.DataFrame, kind: int) -> pl.DataFrame:
    """Item counts per (pane, cell) with the keys the summaries compact by."""
    picked = prepared.select("pane", "status_class", "class_slot", f"h{kind}")[
        grouped.get_column("row")
    ]
    return picked.select(
        "pane",
        pl.col("status_class").fill_null(0),
        pl.lit(kind, dtype=pl.UInt8).alias("kind"),
        grouped.get_column("count"),
        (pl.col("class_slot") ^ KIND_SALTS[kind]).alias("group"),
        pl.col(f"h{kind}").alias("ihash"),
    )


def _names(prepared: pl.DataFrame, grouped: pl.DataFrame, kind: int) -> pl.DataFrame:
    """``ihash, item``: each distinct item of the kind once (text not copied)."""
    column = KINDS[kind][1]
    picked = prepared.select(pl.col(f"h{kind}").alias("ihash"), "row")[
        grouped.get_column("row")
    ]
    first = picked.unique("ihash", keep="any").get_column("row")
    return prepared.select(
        pl.col(f"h{kind}").alias("ihash"), pl.col(column).alias("item")
    )[first]


def _heavy(prepared: pl.DataFrame, grouped: pl.DataFrame, column: str) -> pl.DataFrame:
    """Counting columns per value of a heavy dimension and pane."""
    picked = prepared.select("pane", "status_class", pl.col(column).alias("key"))[
        grouped.get_column("row")
    ].with_columns(grouped.select("count", "bytes"))
    status = pl.col("status_class")
    return (
        picked.group_by("pane", "key")
        .agg(
            pl.col("count").sum().alias("requests"),
            pl.col("bytes").sum(),
            *[
                pl.col("count").filter(status == n).sum().alias(name)
                for n, name in zip(STATUS_CLASSES, STATUS_COLUMNS, strict=True)
            ],
        )
        .select("pane", pl.lit(column).alias("dimension"), pl.exclude("pane"))
        .with_columns(detached("key"))
    )


def detached(column: str) -> pl.Expr:
    """``column`` with its text copied into a buffer of its own.

    A gathered string column still points into the buffers of the frame it
    was gathered from: a few kept paths would hold a whole batch's text in
    memory for as long as the window state lives. Concatenating an empty
    string makes Polars write new strings.
    """
    return (pl.col(column) + pl.lit("")).alias(column)
