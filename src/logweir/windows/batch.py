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

import functools
from dataclasses import dataclass
from typing import Literal

import numpy as np
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


#: Events up to which a batch is counted with Polars' in-memory engine.
_SMALL_BATCH = 50_000


def count_batch(
    events: pl.DataFrame, pane_s: int, small: tuple[str, ...], heavy: tuple[str, ...]
) -> BatchCounts:
    """Count ``events`` (all with a timestamp) per pane of ``pane_s`` seconds.

    ``small`` are the small dimensions besides the status class, ``heavy``
    the heavy ones.

    The groupings over the events run as one :func:`polars.collect_all`;
    what follows works on their few rows with plain gathers and NumPy,
    since each further Polars query costs about 0.1 ms whatever its size,
    which is most of the time of a follow-mode batch of a few thousand
    events.
    """
    # With Polars' default engine ("auto") these queries cost what they do
    # in the streaming engine: about twice the in-memory engine's on a few
    # thousand events (measured, one thread: 2.2 against 0.9 ms for the six
    # groupings of 5 000), but less on big batches with several threads
    # (9 against 15 ms on 200 000, two threads); big batches keep it.
    engine: Literal["auto", "in-memory"] = (
        "in-memory" if events.height <= _SMALL_BATCH else "auto"
    )
    prepared = _prepare(events, pane_s, small, engine)
    lazy = prepared.lazy()
    groupings, client_filter, client_columns = _query_exprs(heavy)
    queries = [
        (lazy if where is None else lazy.filter(where)).group_by(key).agg(aggregates)
        for where, key, aggregates in groupings
    ]
    queries.append(lazy.filter(client_filter).select(client_columns))
    by_slot, by_bucket, *by_kind, with_client = pl.collect_all(queries, engine=engine)
    numeric, cells = _numeric_and_cells(prepared, by_slot, small)
    hist = _hist(prepared, by_bucket)
    items, names = _items_and_names(prepared, by_kind)
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


def _prepare(
    events: pl.DataFrame,
    pane_s: int,
    small: tuple[str, ...],
    engine: Literal["auto", "in-memory"] = "auto",
) -> pl.DataFrame:
    """Pane, status class, cell, bucket and value hashes for every event."""
    selected, derived, keys = _prepare_exprs(pane_s, small)
    return (
        events.lazy()
        .select(selected)
        .with_columns(derived)
        .with_columns(keys)
        .collect(engine=engine)
        .rechunk()  # gathers from one chunk are many times cheaper
    )


