"""The aggregate store: window rows and other tables in one DuckDB file.

``OUT/logweir.duckdb`` holds

* ``windows``: rows of :data:`~logweir.schema.WINDOW_SCHEMA`, primary key
  :data:`WINDOW_KEY`, so a window emitted again (a replay, or a correction
  after late events) replaces its row instead of adding one;
* any table written with :meth:`AggregateStore.upsert_table` (the pipeline
  keeps ``runs`` and ``alerts`` this way), created on first use from the
  frame's columns with the given primary key.

Rows go in as one Arrow table per call (``INSERT OR REPLACE ... BY NAME``),
never row by row. :func:`create_views` opens a connection that sees the
lake as ``events`` next to these tables, for ``logweir query``.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from logweir.errors import SinkError
from logweir.schema import WINDOW_SCHEMA

logger = logging.getLogger(__name__)

STORE_NAME = "logweir.duckdb"
WINDOW_KEY: tuple[str, ...] = (
    "window_size_s",
    "window_step_s",
    "window_start",
    "dimension",
    "key",
)
#: The columns naming a window (its key without the row's dimension and key).
_WINDOW_ID = list(WINDOW_KEY[:3])
#: Windows replaced at once that are deleted by their key values; more are
#: deleted through a join with the incoming rows.
_DELETE_BY_VALUE = 32
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _quote(identifier: str) -> str:
    if not _IDENTIFIER.match(identifier):
        raise SinkError(f"bad table or column name {identifier!r} for the store")
    return f'"{identifier}"'


class AggregateStore:
    """One DuckDB file; open it, upsert frames, read windows back.

    Only one process may have the file open for writing (DuckDB's rule);
    the pipeline writes from its main process only.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = duckdb.connect(str(self.path))
            self._db.execute("SET TimeZone = 'UTC'")
        except (OSError, duckdb.Error) as error:
            raise SinkError(
                f"cannot open store {self.path}: {_first_line(error)}"
            ) from error
        self._ensure_table("windows", pl.DataFrame(schema=WINDOW_SCHEMA), WINDOW_KEY)

    # -- writing -----------------------------------------------------------

    def write(self, rows: pl.DataFrame) -> None:
        """Same as :meth:`upsert_windows` (the common sink verb)."""
        self.upsert_windows(rows)

    def upsert_windows(self, rows: pl.DataFrame) -> None:
        """Insert window rows, replacing rows with the same window and key."""
        self.upsert_table("windows", rows.select(list(WINDOW_SCHEMA)), WINDOW_KEY)

    def replace_windows(self, rows: pl.DataFrame) -> None:
        """Make ``rows`` the only rows of the windows they hold, in one
        transaction.

        Follow mode publishes a window again and again while it fills; a
        key among a heavy dimension's top rows can drop out of a later
        version, and a plain upsert would leave its old row behind.
        """
        if rows.is_empty():
            return
        frame = rows.select(list(WINDOW_SCHEMA)).unique(
            subset=list(WINDOW_KEY), keep="last", maintain_order=True
        )
        held = frame.select(_WINDOW_ID).unique()
        # One registered table and one call: follow mode calls this several
        # times a second, and each DuckDB call has a fixed cost (one string
        # of four statements: ~4 ms against ~5.3 ms for four calls with
        # parameters, measured). The few windows of a publish are deleted
        # by their keys, which DuckDB finds in its key index (0.5 ms against
        # 3.4 ms for a join with the incoming rows, measured); the keys are
        # written as literals (integers and UTC instants formed here), since
        # DuckDB takes parameters only in the last statement of a string.
        if held.height <= _DELETE_BY_VALUE:
            delete = "DELETE FROM windows WHERE " + " OR ".join(
                f"(window_size_s = {int(size)} AND window_step_s = {int(step)} "
                f"AND window_start = '{_instant(start)}'::TIMESTAMPTZ)"
                for size, step, start in held.iter_rows()
            )
        else:
            delete = (
                "DELETE FROM windows USING (SELECT DISTINCT window_size_s, "
                "window_step_s, window_start FROM _incoming) r "
                "WHERE windows.window_size_s = r.window_size_s "
                "AND windows.window_step_s = r.window_step_s "
                "AND windows.window_start = r.window_start"
            )
        try:
            self._db.register("_incoming", frame.to_arrow())
            try:
                self._db.execute(
                    f"BEGIN TRANSACTION; {delete}; "
                    "INSERT INTO windows BY NAME SELECT * FROM _incoming; COMMIT"
                )
            except BaseException:
                self._rollback()
                raise
            finally:
                self._db.unregister("_incoming")
        except duckdb.Error as error:
            raise SinkError(
                f"cannot write table windows to {self.path}: {_first_line(error)}"
            ) from error
        logger.debug("store: %d rows replace their windows", frame.height)

    def _rollback(self) -> None:
        """End the transaction a failed statement left open, if any."""
        # (none is open when the failure came before BEGIN)
        with contextlib.suppress(duckdb.Error):
            self._db.execute("ROLLBACK")

    def upsert_table(self, name: str, frame: pl.DataFrame, key: Sequence[str]) -> None:
        """Insert ``frame`` into table ``name``, replacing rows with equal ``key``.

        Creates the table from the frame's columns on first use (primary key
        ``key``) and adds columns the frame has and the table lacks. Within
        ``frame``, the last row of a repeated key wins.
        """
        if frame.is_empty():
            self._ensure_table(name, frame, key)
            return
        incoming = frame.unique(subset=list(key), keep="last", maintain_order=True)
        try:
            self._ensure_table(name, incoming, key)
            self._db.register("_incoming", incoming.to_arrow())
            try:
                self._db.execute(
                    f"INSERT OR REPLACE INTO {_quote(name)} BY NAME "
                    "SELECT * FROM _incoming"
                )
            finally:
                self._db.unregister("_incoming")
        except duckdb.Error as error:
            raise SinkError(
                f"cannot write table {name} to {self.path}: {_first_line(error)}"
            ) from error
        logger.debug("store: %d rows into %s", incoming.height, name)

    def _ensure_table(self, name: str, frame: pl.DataFrame, key: Sequence[str]) -> None:
        """Create ``name`` like ``frame`` (primary key ``key``), or add columns."""
        self._db.register("_shape", frame.head(0).to_arrow())
        try:
            columns = self._db.execute("DESCRIBE SELECT * FROM _shape").fetchall()
        finally:
            self._db.unregister("_shape")
        existing = {
            str(row[0])
            for row in self._db.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = ? AND table_schema = 'main'",
                [name],
            ).fetchall()
        }
        typed = [(str(row[0]), str(row[1])) for row in columns]
        if not existing:
            body = ", ".join(f"{_quote(column)} {kind}" for column, kind in typed)
            primary = ", ".join(_quote(column) for column in key)
            self._db.execute(
                f"CREATE TABLE {_quote(name)} ({body}, PRIMARY KEY ({primary}))"
            )
            return
        for column, kind in typed:
            if column not in existing:
                self._db.execute(
                    f"ALTER TABLE {_quote(name)} ADD COLUMN {_quote(column)} {kind}"
                )

    # -- reading -----------------------------------------------------------

    def read_windows(
        self,
        size_s: int,
        start: datetime,
        end: datetime,
        dimension: str = "all",
        step_s: int | None = None,
    ) -> pl.DataFrame:
        """Window rows of one size whose start is in ``[start, end)``, by start.

        ``step_s`` defaults to ``size_s`` (tumbling windows).
        """
        query = (
            "SELECT * FROM windows WHERE window_size_s = ? AND window_step_s = ? "
            "AND window_start >= ? AND window_start < ? AND dimension = ? "
            "ORDER BY window_start, key"
        )
        step = size_s if step_s is None else step_s
        result = self._db.sql(query, params=[size_s, step, start, end, dimension])
        return _cast(pl.from_arrow(result.to_arrow_table()), WINDOW_SCHEMA)

    def table(self, name: str) -> pl.DataFrame:
        """A whole table as a frame (for small tables: runs, alerts)."""
        result = self._db.sql(f"SELECT * FROM {_quote(name)}")
        frame = pl.from_arrow(result.to_arrow_table())
        assert isinstance(frame, pl.DataFrame)
        return frame

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new cursor on the store's connection, for use by another thread.

        DuckDB lets only one process open the file for writing, so a reader
        in the writer's process (the HTTP service under ``--serve``) reads
        through cursors of this connection; each thread needs its own, and
        closes it when done.
        """
        return self._db.cursor()

    def flush(self) -> None:
        """Write DuckDB's write-ahead log into the database file."""
        self._db.execute("CHECKPOINT")

    def close(self) -> None:
        """Checkpoint and close the file."""
        try:
            self.flush()
        finally:
            self._db.close()

    def __enter__(self) -> AggregateStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _instant(moment: datetime) -> str:
    """``moment`` as a DuckDB TIMESTAMPTZ literal (UTC, microseconds)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")


def _glob_literal(path: str) -> str:
    """``path`` with DuckDB's glob characters matched literally.

    An output folder may be named ``out[1]``; in a glob, ``[`` opens a
    character class, and a class holding the one character is its escape.
    """
    return "".join(f"[{char}]" if char in "[*?" else char for char in path)


def create_views(
    out_dir: Path | str, db: duckdb.DuckDBPyConnection | None = None
) -> duckdb.DuckDBPyConnection:
    """A connection where ``events`` is the lake and the store's tables are views.

    ``events`` reads ``OUT/events/**/*.parquet`` with the partition columns
    ``date`` (DATE) and ``hour`` (INTEGER). The store, when present, is
    attached read-only and each of its tables gets a view of its name.
    Without lake files yet, ``events`` is absent.
    """
    root = Path(out_dir)
    connection = db if db is not None else duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    lake = root / "events"
    if any(lake.glob("**/*.parquet")):
        pattern = (_glob_literal(str(lake)) + "/**/*.parquet").replace("'", "''")
        connection.execute(
            "CREATE OR REPLACE VIEW events AS SELECT * FROM read_parquet("
            f"'{pattern}', hive_partitioning = true, "
            "hive_types = {'date': DATE, 'hour': INTEGER})"
        )
    store = root / STORE_NAME
    if store.is_file():
        literal = str(store).replace("'", "''")
        connection.execute(f"ATTACH '{literal}' AS store (READ_ONLY)")
        tables = connection.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_catalog = 'store'"
        ).fetchall()
        for (table,) in tables:
            connection.execute(
                f"CREATE OR REPLACE VIEW {_quote(table)} AS "
                f"SELECT * FROM store.{_quote(table)}"
            )
    return connection


def _cast(
    frame: pl.DataFrame | pl.Series, schema: dict[str, pl.DataType]
) -> pl.DataFrame:
    assert isinstance(frame, pl.DataFrame)
    return frame.select([pl.col(name).cast(dtype) for name, dtype in schema.items()])


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
