"""What a Spark task does with its chunks: read, parse, write the lake.

This module runs on Spark's executors, inside ``mapInArrow``, and imports
no PySpark: it takes Arrow batches of planned chunks and gives Arrow
batches of events, so it can be read (and tested) as plain logweir code.

Each input row names one :class:`~logweir.sources.Chunk`: a line-aligned
byte range of a file, planned on the driver by
:func:`~logweir.sources.plan_chunks`. The task reads it with logweir's own
reader, so every event's ``offset`` is the byte offset of its line's start,
exactly as ``logweir run`` gives it; parses each batch with a parser
compiled once per Python worker; writes the events to the lake and the
rejects to ``OUT/rejects`` with the same writers and the same file names as
``logweir run`` (``{chunk name}-{batch number}``); and hands the columns
the windows need back to Spark. A retried or speculative task writes the
same names again, and each file is renamed into place whole, so the lake
holds one copy of every line whatever Spark retries.

After a chunk's events, the task gives one *tally row* for the chunk:
every event column null and ``chunk_lines`` (and the other ``chunk_*``
columns) set. The driver sums them for the run's counts; unlike
accumulators, they are counted once however often Spark recomputes a task.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa

from logweir.formats.base import ParseOptions, Parser
from logweir.formats.registry import compile_format
from logweir.schema import LineBatch, ParseResult
from logweir.sinks import LakeWriter, RejectWriter
from logweir.sources import Chunk, read_chunk

logger = logging.getLogger(__name__)

#: Columns of the events batch the windows read, with their Arrow types.
#: Spark has no unsigned integers, so ``status`` and ``bytes`` widen to
#: signed types here; the lake keeps the canonical unsigned ones.
BASE_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("ts", pa.timestamp("us", tz="UTC")),
    ("client_ip", pa.string()),
    ("status", pa.int32()),
    ("bytes", pa.int64()),
    ("duration_ms", pa.float64()),
)

#: Event columns a small dimension may be read from (``status_class`` is
#: derived from ``status``).
DIMENSION_COLUMNS: tuple[str, ...] = ("host", "method", "service", "level")
#: Item columns of the top lists besides ``client_ip`` (a batch job only).
TOP_COLUMNS: tuple[str, ...] = ("path", "user_agent")

#: The per-chunk counts of a tally row.
TALLY_COLUMNS: tuple[str, ...] = (
    "chunk_lines",
    "chunk_events",
    "chunk_rejects",
    "chunk_skipped",
    "chunk_lake_files",
)

_SPARK_TYPES = {
    pa.string(): "string",
    pa.int32(): "int",
    pa.int64(): "bigint",
    pa.float64(): "double",
    pa.timestamp("us", tz="UTC"): "timestamp",
}


@dataclass(frozen=True)
class TaskSettings:
    """What every task needs besides its chunks; small and picklable."""

    options: ParseOptions
    out: Path
    batch_bytes: int
    dimensions: tuple[str, ...] = ()
    #: Whether tasks write the lake and rejects (a Kafka query's second and
    #: later window specs parse the same records again and do not).
    write_lake: bool = True
    #: Whether events carry the top lists' items (path, user agent).
    top_lists: bool = False

    @property
    def dimension_columns(self) -> tuple[str, ...]:
        """Event columns the chosen dimensions read, beyond the base ones."""
        return tuple(c for c in DIMENSION_COLUMNS if c in self.dimensions)

    def arrow_schema(self) -> pa.Schema:
        """The schema of what :func:`process_chunks` yields."""
        fields = [pa.field(name, kind) for name, kind in BASE_COLUMNS]
        fields += [pa.field(name, pa.string()) for name in self.dimension_columns]
        if self.top_lists:
            fields += [pa.field(name, pa.string()) for name in TOP_COLUMNS]
        fields += [pa.field(name, pa.int64()) for name in TALLY_COLUMNS]
        return pa.schema(fields)

    def spark_schema(self) -> str:
        """The same schema as Spark DDL, for ``mapInArrow``."""
        return ", ".join(
            f"`{field.name}` {_SPARK_TYPES[field.type]}"
            for field in self.arrow_schema()
        )


def encode_chunk(chunk: Chunk) -> bytes:
    """A chunk as the bytes of one input row (pickled: driver and executors
    run the same logweir, and a chunk holds only plain values)."""
    return pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL)


def decode_chunk(data: bytes) -> Chunk:
    chunk = pickle.loads(data)
    if not isinstance(chunk, Chunk):
        raise TypeError(f"a chunk row holds a {type(chunk).__name__}, not a Chunk")
    return chunk


_parsers: dict[tuple[str, str], Parser] = {}


def compiled_parser(spec: str, options: ParseOptions) -> Parser:
    """Compile each format once per Python worker (Spark reuses workers
    between tasks), not once per chunk or batch."""
    key = (spec, repr(options))
    parser = _parsers.get(key)
    if parser is None:
        parser = _parsers[key] = compile_format(spec, options)
    return parser


def process_chunks(
    settings: TaskSettings, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function: chunk rows in, event batches out.

    Each input batch has a binary column ``chunk`` (:func:`encode_chunk`)
    and a string column ``format`` (the format spec of the chunk's input).
    Yields, per parsed batch, the window columns of its events, and per
    chunk one tally row (see the module docstring).
    """
    schema = settings.arrow_schema()
    lake = LakeWriter(settings.out)
    rejects = RejectWriter(settings.out)
    for batch in batches:
        specs = batch.column("format").to_pylist()
        for data, spec in zip(batch.column("chunk").to_pylist(), specs, strict=True):
            parser = compiled_parser(spec, settings.options)
            yield from _process_chunk(
                decode_chunk(data), parser, settings, schema, lake, rejects
            )


