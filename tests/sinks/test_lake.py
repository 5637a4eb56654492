"""The Parquet lake: layout, order, file features, atomic and idempotent writes."""

from __future__ import annotations

import errno
import os
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from logweir.errors import SinkError
from logweir.schema import EXTRA_TYPE, conform_events
from logweir.sinks import LakeWriter, create_views
from logweir.sinks import lake as lake_module

HOUR = 3600


def events(hours: list[int | None], per_hour: int = 4) -> pl.DataFrame:
    """``per_hour`` events in each of ``hours`` (None: without timestamp)."""
    base = int(datetime(2024, 3, 9, 22, tzinfo=UTC).timestamp())
    rows = []
    for block, hour in enumerate(hours):
        for index in range(per_hour):
            offset = block * per_hour + index
            ts = (
                None
                if hour is None
                else datetime.fromtimestamp(
                    base + hour * HOUR + (per_hour - index) * 7, UTC
                )
            )
            rows.append(
                {
                    "ts": ts,
                    "client_ip": f"192.0.2.{(offset * 37) % 11}",
                    "method": "GET",
                    "path": f"/item/{offset % 5}",
                    "status": 200 + offset % 3,
                    "bytes": None if offset % 4 == 0 else offset * 10,
                    "duration_ms": offset / 3,
                    "source": "access.log",
                    "offset": offset * 80,
                    "extra": [{"key": "k", "value": str(offset)}] if offset % 2 else [],
                }
            )
    return conform_events(
        pl.DataFrame(rows, schema_overrides={"extra": EXTRA_TYPE, "status": pl.UInt16})
    )


def read_lake(root: Path) -> pl.DataFrame:
    files = sorted((root / "events").glob("**/*.parquet"))
    return pl.concat([pl.read_parquet(file) for file in files]).sort("offset")


def test_files_are_partitioned_by_utc_date_and_hour(tmp_path: Path) -> None:
    paths = LakeWriter(tmp_path).write(events([0, 1, 2, None]), "b-0001")
    assert [str(path.relative_to(tmp_path)) for path in paths] == [
        "events/date=2024-03-09/hour=22/b-0001.parquet",
        "events/date=2024-03-09/hour=23/b-0001.parquet",
        "events/date=2024-03-10/hour=00/b-0001.parquet",
        "events/date=__HIVE_DEFAULT_PARTITION__/hour=__HIVE_DEFAULT_PARTITION__"
        "/b-0001.parquet",
    ]
    hours = [pl.read_parquet(path)["ts"].dt.hour().unique().to_list() for path in paths]
    assert hours == [[22], [23], [0], [None]]


def test_every_column_round_trips_including_extra(tmp_path: Path) -> None:
    written = events([0, 1, None], per_hour=6)
    LakeWriter(tmp_path).write(written, "b-0001")
    assert_frame_equal(read_lake(tmp_path), written.sort("offset"))


