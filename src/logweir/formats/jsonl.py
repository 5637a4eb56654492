"""JSON lines: one JSON object per line, keys mapped onto the schema.

>>> from logweir.formats import compile_format
>>> parser = compile_format("json")

Which key fills which column is the shared table of
:mod:`logweir.formats.keymap` (``@timestamp``/``time``/``ts`` to ``ts``,
``remote_addr``/``client_ip`` to ``client_ip``, ``status``/``status_code``
to ``status`` …), matched without regard to case; ``ParseOptions.json_mapping``
replaces a column's keys with one path of its own (``http.request.method``).
Numbers given as strings are read as numbers; timestamps may be ISO 8601
with or without an offset, or epoch numbers (unit by magnitude, see
:mod:`logweir.formats.flextime`). Keys that fill no column go to ``extra``:
scalars as their text, objects and arrays as compact JSON text, and JSON
nulls left out. A nested object that fills a column through one of its
fields still goes to ``extra`` whole.

How, in three roads:

1. **Shapes** (:mod:`logweir.formats.jsonshape`): the keys of the most
   common flat line of a sample make one regex that checks and captures
   every line of that shape in one vectorized pass; up to
   :data:`MAX_SHAPES` shapes are tried, each on the lines left by the one
   before. A log written by one serializer takes this road whole.
2. **DuckDB**: the lines left, nested objects included, are validated and
   split into their top-level keys by DuckDB's JSON functions (yyjson, in
   C), one thread per parser (several worker processes run at once).
3. **Python**: lines DuckDB refuses (a few valid ones, such as strings with
   an escaped NUL) are retried one by one with Python's ``json``, which
   also gives the position of the error for the reject reason.

Polars' ``str.json_decode`` and ``read_ndjson`` were measured too: one bad
line, or one key whose type differs between lines, fails the whole batch,
and a key missing from the inferred schema is dropped without a word.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from typing import Any

import duckdb
import polars as pl

from logweir.formats.base import ParseOptions, Parser
from logweir.formats.flextime import TimeContext
from logweir.formats.jsonshape import learn_shape
from logweir.formats.keymap import (
    FieldsPart,
    KeyTable,
    merge_parts,
    resolve_and_convert,
)
from logweir.formats.lineprep import assemble, prepare, shape_road
from logweir.formats.timeutil import check_timezone
from logweir.schema import LineBatch, ParseResult

logger = logging.getLogger(__name__)

#: Above this many distinct keys in one batch, the batch is parsed line by
#: line: one column per key would cost more than it saves.
MAX_KEYS = 1000
#: Shapes of line tried on the fast road before the rest goes to DuckDB.
MAX_SHAPES = 4

_VALID_OBJECT = "json_valid(text) AND json_type(text) = 'OBJECT'"
_SURROGATES = re.compile("[\ud800-\udfff]")

_state = threading.local()


def _cursor() -> duckdb.DuckDBPyConnection:
    """A DuckDB cursor for this thread, made again after a fork."""
    connection = getattr(_state, "connection", None)
    if connection is None or getattr(_state, "pid", None) != os.getpid():
        connection = duckdb.connect()
        # Worker processes parse batches side by side: one thread each.
        connection.execute("SET threads = 1")
        _state.connection = connection
        _state.pid = os.getpid()
    cursor: duckdb.DuckDBPyConnection = connection.cursor()
    return cursor


def _query(source: pl.DataFrame, sql: str) -> pl.DataFrame:
    cursor = _cursor()
    try:
        cursor.register("batch", source.to_arrow())
        result: pl.DataFrame = cursor.sql(sql).pl()
        return result
    finally:
        cursor.close()


def _path(parts: list[str]) -> str:
    """A DuckDB JSON path (as an SQL literal) for nested ``parts``."""
    quoted = ".".join(
        '"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"' for part in parts
    )
    return "'$." + quoted.replace("'", "''") + "'"


@dataclass(frozen=True)
class Fields:
    """The text of every field: one column per key, one row per object line.

    ``rows`` are the batch rows of ``fields``' rows (not in order when
    several roads were taken); ``structured`` and ``nested`` are as
    :func:`~logweir.formats.keymap.resolve` takes them; ``rejects`` has
    ``row`` and ``_reason`` for the lines that are no JSON object.
    """

    rows: pl.Series
    fields: pl.DataFrame
    structured: dict[str, pl.Series]
    nested: tuple[str, ...]
    rejects: pl.DataFrame


def extract_fields(rows: pl.Series, texts: pl.Series, table: KeyTable) -> Fields:
    """Split each JSON object line into the decoded text of its fields.

    Every top-level key of the batch gets a column, in the order the batch
    first shows them (the line where a key first appears, then its place
    in that line), plus one column per nested path of ``table`` whose outer
    object the batch has. Lines that are no JSON object are rejected with
    the position of the error.
    """
    rows = rows.cast(pl.UInt32)
    parts, left = shape_road(rows, texts, learn_shape, shapes=MAX_SHAPES)
    shape_keys = [key for part in parts for key in part.fields.columns]
    general, rejects = _general_road(
        rows.gather(left), texts.gather(left), table, shape_keys
    )
    if general.rows.len() or not parts:
        parts.append(general)
    merged = merge_parts(parts)
    return Fields(merged.rows, merged.fields, merged.structured, merged.nested, rejects)


# --- the general road: DuckDB, then Python -------------------------------------


def _general_road(
    rows: pl.Series, texts: pl.Series, table: KeyTable, other_keys: list[str]
) -> tuple[FieldsPart, pl.DataFrame]:
    """Fields of the lines the shape road left, through DuckDB and Python.

    ``other_keys`` are the keys the shape road found: a dotted one of them
    is a key in its own right, so no nested path is opened for it.
    """
    source = pl.DataFrame({"row": rows, "text": texts})
    if source.height == 0:
        empty = pl.DataFrame(schema={"row": pl.UInt32, "_reason": pl.String})
        return FieldsPart(rows, pl.DataFrame(), {}), empty
    found = _query(
        source,
        "WITH k AS (SELECT row, json_keys(text) AS ks FROM batch "
        f"WHERE {_VALID_OBJECT}) SELECT key, min(row) AS first, "
        "arg_min(position, row) AS position FROM (SELECT row, unnest(ks) AS key, "
        "generate_subscripts(ks, 1) AS position FROM k) GROUP BY key "
        "ORDER BY min(row), arg_min(position, row)",
    )
    keys = found.get_column("key").to_list()
    first_seen = {
        key: (int(first), int(position)) for key, first, position in found.iter_rows()
    }
    nested: list[tuple[str, list[str]]] = []
    if len(keys) > MAX_KEYS:
        logger.info(
            "json: %d distinct keys in one batch; parsing line by line", len(keys)
        )
        fast_rows, fast = pl.Series("row", [], dtype=pl.UInt32), pl.DataFrame()
    else:
        nested = _nested_paths(keys, [*keys, *other_keys], table)
        fast_rows, fast = _extract(source, keys, nested)
    slow_source = source.filter(~pl.col("row").is_in(fast_rows.implode()))
    slow_rows, slow, rejects, slow_seen = _one_by_one(slow_source, nested)
    for key, seen in slow_seen.items():
        if key not in first_seen or seen < first_seen[key]:
            first_seen[key] = seen
    all_rows = pl.concat([fast_rows, slow_rows])
    raw = pl.concat([fast, slow], how="diagonal_relaxed") if slow.width else fast
    fields, structured = decode_fields(raw)
    return (
        FieldsPart(
            all_rows,
            fields,
            first_seen,
            structured,
            tuple(name for name, _ in nested),
        ),
        rejects,
    )


def _nested_paths(
    keys: list[str], all_keys: list[str], table: KeyTable
) -> list[tuple[str, list[str]]]:
    """(column name, path parts) for table keys inside objects the batch has.

    A table key that is itself a key of the batch (ECS writes
    ``"log.level"`` literally) is read as that key, not as a path.
    """
    lower = {key.lower(): key for key in reversed(keys)}
    literal = {key.lower() for key in all_keys}
    found: dict[str, list[str]] = {}
    for key, *_ in table.rows:
        head, _, rest = key.partition(".")
        if rest and head in lower and key not in literal:
            found.setdefault(f"{lower[head]}.{rest}", [lower[head], *rest.split(".")])
    return list(found.items())


def _extract(
    source: pl.DataFrame, keys: list[str], nested: list[tuple[str, list[str]]]
) -> tuple[pl.Series, pl.DataFrame]:
    # An empty key has no DuckDB path: lines with one go the slow way.
    names = [key for key in keys if key] + [name for name, _ in nested]
    paths = [_path([key]) for key in keys if key] + [
        _path(parts) for _, parts in nested
    ]
    where = _VALID_OBJECT
    if "" in keys:
        where += " AND NOT list_contains(json_keys(text), '')"
    if not paths:
        found = _query(source, f"SELECT row FROM batch WHERE {where}")
        return found.get_column("row").cast(pl.UInt32), pl.DataFrame()
    found = _query(
        source,
        f"SELECT row, json_extract(text, [{', '.join(paths)}]) AS v "
        f"FROM batch WHERE {where}",
    )
    values = found.select(
        [pl.col("v").list.get(index).alias(name) for index, name in enumerate(names)]
    )
    return found.get_column("row").cast(pl.UInt32), values


def _one_by_one(
    source: pl.DataFrame, nested: list[tuple[str, list[str]]]
) -> tuple[pl.Series, pl.DataFrame, pl.DataFrame, dict[str, tuple[int, int]]]:
    """Raw fields of the lines DuckDB did not take, and rejects for the rest."""
    rows: list[int] = []
    records: list[dict[str, str | None]] = []
    rejects: list[dict[str, Any]] = []
    first_seen: dict[str, tuple[int, int]] = {}
    for row, text in source.iter_rows():
        value, reason = _load(text)
        if not isinstance(value, dict):
            rejects.append({"row": row, "_reason": reason})
            continue
        record = {_clean(key): _dump(item) for key, item in value.items()}
        for position, key in enumerate(record):
            first_seen.setdefault(key, (row, position))
        for name, parts in nested:
            record.setdefault(name, _dump(_walk(value, parts)))
        rows.append(row)
        records.append(record)
    if source.height:
        logger.debug("json: %d lines parsed one by one", source.height)
    names = list(dict.fromkeys(key for record in records for key in record))
    frame = pl.DataFrame(
        {name: [record.get(name) for record in records] for name in names},
        schema=dict.fromkeys(names, pl.String),
    )
    return (
        pl.Series("row", rows, dtype=pl.UInt32),
        frame,
        pl.DataFrame(rejects, schema={"row": pl.UInt32, "_reason": pl.String}),
        first_seen,
    )


def _load(text: str) -> tuple[object, str | None]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        return None, f"not JSON: {error.msg} (column {error.colno})"
    except RecursionError:
        return None, "not JSON: nested too deeply"
    if not isinstance(value, dict):
        return None, f"not a JSON object: the line holds a JSON {_kind(value)}"
    return value, None


def _walk(value: object, parts: list[str]) -> object:
    for part in parts:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _dump(value: object) -> str | None:
    if value is None:
        return None
    return _clean(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _clean(text: str) -> str:
    """``text`` with lone UTF-16 surrogates (``"\\ud800"`` decodes to one in
    Python) replaced by U+FFFD, as the sources replace bytes that are not
    UTF-8: no Polars string can hold them."""
    return _SURROGATES.sub("\ufffd", text)


def decode_fields(raw: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, pl.Series]]:
    """Raw JSON values to text (strings unquoted), and where they are objects.

    Returns ``(fields, structured)`` as :func:`~logweir.formats.keymap.resolve`
    takes them. JSON null becomes null; numbers and booleans keep their text.
    """
    exprs = []
    for name in raw.columns:
        column = pl.col(name)
        simple = column.str.starts_with('"') & ~column.str.contains("\\", literal=True)
        exprs.append(
            pl.when(simple)
            .then(column.str.slice(1, column.str.len_chars() - 2))
            .when(column.str.starts_with('"') | (column == "null"))
            .then(None)
            .otherwise(column)
            .alias(name)
        )
    fields = raw.with_columns(exprs)
    structured: dict[str, pl.Series] = {}
    for name in raw.columns:
        values = raw.get_column(name)
        first = values.str.head(1)
        escaped = ((first == '"') & values.str.contains("\\", literal=True)).fill_null(
            False
        )
        if escaped.any():
            index = escaped.arg_true()
            decoded = _decode_strings(values.gather(index))
            fields = fields.with_columns(
                fields.get_column(name).scatter(index, decoded)
            )
        is_object = first.is_in(["{", "["]).fill_null(False)
        if is_object.any():
            structured[name] = is_object
    return fields, structured


def _decode_strings(raw: pl.Series) -> pl.Series:
    # Polars decodes an escaped lone surrogate to NUL: Python does those.
    if not raw.str.contains(r"\\u[dD][89a-fA-F]").any():
        try:
            return raw.str.json_decode(pl.String)
        except pl.exceptions.ComputeError:
            pass
    return pl.Series(
        [_clean(json.loads(text)) for text in raw.to_list()], dtype=pl.String
    )


class JsonParser(Parser):
    """JSON lines to canonical events; see the module docstring."""

    name = "json"

    def __init__(self, options: ParseOptions | None = None) -> None:
        self.options = options or ParseOptions()
        check_timezone(self.options.timezone)
        self.table = KeyTable.build(self.options.json_mapping)

    def parse(self, batch: LineBatch) -> ParseResult:
        prepared = prepare(batch)
        ctx = TimeContext.current(self.options.timezone, self.options.reference_year)
        found = extract_fields(prepared.rows, prepared.lines, self.table)
        parsed = resolve_and_convert(
            found.rows,
            found.fields,
            self.table,
            ctx,
            structured=found.structured,
            nested=found.nested,
        )
        return assemble(batch, prepared, parsed, rejected=found.rejects)


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


__all__ = [
    "MAX_KEYS",
    "MAX_SHAPES",
    "Fields",
    "JsonParser",
    "decode_fields",
    "extract_fields",
]
