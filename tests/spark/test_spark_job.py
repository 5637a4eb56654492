"""``logweir spark`` in local mode against ``logweir run`` on the same file.

One SparkSession for the module, one generated log (two 1 MiB chunks,
with malformed and out-of-order lines), one run of each command; the
tests compare their outputs: windows (exact columns exactly, the
estimates within their documented bounds against an exact reference
computed from the lake), and the lakes row by row.
"""

from __future__ import annotations

import collections
import json
import math
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from logweir.cli import main
from logweir.gen import generate
from logweir.sinks import AggregateStore
from logweir.spark import SparkJobConfig, SparkSummary, build_session, run_spark_job

pytest.importorskip("pyspark")

# One session and one pair of runs serve every test here: keep them on one
# xdist worker (with `--dist loadgroup`; `-n auto` alone may split them).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark")]

FORMAT = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %D'
WINDOWS = "1m,10m/5m"
SPECS = ((60, 60), (600, 300))
LINES = 6_000
CHUNK = "1MiB"
KEY = ["window_size_s", "window_step_s", "window_start", "dimension", "key"]
EXACT = [
    "requests",
    "bytes",
    "status_1xx",
    "status_2xx",
    "status_3xx",
    "status_4xx",
    "status_5xx",
    "error_rate",
]
#: The standard error of approx_count_distinct as the job sets it (4 096
#: registers, like logweir run's sketch), and how many standard errors the
#: test allows (HLL++ is deterministic: no flakiness).
HLL_ERROR = 0.0163
SIGMAS = 4
#: percentile_approx's accuracy for these runs (the job's default is
#: 10,000): rank error at most n / ACCURACY, rounded up; low enough that
#: some windows here allow two ranks or more.
ACCURACY = 1_000


@dataclass
class Runs:
    log: Path
    run_out: Path
    spark_out: Path
    summary: SparkSummary


@pytest.fixture(scope="module")
def spark() -> Any:
    session = build_session("local[2]", "logweir-tests")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, spark: Any) -> Runs:
    root = tmp_path_factory.mktemp("spark")
    log = root / "access.log"
    generate(LINES, log, fmt="combined-duration", seed=11)
    run_out = root / "run"
    status = main(
        [
            "run",
            str(log),
            "--out",
            str(run_out),
            "--format",
            FORMAT,
            "--windows",
            WINDOWS,
            "--chunk-size",
            CHUNK,
            "--workers",
            "1",
            "--no-detect",
            "--quiet",
        ]
    )
    assert status == 0
    spark_out = root / "spark"
    summary = run_spark_job(
        SparkJobConfig(
            inputs=(str(log),),
            out=spark_out,
            format=FORMAT,
            windows=WINDOWS,
            chunk_bytes=1 << 20,
            percentile_accuracy=ACCURACY,
        ),
        spark,
    )
    return Runs(log, run_out, spark_out, summary)


def windows(out: Path) -> pl.DataFrame:
    with AggregateStore(out / "logweir.duckdb") as store:
        return store.table("windows").sort(KEY)


