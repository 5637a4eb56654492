"""``logweir detect --csv`` and ``--out`` through the command-line runner."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from logweir.cli import main
from logweir.schema import WINDOW_SCHEMA

T0 = datetime(2024, 5, 1, 14, 0, tzinfo=UTC)


def write_csv(path: Path, values: list[float]) -> Path:
    lines = ["timestamp,value"]
    for i, value in enumerate(values):
        lines.append(f"{(T0 + timedelta(minutes=5 * i)):%Y-%m-%d %H:%M:%S},{value}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_prints_the_anomalous_points(tmp_path: Path, capsys) -> None:
    series = write_csv(tmp_path / "s.csv", [10, 12, 14, 12, 30, 12])
    status = main(
        [
            "detect",
            "--csv",
            str(series),
            "--detector",
            "zscore",
            "--set",
            "window=4",
            "--set",
            "min_history=3",
        ]
    )
    assert status == 0
    out, err = capsys.readouterr()
    assert out == "2024-05-01T14:20:00+00:00  value 30  baseline 12  score 12.7\n"
    assert err == f"1 anomalous of 3 scored points (6 in {series}, detector zscore)\n"


def test_csv_json_gives_every_scored_point(tmp_path: Path, capsys) -> None:
    series = write_csv(tmp_path / "s.csv", [10, 12, 14, 12, 30])
    main(
        [
            "detect",
            "--csv",
            str(series),
            "--detector",
            "zscore",
            "--json",
            "--set",
            "window=4",
            "--set",
            "min_history=3",
        ]
    )
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["timestamp"] for r in records] == [
        "2024-05-01T14:15:00+00:00",
        "2024-05-01T14:20:00+00:00",
    ]
    assert records[0] == {
        "timestamp": "2024-05-01T14:15:00+00:00",
        "value": 12.0,
        "baseline": 12.0,
        "spread": pytest.approx(1.63299, abs=1e-5),
        "score": 0.0,
        "anomalous": False,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "timestamp,value\n2024-05-01 14:00:00,1\n2024-05-01 14:05:00,x\n",
            "{path}:3: cannot read value 'x'",
        ),
        (
            "timestamp,value\nyesterday,1\n",
            "{path}:2: cannot read timestamp 'yesterday'",
        ),
        ("time,v\n1,2\n", "{path}: expected a header timestamp,value; got time,v"),
    ],
)
def test_bad_csv_is_one_line_naming_where(
    tmp_path: Path, capsys, text: str, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    assert main(["detect", "--csv", str(path)]) == 2
    assert capsys.readouterr().err == f"logweir: {message.format(path=path)}\n"


def test_csv_bad_setting_names_it(tmp_path: Path, capsys) -> None:
    series = write_csv(tmp_path / "s.csv", [1, 2, 3])
    assert (
        main(["detect", "--csv", str(series), "--detector", "ewma", "--set", "alpha=3"])
        == 2
    )
    assert (
        capsys.readouterr().err
        == "logweir: --set (ewma).alpha: must be in (0, 1], got 3.0\n"
    )


def test_csv_epoch_seconds_and_unsorted_rows(tmp_path: Path, capsys) -> None:
    path = tmp_path / "epoch.csv"
    rows = [
        (600, 12.0),
        (0, 10.0),
        (300, 12.0),
        (900, 14.0),
        (1200, 12.0),
        (1500, 30.0),
    ]
    path.write_text("timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in rows))
    main(
        [
            "detect",
            "--csv",
            str(path),
            "--detector",
            "zscore",
            "--set",
            "window=4",
            "--set",
            "min_history=3",
        ]
    )
    assert capsys.readouterr().out.startswith("1970-01-01T00:25:00+00:00  value 30")


def store_with_windows(out: Path, requests: list[int]) -> None:
    rows = []
    for i, count in enumerate(requests):
        start = T0 + timedelta(minutes=i)
        row = {name: None for name in WINDOW_SCHEMA}
        row.update(
            window_size_s=60,
            window_step_s=60,
            window_start=start,
            window_end=start + timedelta(minutes=1),
            dimension="all",
            key="",
            requests=count,
            bytes=count * 100,
            status_1xx=0,
            status_2xx=count,
            status_3xx=0,
            status_4xx=0,
            status_5xx=0,
        )
        rows.append(row)
    frame = pl.DataFrame(rows, schema=WINDOW_SCHEMA)
    out.mkdir()
    with duckdb.connect(str(out / "logweir.duckdb")) as connection:
        connection.register("incoming", frame.to_arrow())
        connection.execute("CREATE TABLE windows AS SELECT * FROM incoming")


def test_out_runs_the_rules_over_stored_windows(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    store_with_windows(
        out, [1000 + (i % 2) * 20 for i in range(30)] + [6000, 6100, 1000]
    )
    assert main(["detect", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    # median 16.83 req/s; MAD sigma 0.247 widened by the Poisson noise of
    # 1010 requests, sqrt(1010) / 60 = 0.530: hypot = 0.584
    assert captured.out.splitlines() == [
        "open     critical traffic_spike: request rate 100 req/s in 14:30–14:31 "
        "against a usual 16.8 req/s ± 0.584",
        "resolved critical traffic_spike: resolved: request rate 100 req/s in "
        "14:30–14:31 "
        "against a usual 16.8 req/s ± 0.584; incident 14:30–14:32, 2 windows",
    ]
    assert captured.err == f"1 incident(s) in 33 window rows of {out}\n"


def test_out_without_a_store_says_so(tmp_path: Path, capsys) -> None:
    assert main(["detect", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"logweir: no aggregate store at {tmp_path / 'logweir.duckdb'}: "
        f"run logweir run --out {tmp_path} first\n"
    )


def test_out_config_table_is_used(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    store_with_windows(out, [1000 + (i % 2) * 20 for i in range(30)] + [6000])
    config = tmp_path / "logweir.toml"
    config.write_text("[detect]\n[detect.rules.traffic_spike]\nenabled = false\n")
    main(["detect", "--out", str(out), "--config", str(config)])
    assert capsys.readouterr().out == ""