@functools.cache
def _prepare_exprs(
    pane_s: int, small: tuple[str, ...]
) -> tuple[tuple[pl.Expr, ...], tuple[pl.Expr, ...], tuple[pl.Expr, ...]]:
    """The three steps of :func:`_prepare` (made once: building them costs
    a tenth of a small batch's counting)."""
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
    selected = (
        (pl.col("ts").dt.epoch("us") // (pane_s * 1_000_000)).alias("pane"),
        status_class.alias("status_class"),
        *[pl.col(name) for name in small],
        pl.col("bytes"),
        bucket_expr(pl.col("duration_ms")),
        *[pl.col(column) for _, column in KINDS],
        *hashes,
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("row"),
    )
    derived = (cell.alias("cell"), pl.col("pane").hash(_PANE_SEED).alias("pane_hash"))
    keys = (
        (pl.col("pane_hash") ^ pl.col("cell")).alias("slot"),
        (
            pl.col("pane_hash") ^ pl.col("status_class").fill_null(0).hash(_CLASS_SEED)
        ).alias("class_slot"),
    )
    return selected, derived, keys


Grouping = tuple[pl.Expr | None, pl.Expr, tuple[pl.Expr, ...]]


@functools.cache
def _query_exprs(
    heavy: tuple[str, ...],
) -> tuple[tuple[Grouping, ...], pl.Expr, tuple[pl.Expr, ...]]:
    """What :func:`count_batch` asks of the prepared events (made once).

    Each grouping is (rows kept or None, key, aggregates): events per
    (pane, cell) with their bytes and clients; per (pane, cell, bucket);
    per (pane, status class, item) of each kind. Then the filter and
    columns of the events with a client.
    """
    client_column = KINDS[CLIENT_KIND][1]
    groupings: list[Grouping] = [
        (
            None,
            pl.col("slot").alias("key"),
            _aggregates(with_bytes=True),
        ),
        (
            pl.col("bucket").is_not_null(),
            (pl.col("slot") ^ pl.col("bucket").hash(_BUCKET_SEED)).alias("key"),
            _aggregates(with_bytes=False),
        ),
    ]
    for kind, (_, column) in enumerate(KINDS):
        groupings.append(
            (
                pl.col(column).is_not_null(),
                (pl.col("class_slot") ^ pl.col(f"h{kind}")).alias("key"),
                _aggregates(with_bytes=column in heavy),
            )
        )
    client_columns = (
        pl.col("slot"),
        register_expr(pl.col(f"h{CLIENT_KIND}")).alias("register"),
        rank_expr(pl.col(f"h{CLIENT_KIND}")).alias("rank"),
    )
    return tuple(groupings), pl.col(client_column).is_not_null(), client_columns


def _aggregates(with_bytes: bool) -> tuple[pl.Expr, ...]:
    """Rows per group and one row of each (and, with ``with_bytes``, the
    sum of bytes and the number of events with a client)."""
    aggregates = [pl.len().cast(pl.UInt64).alias("count"), pl.col("row").first()]
    if with_bytes:
        aggregates.append(pl.col("bytes").sum())
        client = KINDS[CLIENT_KIND][1]
        aggregates.append(pl.col(client).is_not_null().sum().alias("clients"))
    return tuple(aggregates)


def _take(prepared: pl.DataFrame, column: str, rows: pl.Series) -> pl.Series:
    """``column`` of ``prepared`` at ``rows``: a plain gather, not a query."""
    return prepared.get_column(column)[rows]


def _numeric_and_cells(
    prepared: pl.DataFrame, by_slot: pl.DataFrame, small: tuple[str, ...]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per-cell requests and bytes, and the cells themselves."""
    rows = by_slot.get_column("row")
    cell = _take(prepared, "cell", rows)
    numeric = pl.DataFrame(
        [
            _take(prepared, "pane", rows),
            cell,
            by_slot.get_column("count").alias("requests"),
            by_slot.get_column("bytes"),
            by_slot.get_column("key").alias("slot"),
            by_slot.get_column("clients"),
        ]
    )
    # One row per (pane, cell): few enough to find each cell's first in NumPy.
    _, first = np.unique(cell.to_numpy(), return_index=True)
    cell_rows = pl.Series(rows.to_numpy()[first], dtype=pl.UInt32)
    status_class = _take(prepared, "status_class", cell_rows).cast(pl.String) + "xx"
    cells = pl.DataFrame(
        [
            _take(prepared, "cell", cell_rows),
            status_class.alias("status_class"),
            *[_take(prepared, name, cell_rows) for name in small],
        ]
    )
    return numeric, cells


def _hist(prepared: pl.DataFrame, by_bucket: pl.DataFrame) -> pl.DataFrame:
    """Bucket counts per (pane, cell) (events without a bucket are left out
    before the grouping)."""
    rows = by_bucket.get_column("row")
    return pl.DataFrame(
        [
            _take(prepared, "pane", rows),
            _take(prepared, "cell", rows),
            _take(prepared, "bucket", rows),
            by_bucket.get_column("count"),
        ]
    )


#: Client events up to which pairs are looked up in NumPy rather than with
#: a join (measured: 0.02 against 0.2 ms for 5 000; 12 against 1.5 ms for
#: 200 000).
_SMALL_LOOKUP = 20_000


def _number_pairs(
    numeric: pl.DataFrame, with_client: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The (pane, cell) pairs holding a client, numbered, and each client's
    pair, register and rank.

    ``numeric`` has one row per (pane, cell), its ``slot`` (the pair's key)
    and how many of its events have a client; ``with_client`` has ``slot,
    register, rank`` per event with a client. Numbering the pairs from
    ``numeric`` spares a grouping of the client events. A batch of a few
    thousand events looks its clients' pairs up in NumPy (a sorted search);
    beyond :data:`_SMALL_LOOKUP` clients a hash join is faster.
    """
    held = numeric.get_column("clients").to_numpy() > 0
    slots = numeric.get_column("slot").to_numpy()[held]
    pairs = pl.DataFrame(
        {
            "pane": numeric.get_column("pane").to_numpy()[held],
            "cell": numeric.get_column("cell").to_numpy()[held],
        },
        schema={"pane": pl.Int64, "cell": pl.UInt64},
    )
    if with_client.height > _SMALL_LOOKUP:
        numbered = pl.DataFrame({"slot": slots}, schema={"slot": pl.UInt64})
        clients = with_client.join(numbered.with_row_index("pair"), on="slot").select(
            "pair", "register", "rank"
        )
        return pairs, clients
    # Every client's slot is one of ``slots`` (each pair counted it).
    order = np.argsort(slots, kind="stable")
    found = np.searchsorted(slots[order], with_client.get_column("slot").to_numpy())
    clients = pl.DataFrame(
        [
            pl.Series("pair", order[found], dtype=pl.UInt32),
            with_client.get_column("register"),
            with_client.get_column("rank"),
        ]
    )
    return pairs, clients


def _items_and_names(
    prepared: pl.DataFrame, by_kind: list[pl.DataFrame]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Item counts per (pane, status class, kind) with the keys the
    summaries compact by, and ``ihash, item`` for each distinct item once
    (text not copied). The three kinds go in one frame, kind after kind;
    numbers are gathered in NumPy (``prepared`` is one chunk and its
    number columns have no nulls, so their arrays are views)."""
    sizes = [grouped.height for grouped in by_kind]
    rows_of = [grouped.get_column("row").to_numpy() for grouped in by_kind]
    row = np.concatenate(rows_of)
    ihash = np.concatenate(
        [_array(prepared, f"h{kind}")[rows] for kind, rows in enumerate(rows_of)]
    )
    status_class = prepared.get_column("status_class")[pl.Series(row)]
    if status_class.null_count():
        status_class = status_class.fill_null(0)
    salts = np.repeat(np.array(KIND_SALTS, dtype=np.uint64), sizes)
    items = pl.DataFrame(
        {
            "pane": _array(prepared, "pane")[row],
            "status_class": status_class.to_numpy(),
            "kind": np.repeat(np.arange(len(KINDS), dtype=np.uint8), sizes),
            "count": np.concatenate(
                [grouped.get_column("count").to_numpy() for grouped in by_kind]
            ),
            "group": _array(prepared, "class_slot")[row] ^ salts,
            "ihash": ihash,
        },
        schema=ITEM_COLUMNS,
    )
    # Kinds hash with their own seeds, so one pass finds every first item.
    first = pl.Series(ihash).is_first_distinct().to_numpy()
    ends = np.cumsum(sizes)
    texts = [
        _take(
            prepared,
            column,
            pl.Series(row[end - size : end][first[end - size : end]]),
        )
        for (_, column), size, end in zip(KINDS, sizes, ends, strict=True)
    ]
    names = pl.DataFrame(
        [
            pl.Series("ihash", ihash[first], dtype=pl.UInt64),
            pl.concat(texts).alias("item"),
        ]
    )
    return items, names


#: Columns and types of the item counts (``BatchCounts.items``, and the
#: state's item table).
ITEM_COLUMNS: dict[str, pl.DataType] = {
    "pane": pl.Int64(),
    "status_class": pl.UInt8(),
    "kind": pl.UInt8(),
    "count": pl.UInt64(),
    "group": pl.UInt64(),
    "ihash": pl.UInt64(),
}


def _array(prepared: pl.DataFrame, column: str) -> np.ndarray:
    """A number column of ``prepared`` without nulls, as a NumPy array."""
    return prepared.get_column(column).to_numpy()


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
