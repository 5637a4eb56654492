"""Serving a store that this process is writing (``run --follow --serve``)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import polars as pl
import pytest

from logweir.schema import WINDOW_SCHEMA
from logweir.serve import Address, BackgroundServer, ServeSettings, create_app
from logweir.serve.reader import ReaderClosed, StoreReader
from logweir.serve.sql import QueryRefused, run_readonly
from logweir.sinks import STORE_NAME, AggregateStore

START = datetime(2024, 6, 3, 8, 0, tzinfo=UTC)


def _window(minute: int, requests: int) -> dict[str, object]:
    row: dict[str, object] = {name: None for name in WINDOW_SCHEMA}
    row.update(
        window_size_s=60,
        window_step_s=60,
        window_start=START + timedelta(minutes=minute),
        window_end=START + timedelta(minutes=minute + 1),
        dimension="all",
        key="",
        requests=requests,
        bytes=requests * 100,
        status_1xx=0,
        status_2xx=requests,
        status_3xx=0,
        status_4xx=0,
        status_5xx=0,
        error_rate=0.0,
        unique_clients=1,
        top_paths=f'[{{"key": "/", "count": {requests}}}]',
    )
    return row


def _rows(*pairs: tuple[int, int]) -> pl.DataFrame:
    return pl.DataFrame([_window(m, n) for m, n in pairs], schema=WINDOW_SCHEMA)


def test_the_server_sees_each_upsert_of_the_writer(tmp_path: Path) -> None:
    store = AggregateStore(tmp_path / STORE_NAME)
    reader = StoreReader.attach(store, tmp_path)
    server = BackgroundServer(create_app(reader), Address("127.0.0.1", 0)).start()
    try:
        with httpx.Client(base_url=server.url(), timeout=10) as client:
            assert client.get("/api/windows").json()["rows"] == []
            assert client.get("/api/health").json()["live"] is True
            store.upsert_windows(_rows((0, 5)))
            rows = client.get("/api/windows", params={"size_s": 60}).json()["rows"]
            assert [row["requests"] for row in rows] == [5]
            store.upsert_windows(_rows((0, 7), (1, 3)))  # the open window grew
            rows = client.get("/api/windows", params={"size_s": 60}).json()["rows"]
            assert [row["requests"] for row in rows] == [7, 3]
            top = client.get("/api/top").json()["entries"]
            assert top == [{"key": "/", "count": 10}]
    finally:
        server.stop()
        reader.close()
        store.close()


def test_closing_the_reader_stops_queries_so_the_store_can_close(
    tmp_path: Path,
) -> None:
    store = AggregateStore(tmp_path / STORE_NAME)
    store.upsert_windows(_rows(*[(m, m + 1) for m in range(200)]))
    reader = StoreReader.attach(store, tmp_path)
    outcome: list[BaseException] = []

    def slow_query() -> None:
        try:
            run_readonly(
                reader,
                "SELECT sum(a.requests * b.requests + c.requests + d.requests) "
                "FROM windows a, windows b, windows c, windows d",
                timeout_s=600,
                max_rows=10,
            )
        except (QueryRefused, ReaderClosed) as error:
            # ReaderClosed: the stop came while the cursor was being set up
            outcome.append(error)

    worker = threading.Thread(target=slow_query)
    worker.start()
    while not reader.busy and worker.is_alive():
        time.sleep(0.01)
    reader.close(timeout_s=30)
    worker.join(timeout=30)
    assert not worker.is_alive()
    store.close()  # DuckDB refuses this while a cursor is busy
    assert [str(e) for e in outcome] in (
        ["query stopped: the server is closing"],
        ["the store is closing"],
    )
    with pytest.raises(ReaderClosed), reader.cursor():
        pass


def test_sql_on_a_live_store_cannot_write(tmp_path: Path) -> None:
    store = AggregateStore(tmp_path / STORE_NAME)
    store.upsert_windows(_rows((0, 1)))
    reader = StoreReader.attach(store, tmp_path)
    settings = ServeSettings(sql_enabled=True)
    server = BackgroundServer(
        create_app(reader, settings=settings), Address("127.0.0.1", 0)
    ).start()
    try:
        with httpx.Client(base_url=server.url(), timeout=10) as client:
            answer = client.post("/api/sql", json={"sql": "DELETE FROM windows"})
            assert answer.status_code == 400
            answer = client.post(
                "/api/sql", json={"sql": "SELECT sum(requests) FROM windows"}
            )
            assert answer.json()["rows"] == [[1]]
    finally:
        server.stop()
        reader.close()
    assert store.table("windows").height == 1
    store.close()
