"""The SQL endpoint's query runner: one SELECT, read-only, time and row limits.

A query passes three gates before and while it runs:

1. DuckDB's own parser must find exactly one statement, and a ``SELECT``
   (``duckdb.extract_statements``), so ``COPY``, ``ATTACH``, ``SET``,
   ``INSTALL`` and DML are refused by what they are, not by spelling;
2. its syntax tree (``json_serialize_sql``) may name only the tables and
   views of the output folder (``events``, ``windows``, ``alerts``,
   ``runs``) and its own CTEs, and no table function: a ``SELECT`` over
   ``read_csv('/etc/passwd')`` or ``'/etc/passwd'`` would otherwise read any
   file the server can;
3. it runs inside ``BEGIN TRANSACTION READ ONLY``, so even a statement
   that slipped through could not change the store, and a timer calls
   ``interrupt()`` on its cursor when the time limit passes.

Rows are fetched in Arrow batches until the row limit, or
:data:`MAX_RESULT_BYTES`, is reached; the rest of the result is never read.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from logweir.errors import LogweirError
from logweir.pipeline.query import duckdb_message
from logweir.serve.reader import StoreReader

#: Longest SQL text the endpoint accepts.
MAX_SQL_CHARS = 20_000

#: Most bytes of result (in Arrow) a query returns, whatever its row count:
#: a few wide rows must not fill the server's memory as JSON.
MAX_RESULT_BYTES = 16 << 20

#: Rows fetched at a time (DuckDB computes 2048 at a time anyway).
_FETCH_ROWS = 2048


class QueryRefused(LogweirError):
    """A query the endpoint will not run, or one that failed or ran too long."""


@dataclass(frozen=True)
class QueryResult:
    """Rows of a query, at most the row limit; ``truncated`` if there were more."""

    columns: list[tuple[str, str]]
    rows: list[list[Any]]
    truncated: bool
    elapsed_ms: float


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in a ``json_serialize_sql`` tree."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _tables(node: Any, ctes: frozenset[str]) -> Iterator[tuple[dict[str, Any], bool]]:
    """Every table reference in ``node``, and whether a CTE in scope names it.

    A CTE is seen only where DuckDB's binder sees it: in the body of the
    query that defines it, in the CTEs defined after it, and inside itself
    only when recursive. Outside that scope the same name is a table, or a
    file DuckDB would read (``'/etc/secret.csv'``), so a CTE defined in one
    subquery must not clear the name in another.
    """
    if isinstance(node, list):
        for value in node:
            yield from _tables(value, ctes)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "BASE_TABLE":
        name = str(node.get("table_name", "")).lower()
        yield node, name in ctes and not node.get("schema_name")
    if node.get("type") == "RECURSIVE_CTE_NODE":
        ctes = ctes | {str(node.get("cte_name", "")).lower()}
    cte_map = node.get("cte_map")
    if isinstance(cte_map, dict):
        for entry in cte_map.get("map") or []:
            yield from _tables(entry.get("value"), ctes)
            if isinstance(entry, dict) and isinstance(entry.get("key"), str):
                ctes = ctes | {entry["key"].lower()}
    for key, value in node.items():
        if key != "cte_map":
            yield from _tables(value, ctes)


def check_query(cursor: duckdb.DuckDBPyConnection, sql: str, allowed: set[str]) -> None:
    """Raise :class:`QueryRefused` unless ``sql`` is one SELECT over ``allowed``."""
    if len(sql) > MAX_SQL_CHARS:
        raise QueryRefused(f"query is longer than {MAX_SQL_CHARS} characters")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        raise QueryRefused(f"query failed: {duckdb_message(error)}") from None
    if len(statements) != 1:
        raise QueryRefused(f"give exactly one statement, not {len(statements)}")
    if statements[0].type != duckdb.StatementType.SELECT:
        what = statements[0].type.name
        raise QueryRefused(f"only SELECT queries may run here, not {what}")
    row = cursor.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    tree = json.loads(str(row[0])) if row else {}
    if tree.get("error"):
        raise QueryRefused(f"query failed: {tree.get('error_message', 'bad SQL')}")
    for node in _walk(tree):
        if node.get("type") == "TABLE_FUNCTION":
            name = (node.get("function") or {}).get("function_name", "?")
            raise QueryRefused(f"table functions such as {name}() are not allowed")
    for node, is_cte in _tables(tree, frozenset()):
        table = str(node.get("table_name", ""))
        if is_cte:
            continue
        if node.get("catalog_name") or node.get("schema_name"):
            raise QueryRefused(f"name tables without a schema: {table!r}")
        if table.lower() not in allowed:
            tables = ", ".join(sorted(allowed)) or "none"
            raise QueryRefused(f"unknown table {table!r} (tables: {tables})")


def run_readonly(
    reader: StoreReader, sql: str, *, timeout_s: float, max_rows: int
) -> QueryResult:
    """Run ``sql`` read-only; at most ``max_rows`` rows, ``timeout_s`` seconds.

    Raises :class:`QueryRefused` with a one-line reason.
    """
    started = time.perf_counter()
    with reader.cursor() as cursor:
        timer = threading.Timer(timeout_s, cursor.interrupt)
        try:
            # inside the try: closing the reader may interrupt any of these
            reader.add_events_view(cursor)
            check_query(cursor, sql, reader.tables(cursor))
            cursor.execute("BEGIN TRANSACTION READ ONLY")
            timer.start()
            columns, rows, truncated = _fetch(cursor, sql, max_rows)
        except (duckdb.InterruptException, _StreamInterrupted):
            if reader.closed:
                raise QueryRefused("query stopped: the server is closing") from None
            raise QueryRefused(
                f"query ran longer than {timeout_s:g} s and was stopped"
            ) from None
        except duckdb.Error as error:
            raise QueryRefused(f"query failed: {duckdb_message(error)}") from None
        finally:
            timer.cancel()
            _rollback(cursor)
    return QueryResult(
        columns=columns,
        rows=rows,
        truncated=truncated,
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )


def _fetch(
    cursor: duckdb.DuckDBPyConnection, sql: str, max_rows: int
) -> tuple[list[tuple[str, str]], list[list[Any]], bool]:
    relation = cursor.sql(sql)
    if relation is None:  # cannot happen for a SELECT; kept for the types
        return [], [], False
    columns = list(zip(relation.columns, map(str, relation.types), strict=True))
    rows: list[list[Any]] = []
    size = 0
    for batch in _batches(relation.to_arrow_reader(min(max_rows + 1, _FETCH_ROWS))):
        if size + batch.nbytes > MAX_RESULT_BYTES:
            batch = _within(batch, MAX_RESULT_BYTES - size)
            rows.extend(_rows(batch))
            return columns, rows[:max_rows], True
        size += batch.nbytes
        rows.extend(_rows(batch))
        if len(rows) > max_rows:
            return columns, rows[:max_rows], True
    return columns, rows, False


class _StreamInterrupted(Exception):
    """DuckDB's interrupt, as it reaches a reader of its Arrow stream."""


