"""The DuckDB aggregate store: upserts replace, reads filter, views join."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from logweir.errors import SinkError
from logweir.schema import WINDOW_SCHEMA
from logweir.sinks import AggregateStore, LakeWriter, create_views
from logweir.sinks.store import STORE_NAME

START = datetime(2024, 5, 1, 12, tzinfo=UTC)


def window_rows(count: int, requests: int = 5, size_s: int = 60) -> pl.DataFrame:
    """``count`` consecutive windows, each with an overall and a 5xx row."""
    rows = []
    for index in range(count):
        start = START + timedelta(seconds=index * size_s)
        for dimension, key in (("all", ""), ("status_class", "5xx")):
            rows.append(
                {
                    "window_size_s": size_s,
                    "window_step_s": size_s,
                    "window_start": start,
                    "window_end": start + timedelta(seconds=size_s),
                    "dimension": dimension,
                    "key": key,
                    "requests": requests + index,
                    "bytes": 1000 * index,
                    "status_5xx": 1,
                    "error_rate": 0.5,
                    "duration_p95_ms": 12.5,
                    "unique_clients": 3,
                    "top_paths": '[{"key":"/a","count":2}]',
                }
            )
    frame = pl.DataFrame(rows)
    return frame.select(
        [
            pl.col(name).cast(dtype)
            if name in frame.columns
            else pl.lit(None, dtype).alias(name)
            for name, dtype in WINDOW_SCHEMA.items()
        ]
    ).select(list(WINDOW_SCHEMA))


def test_a_re_emitted_window_replaces_its_row(tmp_path: Path) -> None:
    with AggregateStore(tmp_path / STORE_NAME) as store:
        store.upsert_windows(window_rows(3))
        corrected = window_rows(3, requests=50).head(2)
        store.upsert_windows(corrected)
        stored = store.table("windows").sort("window_start", "dimension")
    assert stored.height == 6
    assert stored["requests"].to_list() == [50, 50, 6, 6, 7, 7]


def test_rows_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / STORE_NAME
    with AggregateStore(path) as store:
        store.write(window_rows(2))
    with AggregateStore(path) as store:
        again = store.read_windows(60, START, START + timedelta(hours=1))
    assert_frame_equal(again, window_rows(2).filter(pl.col("dimension") == "all"))


def test_read_windows_filters_size_dimension_and_range(tmp_path: Path) -> None:
    with AggregateStore(tmp_path / STORE_NAME) as store:
        store.upsert_windows(window_rows(10))
        store.upsert_windows(window_rows(2, size_s=300))
        rows = store.read_windows(
            60,
            START + timedelta(minutes=2),
            START + timedelta(minutes=5),
            "status_class",
        )
    assert rows.schema == pl.Schema(WINDOW_SCHEMA)
    assert rows["window_start"].to_list() == [
        START + timedelta(minutes=minute) for minute in (2, 3, 4)
    ]
    assert rows["key"].unique().to_list() == ["5xx"]


def test_a_hundred_thousand_rows_go_in_at_once(tmp_path: Path) -> None:
    rows = window_rows(50_000)
    with AggregateStore(tmp_path / STORE_NAME) as store:
        store.upsert_windows(rows)
        store.upsert_windows(rows)
        assert store.table("windows").height == 100_000


def test_generic_tables_get_a_key_new_columns_and_last_row_wins(
    tmp_path: Path,
) -> None:
    with AggregateStore(tmp_path / STORE_NAME) as store:
        first = pl.DataFrame({"id": ["a", "b", "a"], "score": [1.0, 2.0, 3.0]})
        store.upsert_table("alerts", first, key=["id"])
        wider = pl.DataFrame({"id": ["b"], "score": [9.0], "note": ["checked"]})
        store.upsert_table("alerts", wider, key=["id"])
        alerts = store.table("alerts").sort("id")
    assert alerts.to_dicts() == [
        {"id": "a", "score": 3.0, "note": None},
        {"id": "b", "score": 9.0, "note": "checked"},
    ]


def test_views_show_the_lake_and_the_store_together(tmp_path: Path) -> None:
    with AggregateStore(tmp_path / STORE_NAME) as store:
        store.upsert_windows(window_rows(4))
    lake = pl.DataFrame(
        {"ts": [START], "client_ip": ["192.0.2.1"], "offset": [0]},
        schema_overrides={"ts": pl.Datetime("us", "UTC"), "offset": pl.UInt64},
    )
    LakeWriter(tmp_path).write(lake, "b-0001")
    db = create_views(tmp_path)
    joined = db.execute(
        "SELECT count(*) FROM events e JOIN windows w "
        "ON e.ts >= w.window_start AND e.ts < w.window_end AND w.dimension = 'all'"
    ).fetchall()
    assert joined == [(1,)]


def test_an_unopenable_store_gives_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(SinkError, match=rf"^cannot open store {tmp_path}/file/"):
        AggregateStore(tmp_path / "file" / STORE_NAME)


def test_bad_table_names_are_refused(tmp_path: Path) -> None:
    with (
        AggregateStore(tmp_path / STORE_NAME) as store,
        pytest.raises(SinkError, match="bad table or column name 'x; drop'"),
    ):
        store.upsert_table("x; drop", pl.DataFrame({"id": [1]}), key=["id"])