def test_files_longer_than_a_row_group_keep_each_client_together(
    tmp_path: Path,
) -> None:
    written = events([0], per_hour=300)
    [path] = LakeWriter(tmp_path, row_group_rows=64).write(written, "b-0001")
    back = pl.read_parquet(path).with_row_index("position")
    assert pq.ParquetFile(path).metadata.num_row_groups == 5
    for client, rows in back.group_by("client_ip"):
        positions = rows["position"].to_list()
        assert positions == list(range(positions[0], positions[0] + len(positions)))
        original = written.filter(pl.col("client_ip") == client[0])["offset"]
        assert rows["offset"].to_list() == original.to_list()
        groups = {position // 64 for position in positions}
        assert len(groups) <= 2
        probe = duckdb.execute(
            "SELECT count(*) FROM parquet_bloom_probe(?, 'client_ip', ?) "
            "WHERE NOT bloom_filter_excludes",
            [str(path), client[0]],
        ).fetchall()
        assert probe[0][0] < 5


def test_a_batch_over_hours_clusters_only_its_long_files(tmp_path: Path) -> None:
    # Hour 1 is longer than a row group, hour 0 and the untimed rows are not:
    # one sort splits the batch by hour and clusters hour 1 only.
    written = pl.concat(
        [events([0], per_hour=30), events([1, None], per_hour=200).slice(0, 230)]
    ).with_columns(offset=pl.int_range(pl.len(), dtype=pl.UInt64) * 80)
    paths = LakeWriter(tmp_path, row_group_rows=64).write(written, "b-0001")
    assert len(paths) == 3
    short, long, untimed = (pl.read_parquet(path) for path in paths)
    hour = written["ts"].dt.hour()
    assert short["offset"].to_list() == written.filter(hour == 22)["offset"].to_list()
    assert (
        untimed["offset"].to_list()
        == written.filter(hour.is_null())["offset"].to_list()
    )
    assert (
        sorted(long["offset"].to_list())
        == written.filter(hour == 23)["offset"].to_list()
    )
    assert long["offset"].to_list() != sorted(long["offset"].to_list())
    keys = long["client_ip"].hash(lake_module._CLUSTER_SEED) // (1 << 16)
    assert keys.to_list() == sorted(keys.to_list())
    for _, rows in long.group_by("client_ip"):
        assert rows["offset"].to_list() == sorted(rows["offset"].to_list())


def test_short_files_keep_their_input_order(tmp_path: Path) -> None:
    written = events([0], per_hour=20)
    [path] = LakeWriter(tmp_path).write(written, "b-0001")
    assert pl.read_parquet(path)["offset"].to_list() == written["offset"].to_list()


def test_files_carry_zstd_statistics_and_bloom_filters(tmp_path: Path) -> None:
    [path] = LakeWriter(tmp_path).write(events([0], per_hour=50), "b-0001")
    metadata = pq.ParquetFile(path).metadata
    columns = {
        metadata.row_group(0).column(i).path_in_schema: metadata.row_group(0).column(i)
        for i in range(metadata.num_columns)
    }
    assert {column.compression for column in columns.values()} == {"ZSTD"}
    assert columns["client_ip"].statistics.has_min_max
    assert columns["ts"].statistics.has_min_max
    for name in ("client_ip", "path"):
        assert columns[name].bloom_filter_offset is not None, name
        assert columns[name].bloom_filter_length > 0, name
    assert columns["method"].bloom_filter_offset is None
    probe = "SELECT bloom_filter_excludes FROM parquet_bloom_probe(?, ?, ?)"
    assert duckdb.execute(
        probe, [str(path), "client_ip", "203.0.113.9"]
    ).fetchall() == [(True,)]
    assert duckdb.execute(probe, [str(path), "client_ip", "192.0.2.3"]).fetchall() == [
        (False,)
    ]
    assert duckdb.execute(probe, [str(path), "path", "/item/4"]).fetchall() == [
        (False,)
    ]


def test_replay_with_the_same_name_replaces_the_file(tmp_path: Path) -> None:
    writer = LakeWriter(tmp_path)
    writer.write(events([0, 1]), "b-0001")
    again = events([0, 1]).with_columns(pl.col("bytes").fill_null(0) + 1)
    writer.write(again, "b-0001")
    assert_frame_equal(read_lake(tmp_path), again.sort("offset"))
    assert len(list(tmp_path.glob("events/**/*.parquet"))) == 2
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]


def test_duckdb_sees_the_lake_with_typed_partitions(tmp_path: Path) -> None:
    LakeWriter(tmp_path).write(events([1, 2, None]), "b-0001")
    rows = (
        create_views(tmp_path)
        .execute("SELECT date, hour, count(*) FROM events GROUP BY ALL ORDER BY ALL")
        .fetchall()
    )
    assert rows == [
        (date(2024, 3, 9), 23, 4),
        (date(2024, 3, 10), 0, 4),
        (None, None, 4),
    ]


def test_a_file_where_the_lake_should_be_gives_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "events").write_text("not a folder")
    with pytest.raises(SinkError) as caught:
        LakeWriter(tmp_path).write(events([0]), "b-0001")
    message = str(caught.value)
    assert message.startswith(
        f"cannot write {tmp_path}/events/date=2024-03-09/hour=22/"
    )
    assert message.endswith(": not a directory") or "exists" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_folder_gives_a_clear_error_and_no_file(tmp_path: Path) -> None:
    target = tmp_path / "events" / "date=2024-03-09" / "hour=22"
    target.mkdir(parents=True)
    target.chmod(0o555)
    try:
        with pytest.raises(SinkError, match=r": permission denied$"):
            LakeWriter(tmp_path).write(events([0]), "b-0001")
        assert list(target.iterdir()) == []
    finally:
        target.chmod(0o755)


def test_disk_full_midway_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = LakeWriter(tmp_path)
    [kept] = writer.write(events([0]), "b-0001")
    before = kept.read_bytes()

    def fill_disk(table: object, target: Path, *args: object, **kwargs: object) -> None:
        Path(target).write_bytes(b"PAR1 half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(lake_module, "_write_table", fill_disk)
    with pytest.raises(SinkError) as caught:
        writer.write(events([0, 1]), "b-0001")
    assert str(caught.value) == f"cannot write {kept}: no space left on device"
    assert kept.read_bytes() == before
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "b-0001.parquet"
    ]


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "../up", "x y"])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(SinkError, match="bad output file name"):
        LakeWriter(tmp_path).write(events([0]), name)


def test_an_empty_batch_writes_nothing(tmp_path: Path) -> None:
    assert LakeWriter(tmp_path).write(events([]), "b-0001") == []
    assert not (tmp_path / "events").exists()
