"""``logweir merge`` and the Kafka flags, without a broker.

The merge is checked on consumer folders written by the streaming pipeline
over plain files (``logweir run --follow``), the same pipeline a Kafka
consumer runs: two folders holding disjoint halves of a log must merge into
the windows ``logweir run`` gives for the whole log.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from logweir.cli import main
from logweir.pipeline.checkpoint import output_name
from logweir.sinks.lake import LakeWriter
from logweir.sinks.rejects import RejectWriter

FORMAT = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %D'
START = datetime(2024, 6, 3, 8, 0, tzinfo=UTC)


def _line(i: int) -> str:
    ts = (START + timedelta(seconds=i // 3)).strftime("%d/%b/%Y:%H:%M:%S +0000")
    return (
        f'10.1.{i % 19}.{i % 3} - - [{ts}] "GET /q{i % 11} HTTP/1.1" '
        f'{(200, 404, 503)[i % 3]} {i % 700} "-" "ua{i % 4}" {500 + (i * 53) % 70000}'
    )


def _logweir(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "logweir", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def _windows(store: Path) -> pl.DataFrame:
    with duckdb.connect(str(store), read_only=True) as db:
        return db.sql("SELECT * FROM windows ORDER BY ALL").pl()


def test_merged_consumer_folders_give_the_windows_of_one_run(tmp_path: Path) -> None:
    lines = [_line(i) for i in range(6000)]
    # Split by client, as Kafka partitions keyed by client IP would.
    halves: dict[str, list[str]] = {"a": [], "b": []}
    for line in lines:
        halves["a" if int(line.split(".")[2]) % 2 else "b"].append(line)
    out = tmp_path / "out"
    for name, part in halves.items():
        log = tmp_path / f"{name}.log"
        log.write_text("\n".join(part) + "\n")
        _logweir(
            "run", "--follow", str(log), "--out", str(out / "consumers" / name),
            "--format", FORMAT, "--no-detect", "-q", "--exit-when-idle", "0.5s",
        )  # fmt: skip
    whole = tmp_path / "whole.log"
    whole.write_text("\n".join(lines) + "\n")
    reference = tmp_path / "reference"
    _logweir("run", str(whole), "--out", str(reference), "--format", FORMAT, "-q")
    _logweir("merge", str(out))
    assert _windows(out / "logweir.duckdb").equals(
        _windows(reference / "logweir.duckdb")
    )
    linked = sorted(p.name for p in (out / "events").rglob("*.parquet"))
    own = sorted(p.name for p in (out / "consumers").rglob("events/**/*.parquet"))
    assert linked == own
    # A consumer's file gone (its recovery removed it): its link goes too.
    removed = next((out / "consumers" / "a").rglob("events/**/*.parquet"))
    removed.unlink()
    _logweir("merge", str(out))
    assert removed.name not in {p.name for p in (out / "events").rglob("*.parquet")}


def test_merge_keeps_once_the_lines_two_consumers_both_hold(tmp_path: Path) -> None:
    """Two consumers with overlapping ranges of one stream (a consumer that
    crashed after its checkpoint, and the one that read its partition again
    from the group's older commit): every line is merged once."""
    lines = [_line(i) for i in range(4000)]
    lines[1234] = "not a log line"
    log = tmp_path / "access.log"
    log.write_text("\n".join(lines) + "\n")
    whole = tmp_path / "whole"
    _logweir(
        "run", "--follow", str(log), "--out", str(whole), "--format", FORMAT,
        "--no-detect", "-q", "--exit-when-idle", "0.5s",
    )  # fmt: skip
    events = _read(whole / "events")
    rejects = _read(whole / "rejects")
    stream = _stream_name(whole)
    offsets = events.get_column("offset").sort()
    # a holds [0, 3000th line), b [2000th line, end): 1000 lines in both
    cut_a, cut_b = int(offsets[3000]), int(offsets[2000])
    end = log.stat().st_size
    out = tmp_path / "out"
    for name, start, stop in (("a", 0, cut_a), ("b", cut_b, end)):
        folder = out / "consumers" / name
        shutil.copytree(whole / "checkpoint", folder / "checkpoint")
        part = output_name(stream, start, stop)
        lake = LakeWriter(folder)
        lake.write(events.filter(pl.col("offset").is_between(start, stop - 1)), part)
        RejectWriter(folder).write(
            rejects.filter(pl.col("offset").is_between(start, stop - 1)), part
        )
    for _ in range(2):  # a second merge changes nothing
        _logweir("merge", str(out))
        merged = _read(out / "events")
        assert merged.height == events.height == 3999
        assert merged.select("source", "offset").is_unique().all()
        assert merged.sort("offset").equals(events.sort("offset"))
        assert _read(out / "rejects").height == 1
        assert _windows(out / "logweir.duckdb").equals(
            _windows(whole / "logweir.duckdb")
        )
    # b's own file is left whole: the merge wrote a new file for its share
    assert _read(out / "consumers" / "b" / "events").height == 4000 - 1 - 2000


def _read(folder: Path) -> pl.DataFrame:
    files = sorted(folder.rglob("*.parquet"))
    return pl.read_parquet(files, hive_partitioning=False)


def _stream_name(out: Path) -> str:
    names = {p.name.rsplit("-", 2)[0] for p in (out / "events").rglob("*.parquet")}
    assert len(names) == 1
    return names.pop()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--source", "kafka://h/t", "--group", "g"], "'h' is not HOST:PORT"),
        (["run", "--source", "kafka://h:1/t"], "--group: a Kafka source needs"),
        (
            ["run", "x.log", "--source", "kafka://h:1/t", "--group", "g"],
            "give no files with it",
        ),
        (
            ["run", "--source", "kafka://h:1/t", "--group", "g", "--consumer-id", ".x"],
            "--consumer-id: '.x' must be",
        ),
        (["ship", "--to", "kafka://h:1", "a.log"], "is not a Kafka address"),
        (["ship", "--to", "kafka://h:1/t", "--linger", "5x", "a.log"], "--linger:"),
    ],
)
def test_bad_kafka_flags_stop_with_one_line(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*args, "--out", str(tmp_path)] if args[0] == "run" else args) == 2
    error = capsys.readouterr().err
    assert error.startswith("logweir: ") and message in error
    assert len(error.strip().splitlines()) == 1


def test_merge_of_a_folder_without_consumers_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["merge", str(tmp_path)]) == 2
    assert "holds no consumers/" in capsys.readouterr().err
