"""Exact run-wide counts for the report, kept while the run reads its input.

The report's panels (requests per status and per minute, top paths, top
clients, top 404s, the slowest paths, unique clients, bandwidth) are exact
counts over every event of the run. Reading them back from the lake at the
end took a third of a second per million lines, after everything else was
done; counting them batch by batch, in the worker that already holds the
events, costs a tenth of that and overlaps the rest of the run.

A :class:`Tally` is a few small keyed frames that merge by summing, like
the window state: workers tally their chunks and the main process merges
the tallies in chunk order. Per-path and per-client rows grow with the
number of distinct paths and clients; past :data:`MAX_KEYS` of them the
tally gives up (:attr:`Tally.overflow`) and the report reads the lake
instead, which DuckDB does in bounded memory.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass, field

import polars as pl

#: Distinct paths plus clients a tally keeps before it gives up.
MAX_KEYS = 2_000_000
#: Rows of a table held uncompacted before they are summed.
_PENDING_ROWS = 400_000

_US_PER_MINUTE = 60_000_000
_MAGIC = b"LWTALLY\x01"

_PATH_SCHEMA: dict[str, pl.DataType] = {
    "path": pl.String(),
    "requests": pl.UInt64(),
    "bytes": pl.UInt64(),
    "not_found": pl.UInt64(),
    "not_found_bytes": pl.UInt64(),
    "timed": pl.UInt64(),
    "duration_sum": pl.Float64(),
}
_CLIENT_SCHEMA: dict[str, pl.DataType] = {
    "client_ip": pl.String(),
    "requests": pl.UInt64(),
    "bytes": pl.UInt64(),
}
_STATUS_SCHEMA: dict[str, pl.DataType] = {
    "status": pl.UInt16(),
    "requests": pl.UInt64(),
}
_MINUTE_SCHEMA: dict[str, pl.DataType] = {
    "minute": pl.Int64(),
    "requests": pl.UInt64(),
}
_SCHEMAS = {
    "paths": _PATH_SCHEMA,
    "clients": _CLIENT_SCHEMA,
    "statuses": _STATUS_SCHEMA,
    "minutes": _MINUTE_SCHEMA,
}
_KEYS = {
    "paths": "path",
    "clients": "client_ip",
    "statuses": "status",
    "minutes": "minute",
}


def _sum_by(frame: pl.DataFrame, key: str) -> pl.DataFrame:
    return frame.group_by(key).agg(pl.exclude(key).sum())


@dataclass
class _Table:
    """Rows keyed by one column, appended per batch and summed now and then."""

    name: str
    parts: list[pl.DataFrame] = field(default_factory=list)
    height: int = 0
    summed: int = 0

    def add(self, rows: pl.DataFrame) -> None:
        self.parts.append(rows)
        self.height += rows.height
        if self.height - self.summed > max(_PENDING_ROWS, self.summed):
            self.compact()

    def compact(self) -> pl.DataFrame:
        schema = _SCHEMAS[self.name]
        if not self.parts:
            frame = pl.DataFrame(schema=schema)
        elif len(self.parts) == 1 and self.summed == self.height:
            frame = self.parts[0]
        else:
            whole = pl.concat(self.parts, how="vertical_relaxed")
            frame = _sum_by(whole, _KEYS[self.name]).cast(schema)  # type: ignore[arg-type]
        self.parts = [frame]
        self.height = self.summed = frame.height
        return frame


class Tally:
    """Exact counts for the report; see the module docstring."""

    def __init__(self) -> None:
        self.tables = {name: _Table(name) for name in _SCHEMAS}
        self.events = 0
        self.bandwidth = 0
        self.first_us: int | None = None
        self.last_us: int | None = None
        self.overflow = False

    def add(self, events: pl.DataFrame) -> None:
        """Count an events batch (EVENT_SCHEMA)."""
        if self.overflow or events.is_empty():
            self.events += events.height
            return
        self.events += events.height
        lazy = events.lazy()
        not_found = pl.col("status") == 404
        duration = pl.col("duration_ms")
        queries = [
            lazy.group_by("path").agg(
                pl.len().cast(pl.UInt64).alias("requests"),
                pl.col("bytes").sum().alias("bytes"),
                not_found.sum().cast(pl.UInt64).alias("not_found"),
                pl.col("bytes").filter(not_found).sum().alias("not_found_bytes"),
                duration.is_not_null().sum().cast(pl.UInt64).alias("timed"),
                duration.sum().alias("duration_sum"),
            ),
            lazy.group_by("client_ip").agg(
                pl.len().cast(pl.UInt64).alias("requests"),
                pl.col("bytes").sum().alias("bytes"),
            ),
            lazy.group_by("status").agg(pl.len().cast(pl.UInt64).alias("requests")),
            lazy.filter(pl.col("ts").is_not_null())
            .group_by((pl.col("ts").dt.epoch("us") // _US_PER_MINUTE).alias("minute"))
            .agg(pl.len().cast(pl.UInt64).alias("requests")),
            lazy.select(
                pl.col("bytes").sum().alias("bandwidth"),
                pl.col("ts").dt.epoch("us").min().alias("first"),
                pl.col("ts").dt.epoch("us").max().alias("last"),
            ),
        ]
        paths, clients, statuses, minutes, overall = pl.collect_all(queries)
        # Copy the kept text out of the batch's buffers, which it would
        # otherwise keep alive for the whole run.
        paths = paths.with_columns(pl.col("path") + pl.lit(""))
        clients = clients.with_columns(pl.col("client_ip") + pl.lit(""))
        for name, rows in zip(
            _SCHEMAS, (paths, clients, statuses, minutes), strict=True
        ):
            self.tables[name].add(rows.cast(_SCHEMAS[name]))  # type: ignore[arg-type]
        self._note(*overall.row(0))
        self._check_size()

    def _note(self, bandwidth: int | None, first: int | None, last: int | None) -> None:
        self.bandwidth += int(bandwidth or 0)
        if first is not None:
            self.first_us = (
                first if self.first_us is None else min(self.first_us, first)
            )
        if last is not None:
            self.last_us = last if self.last_us is None else max(self.last_us, last)

    def _check_size(self) -> None:
        paths, clients = self.tables["paths"], self.tables["clients"]
        if paths.height + clients.height <= MAX_KEYS:
            return
        if paths.compact().height + clients.compact().height > MAX_KEYS:
            self.overflow = True
            self.tables = {name: _Table(name) for name in _SCHEMAS}

    def merge(self, other: Tally) -> None:
        """Add ``other`` (a tally of other events) into this one."""
        self.events += other.events
        if other.overflow:
            self.overflow = True
        if self.overflow:
            self.tables = {name: _Table(name) for name in _SCHEMAS}
            return
        for name, table in other.tables.items():
            self.tables[name].add(table.compact())
        self._note(other.bandwidth, other.first_us, other.last_us)
        self._check_size()

    def frame(self, name: str) -> pl.DataFrame:
        """One table, summed: ``paths``, ``clients``, ``statuses`` or ``minutes``."""
        return self.tables[name].compact()

    def to_bytes(self) -> bytes:
        """The tally as bytes, to carry it out of a worker process."""
        blobs = []
        for name in _SCHEMAS:
            buffer = io.BytesIO()
            self.frame(name).write_ipc(buffer, compression="uncompressed")
            blobs.append(buffer.getvalue())
        header = json.dumps(
            {
                "events": self.events,
                "bandwidth": self.bandwidth,
                "first_us": self.first_us,
                "last_us": self.last_us,
                "overflow": self.overflow,
                "sizes": [len(blob) for blob in blobs],
            }
        ).encode()
        return b"".join([_MAGIC, struct.pack("<I", len(header)), header, *blobs])

    @classmethod
    def from_bytes(cls, data: bytes) -> Tally:
        """A tally written by :meth:`to_bytes`."""
        if not data.startswith(_MAGIC):
            raise ValueError("not a logweir report tally")
        start = len(_MAGIC)
        (size,) = struct.unpack_from("<I", data, start)
        start += 4
        header = json.loads(data[start : start + size])
        start += size
        tally = cls()
        tally.events = header["events"]
        tally.bandwidth = header["bandwidth"]
        tally.first_us = header["first_us"]
        tally.last_us = header["last_us"]
        tally.overflow = header["overflow"]
        for name, length in zip(_SCHEMAS, header["sizes"], strict=True):
            frame = pl.read_ipc(io.BytesIO(data[start : start + length]))
            start += length
            tally.tables[name].add(frame)
            tally.tables[name].summed = frame.height
        return tally