def lake(out: Path) -> pl.DataFrame:
    files = sorted((out / "events").rglob("*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files]).sort("source", "offset")


def lake_names(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet"))


def test_job_reads_every_line_of_every_chunk(runs: Runs) -> None:
    summary = runs.summary
    assert summary.chunks == 2
    assert summary.lines == LINES
    assert summary.events + summary.rejects + summary.skipped == LINES
    assert summary.rejects > 0  # the generator writes some malformed lines
    assert summary.events == lake(runs.spark_out).height


def test_window_keys_and_exact_columns_equal_logweir_run(runs: Runs) -> None:
    ours = windows(runs.spark_out)
    theirs = windows(runs.run_out)
    assert ours.select(KEY).equals(theirs.select(KEY))
    assert set(ours.get_column("dimension")) == {"all", "status_class", "method"}
    assert ours.select(EXACT).equals(theirs.select(EXACT))


def test_lake_has_the_same_rows_files_and_schema_as_logweir_run(runs: Runs) -> None:
    ours = lake(runs.spark_out)
    theirs = lake(runs.run_out)
    assert ours.height == theirs.height
    assert ours.select("source", "offset").equals(theirs.select("source", "offset"))
    assert ours.equals(theirs)
    assert lake_names(runs.spark_out) == lake_names(runs.run_out)
    spark_file = next((runs.spark_out / "events").rglob("*.parquet"))
    run_file = runs.run_out / spark_file.relative_to(runs.spark_out)
    assert pq.read_schema(spark_file).equals(pq.read_schema(run_file))


def test_offsets_are_the_byte_offsets_of_the_lines(runs: Runs) -> None:
    data = runs.log.read_bytes()
    starts = [0] + [i + 1 for i, byte in enumerate(data[:-1]) if byte == 10]
    offsets = lake(runs.spark_out).get_column("offset").to_list()
    assert set(offsets) <= set(starts)
    for offset in offsets[:: len(offsets) // 50]:
        line = data[offset : data.index(b"\n", offset)]
        assert line.count(b'"') >= 6  # a whole combined line, from its start


def reference(events: pl.DataFrame) -> pl.DataFrame:
    """Exact unique clients and nearest-rank percentiles per overall row."""
    seconds = events.get_column("ts").dt.epoch("s")
    rows = []
    for size, step in SPECS:
        for k in range(size // step):
            starts = (seconds // step - k) * step
            frame = events.with_columns(start=starts, size=pl.lit(size))
            rows.append(frame)
    spread = pl.concat(rows).filter(pl.col("ts").is_not_null())
    valid = pl.col("duration_ms").filter(pl.col("duration_ms") >= 0).sort()

    def rank(q: float, shift: int) -> pl.Expr:
        """The nearest-rank value, ``shift`` times Spark's rank bound away."""
        count = valid.len().cast(pl.Int64)
        index = (count.cast(pl.Float64) * q).ceil().cast(pl.Int64) - 1
        index += shift * (-(-count // ACCURACY))  # ceil(n / ACCURACY) ranks
        return valid.get(index.clip(0, count - 1))

    quantiles = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
    return spread.group_by("size", "start").agg(
        pl.col("client_ip").drop_nulls().n_unique().alias("exact_clients"),
        valid.len().alias("durations"),
        *(rank(q, 0).alias(f"exact_{name}") for name, q in quantiles.items()),
        *(rank(q, -1).alias(f"low_{name}") for name, q in quantiles.items()),
        *(rank(q, 1).alias(f"high_{name}") for name, q in quantiles.items()),
    )


@pytest.fixture(scope="module")
def compared(runs: Runs) -> pl.DataFrame:
    exact = reference(lake(runs.run_out))
    ours = windows(runs.spark_out).filter(pl.col("dimension") == "all")
    theirs = windows(runs.run_out).filter(pl.col("dimension") == "all")
    joined = ours.join(theirs, on=KEY, suffix="_run").with_columns(
        size=pl.col("window_size_s"),
        start=pl.col("window_start").dt.epoch("s"),
    )
    result = joined.join(exact, on=["size", "start"])
    assert result.height == ours.height
    return result


def test_unique_clients_are_within_the_hll_bound(compared: pl.DataFrame) -> None:
    for row in compared.iter_rows(named=True):
        exact = row["exact_clients"]
        bound = SIGMAS * HLL_ERROR * exact + 1
        assert abs(row["unique_clients"] - exact) <= bound, row
        # logweir run's own sketch has the same bound (docs/windows.md).
        assert abs(row["unique_clients_run"] - exact) <= bound, row


def test_percentiles_are_within_their_rank_and_value_bounds(
    compared: pl.DataFrame,
) -> None:
    # Some windows hold more durations than ACCURACY: a bound of 2+ ranks.
    assert compared.get_column("durations").max() > ACCURACY
    for row in compared.iter_rows(named=True):
        for q in ("p50", "p95", "p99"):
            ours = row[f"duration_{q}_ms"]
            assert row[f"low_{q}"] <= ours <= row[f"high_{q}"], (q, row)
            # logweir run: within 1 % of the value (docs/windows.md).
            exact = row[f"exact_{q}"]
            assert math.isclose(row[f"duration_{q}_ms_run"], exact, rel_tol=0.0101)


TOP_LISTS = {
    "top_paths": "path",
    "top_clients": "client_ip",
    "top_user_agents": "user_agent",
}


def exact_top_lists(events: pl.DataFrame, top_n: int = 10) -> dict[tuple, list]:
    """Every (window, row, list) counted the slow and obvious way: each event
    in each window holding it, every item counted, ranked by count then
    item."""
    counts: dict[tuple, collections.Counter[str]] = collections.defaultdict(
        collections.Counter
    )
    for row in events.iter_rows(named=True):
        if row["ts"] is None:
            continue
        second = int(row["ts"].timestamp())
        status = row["status"]
        inside = status is not None and 100 <= status < 600
        klass = f"{status // 100}xx" if inside else None
        for size, step in SPECS:
            for back in range(size // step):
                start = (second // step - back) * step
                for dimension, key in (("all", ""), ("status_class", klass)):
                    if key is None:
                        continue
                    for column, item in TOP_LISTS.items():
                        if row[item] is not None:
                            slot = (size, start, dimension, key, column)
                            counts[slot][row[item]] += 1
    return {
        key: sorted(counter.items(), key=lambda entry: (-entry[1], entry[0]))[:top_n]
        for key, counter in counts.items()
    }


def test_top_lists_are_exact_and_agree_with_logweir_run(runs: Runs) -> None:
    exact = exact_top_lists(lake(runs.run_out))
    ours = windows(runs.spark_out)
    theirs = windows(runs.run_out)
    joined = ours.join(theirs, on=KEY, suffix="_run")
    assert joined.height == ours.height
    checked = 0
    for row in joined.iter_rows(named=True):
        start = int(row["window_start"].timestamp())
        for column in TOP_LISTS:
            listed, run = row[column], row[f"{column}_run"]
            if row["dimension"] not in ("all", "status_class"):
                assert listed is None and run is None, (row["dimension"], column)
                continue
            key = (row["window_size_s"], start, row["dimension"], row["key"], column)
            spark_entries = [(e["key"], e["count"]) for e in json.loads(listed)]
            assert spark_entries == exact[key], key  # Spark counts exactly
            # logweir run keeps Misra–Gries summaries: lower bounds, the same
            # counts while a pane's distinct items fit their capacity.
            run_counts = [e["count"] for e in json.loads(run or "[]")]
            spark_counts = [count for _, count in spark_entries]
            assert len(run_counts) == len(spark_counts), key
            assert all(a <= b for a, b in zip(run_counts, spark_counts, strict=True))
            checked += 1
    assert checked > 50


def test_rejects_match_logweir_run(runs: Runs) -> None:
    def rejects(out: Path) -> pl.DataFrame:
        files = sorted((out / "rejects").glob("*.parquet"))
        return pl.concat([pl.read_parquet(f) for f in files]).sort("offset")

    assert rejects(runs.spark_out).equals(rejects(runs.run_out))
    assert rejects(runs.spark_out).height == runs.summary.rejects


def test_a_rerun_replaces_the_lake_instead_of_adding_to_it(
    runs: Runs, spark: Any
) -> None:
    before = lake_names(runs.spark_out)
    summary = run_spark_job(
        SparkJobConfig(
            inputs=(str(runs.log),),
            out=runs.spark_out,
            format=FORMAT,
            windows=WINDOWS,
            chunk_bytes=1 << 20,
            percentile_accuracy=ACCURACY,
        ),
        spark,
    )
    assert lake_names(runs.spark_out) == before
    assert lake(runs.spark_out).height == summary.events
    assert windows(runs.spark_out).height == summary.window_rows


def test_cli_runs_the_job_and_prints_a_json_summary(
    runs: Runs, spark: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli"
    argv = ["spark", str(runs.log), "--out", str(out), "--format", FORMAT]
    status = main([*argv, "--windows", "5m", "--chunk-size", "1MiB", "--json"])
    assert status == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["lines"] == LINES
    assert summary["chunks"] == 2
    assert spark.sparkContext._jsc is not None  # the module's session runs on
    rows = windows(out)
    assert set(rows.get_column("window_size_s")) == {300}


def test_heavy_dimension_is_refused_by_name(
    runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["spark", str(runs.log), "--format", FORMAT, "--dimensions", "path"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("logweir: --dimensions: 'path' is not supported")


def test_missing_pyspark_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import fails
    assert main(["spark", "access.log"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == (
        "logweir: pyspark is not installed; install it with: "
        "pip install 'logweir[spark]'"
    )


def test_a_record_stream_gives_the_lake_and_closed_windows_of_logweir_run(
    runs: Runs, spark: Any, tmp_path: Path
) -> None:
    """The Kafka job's query on Kafka-shaped records from a Parquet stream:
    everything but Spark's Kafka source (whose connector is not here)."""
    from logweir.spark.kafka import run_record_stream

    lines = runs.log.read_bytes().split(b"\n")[:-1]
    partitions = [len(line.split(b" ", 1)[0]) % 2 for line in lines]
    offsets = [partitions[: i + 1].count(p) - 1 for i, p in enumerate(partitions)]
    records = pa.table(
        {
            "topic": ["web"] * len(lines),
            "partition": pa.array(partitions, pa.int32()),
            "offset": pa.array(offsets, pa.int64()),
            "value": pa.array(lines, pa.binary()),
        }
    )
    (tmp_path / "records").mkdir()
    pq.write_table(records, tmp_path / "records" / "part-0.parquet")
    stream = spark.readStream.schema(
        "topic string, partition int, offset bigint, value binary"
    ).parquet(str(tmp_path / "records"))
    out = tmp_path / "stream"
    lateness_s = 60  # the log spans a few minutes: some 1m windows close
    config = SparkJobConfig(
        out=out,
        format=FORMAT,
        windows=WINDOWS,
        lateness_s=lateness_s,
        available_now=True,
    )
    summary = run_record_stream(stream, config)
    assert summary.lines == LINES

    ours = lake(out)
    theirs = lake(runs.run_out)
    assert set(ours.get_column("source")) == {"kafka:web/0", "kafka:web/1"}
    columns = [c for c in ours.columns if c not in ("source", "offset", "extra")]
    assert (
        ours.select(columns).sort(columns).equals(theirs.select(columns).sort(columns))
    )

    # Append mode: a window is emitted once the watermark passes its end.
    watermark = theirs.get_column("ts").max() - timedelta(seconds=lateness_s)
    emitted = windows(out)
    assert emitted.height == summary.window_rows > 0
    assert emitted.get_column("window_end").max() <= watermark
    expected = windows(runs.run_out).filter(pl.col("window_end") <= watermark)
    assert emitted.select(KEY).equals(expected.select(KEY))
    assert emitted.select(EXACT).equals(expected.select(EXACT))


def test_an_error_inside_a_task_comes_back_as_its_logweir_error(
    spark: Any, tmp_path: Path
) -> None:
    from functools import partial

    from logweir.errors import SourceError
    from logweir.formats.base import ParseOptions
    from logweir.sources import expand_inputs, plan_chunks
    from logweir.spark.job import task_errors
    from logweir.spark.tasks import (
        CHUNK_ROW_SCHEMA,
        TaskSettings,
        chunk_rows,
        process_chunks,
    )

    log = tmp_path / "gone.log"
    log.write_text(
        '203.0.113.9 - - [03/Jun/2024:08:00:01 +0000] "GET / HTTP/1.1" 200 1\n'
    )
    inputs = expand_inputs([str(log)])
    rows = chunk_rows(plan_chunks(inputs[0]), {inputs[0].path: "combined"})
    log.unlink()  # planned, then gone before the task reads it
    settings = TaskSettings(ParseOptions(), tmp_path / "out", 1 << 20)
    parsed = spark.createDataFrame(rows, CHUNK_ROW_SCHEMA).mapInArrow(
        partial(process_chunks, settings), settings.spark_schema()
    )
    with pytest.raises(SourceError) as raised, task_errors():
        parsed.count()
    assert str(raised.value) == (
        f"cannot read {str(log.resolve())!r}: no such file or directory"
    )
