"""SQL over one output folder: the lake as ``events``, the store's tables.

:func:`open_query` gives an in-memory DuckDB connection where

* ``events`` is a view over ``OUT/events/**/*.parquet`` with the
  ``date`` and ``hour`` partition columns (an empty view with every event
  column when the lake holds no file yet), and
* every table of ``OUT/logweir.duckdb`` (``windows``, ``alerts``, ``runs``,
  ...) is a view of the same name; the store is attached read-only, so a
  query can never change it.

The views are those of :func:`logweir.sinks.create_views`.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from logweir.errors import ConfigError, LogweirError
from logweir.schema import EVENT_SCHEMA
from logweir.sinks import create_views


def _empty_events(db: duckdb.DuckDBPyConnection) -> None:
    """An ``events`` view with the lake's columns and no row, for a new lake."""
    tables = db.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_name = 'events'"
    ).fetchall()
    if tables:
        return
    empty = pl.DataFrame(schema=EVENT_SCHEMA).drop("extra")
    db.register("_no_events", empty.to_arrow())
    db.execute("CREATE VIEW events AS SELECT * FROM _no_events")


def open_query(out: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with ``events`` and the store's tables as views.

    Raises :class:`ConfigError` when ``out`` is not a logweir output folder.
    """
    if not out.is_dir():
        raise ConfigError(f"{str(out)!r} is not an output folder (give --out)")
    db = duckdb.connect()
    try:
        create_views(out, db)
        _empty_events(db)
    except duckdb.Error as error:
        db.close()
        raise LogweirError(
            f"cannot open {str(out)!r} for queries: {duckdb_message(error)}"
        ) from None
    return db


def duckdb_message(error: BaseException) -> str:
    """DuckDB's message without its multi-line pointer into the SQL."""
    kept = []
    for line in str(error).splitlines():
        if line.startswith("LINE "):
            break
        if line.strip():
            kept.append(line.strip())
    return " ".join(kept) if kept else type(error).__name__


def run_query(out: Path, sql: str) -> pl.DataFrame:
    """Run ``sql`` over ``out``; the result as a Polars frame.

    Raises :class:`ConfigError` with DuckDB's message, in one line, when the
    SQL is wrong.
    """
    with open_query(out) as db:
        try:
            return frame_of(db.sql(sql))
        except duckdb.Error as error:
            raise ConfigError(f"query failed: {duckdb_message(error)}") from None


def frame_of(relation: duckdb.DuckDBPyRelation | None) -> pl.DataFrame:
    """A query's rows as a Polars frame (empty for a statement without rows).

    Through Polars rather than DuckDB's own Python objects: converting
    ``TIMESTAMPTZ`` values that way needs pytz, which logweir does not use.
    """
    if relation is None:
        return pl.DataFrame()
    frame = relation.pl()
    assert isinstance(frame, pl.DataFrame)
    return frame