def _process_chunk(
    chunk: Chunk,
    parser: Parser,
    settings: TaskSettings,
    schema: pa.Schema,
    lake: LakeWriter,
    rejects: RejectWriter,
) -> Iterator[pa.RecordBatch]:
    tally = dict.fromkeys(TALLY_COLUMNS, 0)
    for number, lines in enumerate(read_chunk(chunk, batch_bytes=settings.batch_bytes)):
        result = parser.parse(lines)
        name = f"{chunk.name}-{number:04d}"
        tally["chunk_lake_files"] += len(lake.write(result.events, name))
        if result.rejects.height:
            rejects.write(result.rejects, name)
        _add(tally, len(lines), result)
        if result.events.height:
            yield window_columns(result.events, schema)
    logger.debug(
        "spark: chunk done source=%s start=%d lines=%d",
        chunk.input.path,
        chunk.start,
        tally["chunk_lines"],
    )
    yield tally_row(tally, schema)


def _add(tally: dict[str, int], lines: int, result: ParseResult) -> None:
    tally["chunk_lines"] += lines
    tally["chunk_events"] += result.events.height
    tally["chunk_rejects"] += result.rejects.height
    tally["chunk_skipped"] += result.skipped


def window_columns(events: pl.DataFrame, schema: pa.Schema) -> pa.RecordBatch:
    """The columns of ``schema`` taken from a canonical events frame.

    Tally columns are null; the others are cast to the Arrow types Spark
    expects (plain ``string``, signed integers).
    """
    height = events.height
    arrays: list[pa.Array] = []
    for field in schema:
        if field.name in TALLY_COLUMNS:
            arrays.append(pa.nulls(height, field.type))
            continue
        column = events.get_column(field.name).to_arrow(
            compat_level=pl.CompatLevel.oldest()
        )
        arrays.append(column.cast(field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def tally_row(tally: dict[str, int], schema: pa.Schema) -> pa.RecordBatch:
    """One row: the chunk's counts, every event column null."""
    arrays = [
        pa.array([tally[field.name]], field.type)
        if field.name in TALLY_COLUMNS
        else pa.nulls(1, field.type)
        for field in schema
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


#: Spark DDL of the driver's input rows (see :func:`chunk_rows`).
CHUNK_ROW_SCHEMA = "chunk binary, format string"


def chunk_rows(
    chunks: Sequence[Chunk], formats: Mapping[str, str]
) -> list[tuple[bytes, str]]:
    """The driver's input rows, in chunk order: each chunk, encoded, and the
    format spec of its input (``formats`` maps input paths to specs)."""
    return [(encode_chunk(chunk), formats[chunk.input.path]) for chunk in chunks]


#: Spark DDL of the Kafka records a streaming task gets (Spark's Kafka
#: source gives these columns, among others).
KAFKA_RECORD_COLUMNS: tuple[str, ...] = ("topic", "partition", "offset", "value")


def process_records(
    settings: TaskSettings, spec: str, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function of a Kafka stream: records in, events out.

    Each record is one line (as ``logweir ship`` produces them). Lines get
    the identity ``logweir run --source kafka://...`` gives them: source
    ``kafka:<topic>/<partition>``, offset the record's Kafka offset. Each
    batch's events go to a lake file named after its topic, partition and
    offset range (``spark-<topic>-<partition>-<first>-<end>``): Spark
    replays a failed micro-batch over the same offset ranges, so a replay
    writes the same names. No tally rows: a stream has no end to count to.
    """
    parser = compiled_parser(spec, settings.options)
    schema = settings.arrow_schema()
    lake = LakeWriter(settings.out)
    rejects = RejectWriter(settings.out)
    for batch in batches:
        for lines in record_lines(batch):
            result = parser.parse(lines)
            first = int(lines.offsets[0])
            end = int(lines.offsets[len(lines) - 1]) + 1
            name = f"spark-{lines.source[len('kafka:') :].replace('/', '-')}"
            name = f"{name}-{first:012d}-{end:012d}"
            if settings.write_lake:
                lake.write(result.events, name)
                if result.rejects.height:
                    rejects.write(result.rejects, name)
            if result.events.height:
                yield window_columns(result.events, schema)


def record_lines(batch: pa.RecordBatch) -> Iterator[LineBatch]:
    """The records of ``batch`` as one :class:`LineBatch` per partition.

    Values are decoded as UTF-8 (U+FFFD for bad bytes), a trailing ``\\n``
    is dropped, a null value is an empty line (which parsers skip), and
    line numbers are offsets + 1, as in :mod:`logweir.sources.kafka`.
    """
    frame = pl.from_arrow(batch.select(list(KAFKA_RECORD_COLUMNS)))
    assert isinstance(frame, pl.DataFrame)
    for (topic, partition), part in frame.group_by(
        ["topic", "partition"], maintain_order=True
    ):
        part = part.sort("offset")
        texts = [
            (value or b"").removesuffix(b"\n").decode("utf-8", "replace")
            for value in part.get_column("value").to_list()
        ]
        offsets = part.get_column("offset").cast(pl.UInt64).alias("offset")
        yield LineBatch(
            source=f"kafka:{topic}/{partition}",
            lines=pl.Series("line", texts, dtype=pl.String),
            offsets=offsets,
            line_numbers=(offsets + 1).alias("line_number"),
        )