def _batches(reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    """``reader``'s batches; its errors as DuckDB's own.

    Through the Arrow stream, an interrupt or a failure arrives as Arrow's
    ``OSError`` carrying DuckDB's message, not as a ``duckdb.Error``.
    """
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (OSError, pa.ArrowException) as error:
            if "INTERRUPT" in str(error):
                raise _StreamInterrupted from error
            raise duckdb.Error(str(error)) from error
        yield batch


def _rows(batch: pa.RecordBatch) -> list[list[Any]]:
    values = [_python_values(column) for column in batch.columns]
    return [list(row) for row in zip(*values, strict=True)]


def _within(batch: pa.RecordBatch, budget: int) -> pa.RecordBatch:
    """The first rows of ``batch`` that fit in ``budget`` bytes (maybe none)."""
    low, high = 0, batch.num_rows
    while low < high:  # the longest prefix within budget
        middle = (low + high + 1) // 2
        if batch.slice(0, middle).nbytes <= budget:
            low = middle
        else:
            high = middle - 1
    return batch.slice(0, low)


def _python_values(column: pa.Array) -> list[Any]:
    """A column's values as Python objects, as text where Python has none.

    Arrow gives Python values for nearly every type; a few values have no
    Python equal (``infinity`` timestamps, dates past year 9999), and then
    the column is given as text.
    """
    try:
        return list(column.to_pylist())
    except (OverflowError, ValueError, NotImplementedError, pa.ArrowException):
        pass
    try:
        return list(column.cast(pa.string()).to_pylist())
    except (ValueError, NotImplementedError, pa.ArrowException):
        return [str(value) for value in column]


def _rollback(cursor: duckdb.DuckDBPyConnection) -> None:
    # an interrupted transaction may have ended already
    with contextlib.suppress(duckdb.Error):
        cursor.execute("ROLLBACK")
