"""``logweir query``: SQL over the lake and the store, printed three ways."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from logweir.cli import main

SHOP_LOG = "lnav/test/logfile_shop_access_log.0"

STATUS_SQL = "SELECT status, count(*) AS n FROM events GROUP BY status ORDER BY status"


@pytest.fixture(scope="module")
def out(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("query") / "out"
    status = main(
        [
            "run",
            str(corpus / SHOP_LOG),
            "--out",
            str(folder),
            "--format",
            "combined",
            "--workers",
            "1",
            "--no-detect",
            "--quiet",
        ]
    )
    assert status == 0
    return folder


def _query(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["query", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_csv(out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, text, err = _query(capsys, STATUS_SQL, "--out", str(out), "--format", "csv")
    assert (status, err) == (0, "")
    assert text == "status,n\n200,938\n301,11\n302,20\n304,7\n404,24\n"


def test_json(out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, text, _ = _query(
        capsys,
        "SELECT min(ts) AS first, max(ts) AS last, count(DISTINCT client_ip) AS ips "
        "FROM events",
        "--out",
        str(out),
        "--format",
        "json",
    )
    assert status == 0
    assert json.loads(text) == [
        {"first": "2019-01-22T00:26:14Z", "last": "2019-01-22T00:29:11Z", "ips": 101}
    ]


def test_table(out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, text, _ = _query(capsys, STATUS_SQL, "--out", str(out))
    assert status == 0
    lines = [line.split() for line in text.splitlines() if line.strip()]
    assert lines[0] == ["status", "n"]
    assert ["404", "24"] in lines
    assert lines[-1] == ["5", "rows"]


def test_partition_columns_and_store_tables(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, text, _ = _query(
        capsys,
        "SELECT date, hour, count(*) AS n FROM events GROUP BY ALL ORDER BY ALL",
        "--out",
        str(out),
        "--format",
        "csv",
    )
    assert status == 0
    assert text == "date,hour,n\n2019-01-22,0,1000\n"
    status, text, _ = _query(
        capsys,
        "SELECT sum(requests) AS n FROM windows "
        "WHERE window_size_s = 3600 AND dimension = 'all'",
        "--out",
        str(out),
        "--format",
        "csv",
    )
    assert (status, text) == (0, "n\n1000\n")


def test_sql_error_is_one_line(out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, text, err = _query(capsys, "SELEC 1", "--out", str(out))
    assert (status, text) == (2, "")
    assert (
        err == 'logweir: query failed: Parser Error: syntax error at or near "SELEC"\n'
    )


def test_unknown_table(out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = _query(capsys, "SELECT * FROM nope", "--out", str(out))
    assert status == 2
    assert err.startswith(
        "logweir: query failed: Catalog Error: Table with name nope does not exist!"
    )
    assert err.count("\n") == 1


def test_missing_out_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = _query(capsys, "SELECT 1", "--out", str(tmp_path / "none"))
    assert status == 2
    assert err == (
        f"logweir: '{tmp_path / 'none'}' is not an output folder (give --out)\n"
    )


def test_empty_lake_still_has_an_events_view(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, text, _ = _query(
        capsys,
        "SELECT count(*) AS n FROM events",
        "--out",
        str(tmp_path),
        "--format",
        "csv",
    )
    assert (status, text) == (0, "n\n0\n")


def test_json_sums_are_exact_numbers(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """sum() of integers is DECIMAL in DuckDB; JSON gets the exact integer."""
    status, stdout, _ = _query(
        capsys,
        "SELECT sum(bytes) AS total, count(*) AS n, sum(bytes) / 2 AS half FROM events",
        "--out",
        str(out),
        "--format",
        "json",
    )
    assert status == 0
    (row,) = json.loads(stdout)
    assert isinstance(row["total"], int) and row["total"] > 0
    _, csv_out, _ = _query(
        capsys, "SELECT sum(bytes) FROM events", "--out", str(out), "--format", "csv"
    )
    assert str(row["total"]) == csv_out.splitlines()[1]
