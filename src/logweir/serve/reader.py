"""Read-only access to one output folder, from many threads at once.

A :class:`StoreReader` hands out DuckDB cursors where ``windows``,
``alerts`` and ``runs`` are the aggregate store's tables and, on request,
``events`` is the lake. It comes in two kinds:

* :meth:`StoreReader.open` (``logweir serve``): an in-memory DuckDB with
  the store attached read-only (:func:`logweir.pipeline.query.open_query`).
  DuckDB allows one process to open a file for writing and no other
  process to read it meanwhile, so this kind cannot read the store of a
  pipeline that is running in another process.
* :meth:`StoreReader.attach` (``logweir run --follow --serve``): cursors of
  the running pipeline's own store connection, so the server sees each
  upsert as soon as it commits. Queries from here never write: the SQL
  endpoint runs inside a read-only transaction (:mod:`.sql`).

Each request takes its own cursor (:meth:`StoreReader.cursor`); a DuckDB
connection must not be used by two threads at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from logweir.errors import ConfigError, LogweirError
from logweir.pipeline.query import open_query
from logweir.sinks import STORE_NAME, AggregateStore

CursorFactory = Callable[[], duckdb.DuckDBPyConnection]


class ReaderClosed(LogweirError):
    """The reader was closed (the pipeline is stopping); no more queries."""


class StoreReader:
    """Cursors over one output folder's store (and lake), safe across threads."""

    def __init__(self, out: Path, new_cursor: CursorFactory, *, live: bool) -> None:
        self.out = out
        self.live = live
        self._new_cursor = new_cursor
        self._lock = threading.Condition()
        self._active: set[duckdb.DuckDBPyConnection] = set()
        self._closed = False
        self._closers: list[Callable[[], None]] = []

    @classmethod
    def open(cls, out: Path) -> StoreReader:
        """Read ``OUT``'s store and lake without writing anything.

        Raises :class:`ConfigError` when ``out`` holds no store yet, or
        when another process has the store open for writing.
        """
        if not (out / STORE_NAME).is_file():
            raise ConfigError(
                f"{str(out)!r} holds no {STORE_NAME} (run logweir run first, "
                "or give --out)"
            )
        db = open_query(out)
        try:
            _share_empty_events(db, out)
        except duckdb.Error:
            db.close()
            raise
        reader = cls(out, db.cursor, live=False)
        reader._closers.append(db.close)
        return reader

    @classmethod
    def attach(cls, store: AggregateStore, out: Path) -> StoreReader:
        """Read through cursors of a running pipeline's open ``store``."""
        return cls(out, store.cursor, live=True)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def busy(self) -> int:
        """How many cursors are in use now."""
        with self._lock:
            return len(self._active)

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A fresh cursor in UTC, closed when the block ends."""
        with self._lock:  # making a cursor touches the parent connection
            if self._closed:
                raise ReaderClosed("the store is closing")
            cursor = self._new_cursor()
            self._active.add(cursor)
        try:
            cursor.execute("SET TimeZone = 'UTC'")
            yield cursor
        except duckdb.Error as error:
            if self._closed:  # interrupted by close()
                raise ReaderClosed("the store is closing") from error
            raise
        finally:
            with self._lock:
                self._active.discard(cursor)
                cursor.close()
                self._lock.notify_all()

    def tables(self, cursor: duckdb.DuckDBPyConnection) -> set[str]:
        """Names of the tables and views ``cursor`` can read (lower case)."""
        rows = cursor.execute(
            "SELECT lower(table_name) FROM information_schema.tables "
            "WHERE table_schema IN ('main', 'temp') AND table_name NOT LIKE '\\_%' "
            "ESCAPE '\\'"
        ).fetchall()
        return {str(row[0]) for row in rows}

    def add_events_view(self, cursor: duckdb.DuckDBPyConnection) -> None:
        """Make ``events`` (the lake) readable on a live reader's ``cursor``.

        A temporary view, so that nothing is written to the store: it lives
        as long as the cursor. A reader from :meth:`open` has it already.
        """
        if not self.live or "events" in self.tables(cursor):
            return
        lake = self.out / "events"
        if not any(lake.glob("**/*.parquet")):
            return
        # The glob rule of logweir.sinks.store.create_views: "[", "*" and
        # "?" in the folder's own name are matched literally.
        literal = "".join(f"[{c}]" if c in "[*?" else c for c in str(lake))
        pattern = (literal + "/**/*.parquet").replace("'", "''")
        cursor.execute(
            "CREATE OR REPLACE TEMP VIEW events AS SELECT * FROM read_parquet("
            f"'{pattern}', hive_partitioning = true, "
            "hive_types = {'date': DATE, 'hour': INTEGER})"
        )

    def close(self, timeout_s: float = 10.0) -> None:
        """Refuse new cursors, stop running queries, wait for them to end.

        Then close what :meth:`open` opened (an attached reader owns no
        connection). The pipeline calls this before it closes its store:
        DuckDB refuses to close a connection whose cursor is busy.
        """
        deadline = time.monotonic() + timeout_s
        with self._lock:
            self._closed = True
            # An interrupt reaches only the statement running at that
            # moment, so keep sending it until each cursor is given back.
            while self._active and time.monotonic() < deadline:
                for cursor in self._active:
                    cursor.interrupt()
                self._lock.wait(0.05)
        for close in self._closers:
            close()
        self._closers.clear()


def _share_empty_events(db: duckdb.DuckDBPyConnection, out: Path) -> None:
    """Make the ``events`` of a lake without files readable from cursors.

    :func:`open_query` gives such a lake an ``events`` view over a frame
    registered on its connection, which its cursors do not see; a table
    with the same columns and no row is seen by all of them. Names that
    start with ``_`` are not offered to the SQL endpoint.
    """
    if any((out / "events").glob("**/*.parquet")):
        return
    db.execute("CREATE OR REPLACE TABLE _events_empty AS FROM events LIMIT 0")
    db.execute("CREATE OR REPLACE VIEW events AS FROM _events_empty")
