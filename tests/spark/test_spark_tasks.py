"""What a Spark task does, without Spark: chunk rows in, events and tallies out."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa

from logweir.formats.base import ParseOptions
from logweir.sources import expand_inputs, plan_chunks
from logweir.spark.tasks import (
    TALLY_COLUMNS,
    TaskSettings,
    chunk_rows,
    process_chunks,
    record_lines,
)

LINES = [
    b'203.0.113.9 - - [03/Jun/2024:08:00:01 +0000] "GET /a HTTP/1.1" 200 512 "-" "c"',
    b"this is not a log line",
    b"",
    b'198.51.100.7 - - [03/Jun/2024:08:01:30 +0000] "POST /b HTTP/1.1" 503 - "-" "Go"',
    b'203.0.113.9 - - [03/Jun/2024:08:02:00 +0000] "GET /\xff HTTP/1.1" 404 9 "-" "x"',
]


def run_tasks(log: Path, out: Path, chunk_bytes: int) -> list[pa.RecordBatch]:
    inputs = expand_inputs([str(log)])
    chunks = [c for inp in inputs for c in plan_chunks(inp, chunk_bytes)]
    rows = chunk_rows(chunks, {inputs[0].path: "combined"})
    table = pa.table(
        {"chunk": [r[0] for r in rows], "format": [r[1] for r in rows]},
        schema=pa.schema([("chunk", pa.binary()), ("format", pa.string())]),
    )
    settings = TaskSettings(ParseOptions(), out, 1 << 20, ("status_class", "method"))
    return list(process_chunks(settings, iter(table.to_batches())))


def test_a_task_gives_events_then_one_tally_row_per_chunk(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(b"\n".join(LINES) + b"\n")
    batches = run_tasks(log, tmp_path / "out", chunk_bytes=100)
    frame = pl.from_arrow(pa.Table.from_batches(batches))
    assert isinstance(frame, pl.DataFrame)
    assert frame.columns == [
        "ts",
        "client_ip",
        "status",
        "bytes",
        "duration_ms",
        "method",
        *TALLY_COLUMNS,
    ]
    tallies = frame.filter(pl.col("chunk_lines").is_not_null())
    assert tallies.height == 2  # 100-byte chunks: lines 1-2, then 3-5
    assert tallies.select(pl.col(TALLY_COLUMNS).sum()).row(0) == (5, 3, 1, 1, 2)
    events = frame.filter(pl.col("chunk_lines").is_null())
    assert events.get_column("status").to_list() == [200, 503, 404]
    assert events.get_column("bytes").to_list() == [512, None, 9]


def test_the_lake_holds_byte_offsets_of_line_starts(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(b"\n".join(LINES) + b"\n")
    out = tmp_path / "out"
    run_tasks(log, out, chunk_bytes=1 << 20)
    files = sorted((out / "events").rglob("*.parquet"))
    assert [f.name.endswith("-0000.parquet") for f in files] == [True]
    lake = pl.read_parquet(files[0]).sort("offset")
    starts = [sum(len(line) + 1 for line in LINES[:i]) for i in range(len(LINES))]
    assert lake.get_column("offset").to_list() == [starts[0], starts[3], starts[4]]
    assert lake.get_column("source").unique().to_list() == [str(log.resolve())]
    rejects = pl.read_parquet(next((out / "rejects").glob("*.parquet")))
    assert rejects.select("line_number", "offset").row(0) == (2, starts[1])


def test_kafka_records_become_one_line_batch_per_partition() -> None:
    records = pa.record_batch(
        {
            "topic": ["web", "web", "web", "web"],
            "partition": pa.array([1, 0, 1, 0], pa.int32()),
            "offset": pa.array([7, 40, 8, 41], pa.int64()),
            "value": pa.array([b"one\n", b"zero", None, b"bad \xff"], pa.binary()),
        }
    )
    batches = {b.source: b for b in record_lines(records)}
    assert sorted(batches) == ["kafka:web/0", "kafka:web/1"]
    one = batches["kafka:web/1"]
    assert one.lines.to_list() == ["one", ""]
    assert one.offsets.to_list() == [7, 8]
    assert one.line_numbers.to_list() == [8, 9]
    zero = batches["kafka:web/0"]
    assert zero.lines.to_list() == ["zero", "bad \ufffd"]
