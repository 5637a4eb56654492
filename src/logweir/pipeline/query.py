"""SQL over one output folder: the lake as ``events``, the store's tables.

:func:`open_query` gives an in-memory DuckDB connection where

* ``events`` is a view over ``OUT/events/**/*.parquet`` with the
  ``date`` and ``hour`` partition columns (an empty view with every event
  column when the lake holds no file yet), and
* every table of ``OUT/logweir.duckdb`` (``windows``, ``alerts``, ``runs``,
  ...) is a view of the same name; the store is attached read-only, so a
  query can never change it.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from logweir.errors import ConfigError, LogweirError
from logweir.schema import EVENT_SCHEMA

STORE_NAME = "logweir.duckdb"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _events_view(db: duckdb.DuckDBPyConnection, out: Path) -> None:
    lake = out / "events"
    if any(lake.glob("**/*.parquet")):
        pattern = _literal(str(lake / "**" / "*.parquet"))
        db.execute(
            "CREATE VIEW events AS SELECT * FROM read_parquet("
            f"{pattern}, hive_partitioning = true, union_by_name = true)"
        )
        return
    # No file yet: an empty view with the lake's columns, so queries still run.
    empty = pl.DataFrame(schema=EVENT_SCHEMA).drop("extra")
    db.register("_no_events", empty.to_arrow())
    db.execute("CREATE VIEW events AS SELECT * FROM _no_events")


def _store_views(db: duckdb.DuckDBPyConnection, out: Path) -> list[str]:
    store = out / STORE_NAME
    if not store.is_file():
        return []
    db.execute(f"ATTACH {_literal(str(store))} AS store (READ_ONLY)")
    names = [
        str(row[0])
        for row in db.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_catalog = 'store' ORDER BY table_name"
        ).fetchall()
    ]
    for name in names:
        if name == "events":
            continue
        db.execute(f"CREATE VIEW {_quote(name)} AS SELECT * FROM store.{_quote(name)}")
    return names


def open_query(out: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with ``events`` and the store's tables as views.

    Raises :class:`ConfigError` when ``out`` is not a logweir output folder.
    """
    if not out.is_dir():
        raise ConfigError(f"{str(out)!r} is not an output folder (give --out)")
    db = duckdb.connect()
    try:
        db.execute("SET TimeZone = 'UTC'")
        _events_view(db, out)
        _store_views(db, out)
    except duckdb.Error as error:
        db.close()
        raise LogweirError(
            f"cannot open {str(out)!r} for queries: {_first_line(error)}"
        ) from None
    return db


def _first_line(error: BaseException) -> str:
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
            raise ConfigError(f"query failed: {_first_line(error)}") from None


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
