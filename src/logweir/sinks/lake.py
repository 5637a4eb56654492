"""The Parquet lake: events partitioned by hour, written whole or not at all.

Layout::

    OUT/events/date=2024-01-31/hour=07/{name}.parquet
    OUT/events/date=__HIVE_DEFAULT_PARTITION__/hour=__HIVE_DEFAULT_PARTITION__/{name}.parquet

``date`` and ``hour`` are the UTC date and hour of ``ts``. Events without a
timestamp go to the Hive default partition, which DuckDB, Spark and Trino
all read as NULL, so ``date`` stays a DATE column and ``hour`` an integer.

``name`` is chosen by the caller from the input positions a batch covers,
so writing the same batch again (a replay after a crash) replaces the
file instead of adding a second copy. Each file is written under a
temporary name, fsynced and renamed (:mod:`.atomic`).

Inside a file: zstd compression, row groups of ``row_group_rows`` rows,
column statistics (min/max/nulls) for every column but the free-text ones
(see :data:`NO_STATISTICS_COLUMNS`) and split-block bloom filters for
``client_ip`` and ``path``, so that ``WHERE client_ip = ...``
skips every row group (and so every file) that does not hold the value.

A file longer than one row group is clustered by a hash of ``client_ip``
(a stable sort, so each client's rows keep their order): every client's
rows then sit in one row group (two when they straddle a boundary), whose
bloom filter is the only one that matches, so even a busy client is read
from about one row group per file.
Sorting by the text itself would also narrow the min/max ranges, but it
costs four times as much (measured) and point lookups are what the
layout is for. A file of one row group keeps its input order.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from logweir.errors import SinkError
from logweir.sinks.atomic import write_atomically

logger = logging.getLogger(__name__)

#: Hive's name for a NULL partition value.
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
#: Columns that get bloom filters.
BLOOM_COLUMNS: tuple[str, ...] = ("client_ip", "path")
#: Columns written with dictionary encoding: values that repeat within a
#: row group. Client IPs and paths repeat too (a busy client or page is most
#: of a file's rows): with a dictionary they are written in two thirds of
#: the time and files are a third smaller than plain (measured on
#: ``logweir gen`` traffic); where a row group's values do not repeat, the
#: writer falls back to plain pages by itself once the dictionary page is
#: full. The others (times, offsets, numbers, queries, free text) are
#: written plain.
DICTIONARY_COLUMNS: tuple[str, ...] = (
    "client_ip",
    "path",
    "method",
    "protocol",
    "status",
    "host",
    "user_agent",
    "referer",
    "level",
    "service",
    "source",
)
#: Columns written without min/max statistics: long free text whose ranges
#: span nearly everything in every row group, so no filter is pruned by
#: them, while comparing the strings cost about 15 % of the writing time
#: (measured). Every other column keeps its statistics.
NO_STATISTICS_COLUMNS: tuple[str, ...] = (
    "query",
    "referer",
    "user_agent",
    "message",
    "extra",
)
#: Integer columns written as deltas (``DELTA_BINARY_PACKED``): times and
#: input offsets grow nearly in step from row to row, so their deltas are
#: small; this gives smaller files and less for zstd to do (7 % less
#: writing time, measured) than plain encoding.
DELTA_COLUMNS: tuple[str, ...] = ("ts", "offset")
#: Rows per row group. 64 Ki rows (about 1 MB compressed) write a quarter
#: faster than 32 Ki, since every column chunk builds its own dictionary,
#: and a point lookup still reads one row group in a file (measured).
ROW_GROUP_ROWS = 65_536
#: Files longer than one row group are clustered by this column's hash.
CLUSTER_COLUMN = "client_ip"
_CLUSTER_SEED = 301

_HOUR_US = 3_600_000_000
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+=,-]*$")


def check_name(name: str) -> str:
    """Return ``name`` if it can be a file name in the lake, else raise.

    Letters, digits and ``_ . @ + = , -``; not starting with a dot (hidden
    names are the temporary files).
    """
    if not _SAFE_NAME.match(name):
        raise SinkError(
            f"bad output file name {name!r}: use letters, digits and _ . @ + = , - "
            "and do not start with a dot"
        )
    return name


def partition_dir(hour: int | None) -> str:
    """``date=YYYY-MM-DD/hour=HH`` for an hour counted from the epoch."""
    if hour is None:
        return f"date={NULL_PARTITION}/hour={NULL_PARTITION}"
    moment = datetime.fromtimestamp(hour * 3600, UTC)
    return f"date={moment:%Y-%m-%d}/hour={moment:%H}"


class LakeWriter:
    """Writes events batches into ``OUT/events`` (see the module docstring).

    ``write`` is safe to call from one thread at a time; several writers
    (one per worker process) may share ``out_dir`` as long as they use
    different names. ``bloom_columns=()`` and ``cluster=False`` give the
    plain layout (what the benchmark compares against).
    """

    def __init__(
        self,
        out_dir: Path | str,
        compression: str = "zstd",
        row_group_rows: int = ROW_GROUP_ROWS,
        compression_level: int | None = None,
        bloom_fpp: float = 0.01,
        bloom_columns: tuple[str, ...] = BLOOM_COLUMNS,
        cluster: bool = True,
    ) -> None:
        if row_group_rows < 1:
            raise SinkError(f"bad row group size {row_group_rows}: must be positive")
        self.root = Path(out_dir) / "events"
        self.compression = compression
        self.compression_level = compression_level
        self.row_group_rows = row_group_rows
        self.bloom_fpp = bloom_fpp
        self.bloom_columns = bloom_columns
        self.cluster = cluster
        self.files_written = 0
        self.rows_written = 0

    def write(self, events: pl.DataFrame, name: str) -> list[Path]:
        """Write ``events`` as one file per hour partition; return the paths.

        Raises :class:`SinkError` for a bad ``name`` or when a file cannot
        be written; files renamed into place before the failure are whole.
        """
        check_name(name)
        if events.is_empty():
            return []
        paths = []
        for hour, part in self._by_hour(events):
            path = self.root / partition_dir(hour) / f"{name}.parquet"
            self._write_file(path, part)
            paths.append(path)
        return paths

    def flush(self) -> None:
        """Nothing is buffered: every ``write`` is on disk when it returns."""

    def close(self) -> None:
        """Nothing to release; here for the common sink verbs."""

    def _by_hour(self, events: pl.DataFrame) -> list[tuple[int | None, pl.DataFrame]]:
        """(hour since the epoch, rows) per hour present, nulls last.

        One filter per hour: a batch spans few hours, and this is cheaper
        than ``partition_by``, which gathers every column once more.
        """
        hours = events.get_column("ts").dt.epoch("us") // _HOUR_US
        distinct = hours.unique().sort(nulls_last=True).to_list()
        if len(distinct) == 1:
            return [(distinct[0], events)]
        return [
            (hour, events.filter(hours.is_null() if hour is None else hours == hour))
            for hour in distinct
        ]

    def _write_file(self, path: Path, frame: pl.DataFrame) -> None:
        clustered = self.cluster and CLUSTER_COLUMN in frame.columns
        if clustered and frame.height > self.row_group_rows:
            frame = _clustered(frame, self.bloom_columns)
        table = _to_arrow(frame)
        blooms = self._bloom_options(frame)

        def write(target: Path) -> None:
            _write_table(table, target, self, blooms)

        write_atomically(path, write)
        self.files_written += 1
        self.rows_written += frame.height
        logger.debug("lake: %d rows to %s", frame.height, path)

    def _bloom_options(self, frame: pl.DataFrame) -> dict[str, dict[str, float]]:
        """Bloom filters sized for the file's distinct values (capped at a
        row group), so a file with few clients does not carry big filters."""
        sizes = _bloom_sizes(frame, self.bloom_columns, self.row_group_rows)
        return {
            column: {"ndv": ndv, "fpp": self.bloom_fpp} for column, ndv in sizes.items()
        }


def _bloom_sizes(
    frame: pl.DataFrame, columns: tuple[str, ...], row_group_rows: int
) -> dict[str, int]:
    """Distinct values to size each bloom filter for (per row group, at most)."""
    present = [column for column in columns if column in frame.columns]
    if not present:
        return {}
    distinct = frame.select(pl.col(present).n_unique()).row(0)
    return {
        column: max(1, min(int(count), row_group_rows))
        for column, count in zip(present, distinct, strict=True)
    }


def _clustered(frame: pl.DataFrame, keep: tuple[str, ...]) -> pl.DataFrame:
    """``frame`` sorted by the hash of its client IPs (stable).

    Reordering rows sends the Parquet writer to read every string where a
    gather left it, all over the batch's buffers, once for the dictionary,
    once for statistics and once for the bloom filter: that cost more than
    the writing itself. So the dictionary columns are first made Polars
    categoricals, whose codes a sort moves instead of the strings, and
    which the writer takes as ready-made dictionaries (a file written so
    is 40 % cheaper, measured; its own categories per column and batch, so
    no dictionary holds values the file does not). The columns the bloom
    filters are on stay text: a ready-made dictionary is written whole into
    every row group, and theirs differ between row groups.
    """
    categorical = [
        name
        for name in DICTIONARY_COLUMNS
        if frame.schema.get(name) == pl.String() and name not in keep
    ]
    coded = frame.with_columns(
        pl.col(name).cast(pl.Categorical(pl.Categories.random()))
        for name in categorical
    )
    return coded.sort(pl.col(CLUSTER_COLUMN).hash(_CLUSTER_SEED), maintain_order=True)


def _to_arrow(frame: pl.DataFrame) -> pa.Table:
    """``frame`` as Arrow, strings as string views where the writer allows.

    Top-level string views cost no copy and pyarrow writes them; inside a
    list of structs (``extra``), and as the values of a dictionary, its
    Parquet writer takes classic large strings only, so those columns are
    converted.
    """
    classic = [
        name
        for name, dtype in frame.schema.items()
        if dtype.is_nested() or isinstance(dtype, pl.Categorical)
    ]
    flat = [name for name in frame.columns if name not in classic]
    table = frame.select(flat).to_arrow(compat_level=pl.CompatLevel.newest())
    for index, name in enumerate(frame.columns):
        if name in classic:
            column = frame.select(name).to_arrow(compat_level=pl.CompatLevel.oldest())
            table = table.add_column(index, column.field(0), column.column(0))
    return table


def _write_table(
    table: pa.Table,
    target: Path,
    writer: LakeWriter,
    blooms: dict[str, dict[str, float]],
) -> None:
    pq.write_table(
        table,
        target,
        compression=writer.compression,
        compression_level=writer.compression_level,
        row_group_size=writer.row_group_rows,
        write_statistics=[
            name for name in table.column_names if name not in NO_STATISTICS_COLUMNS
        ],
        use_dictionary=[
            name for name in DICTIONARY_COLUMNS if name in table.column_names
        ],
        bloom_filter_options=blooms,
        # Files are read as Parquet's own types (a categorical written from
        # Polars reads back as text, as in every other file of the lake).
        store_schema=False,
        column_encoding={
            name: "DELTA_BINARY_PACKED"
            for name in DELTA_COLUMNS
            if name in table.column_names
        },
    )
