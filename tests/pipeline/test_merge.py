"""One worker and two workers give the same windows on the same input."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from logweir.gen import generate
from logweir.pipeline.batch import run_batch
from logweir.pipeline.config import RunConfig
from logweir.pipeline.query import run_query


def assert_same_windows(one: pl.DataFrame, two: pl.DataFrame) -> None:
    """Equal frames; on failure, say how many rows differ in which column."""
    assert (one.columns, one.height) == (two.columns, two.height)
    differing = {
        name: one.height - int(one[name].eq_missing(two[name]).sum())
        for name in one.columns
        if not one[name].equals(two[name])
    }
    assert differing == {}


def _run(log: Path, out: Path, workers: int, lines: int) -> pl.DataFrame:
    config = RunConfig(
        inputs=[str(log)],
        out=out,
        format="combined",
        dimensions=["status_class", "method", "path"],
        workers=workers,
        # Small chunks, so that two workers really split the file and each
        # merges many partial states.
        chunk_size=8 << 20,
        batch_size=2 << 20,
        detect={"enabled": False},
    )
    summary = run_batch(config)
    assert summary.lines == lines
    assert summary.chunks > 4
    return run_query(out, "SELECT * FROM windows ORDER BY ALL")


@pytest.mark.slow
def test_two_workers_give_what_one_gives(tmp_path: Path) -> None:
    lines = 1_000_000
    log = tmp_path / "access.log"
    generate(lines, log, seed=11)
    one = _run(log, tmp_path / "one", 1, lines)
    two = _run(log, tmp_path / "two", 2, lines)
    assert one.height > 1000
    assert_same_windows(one, two)
    counts = [
        run_query(
            out, 'SELECT count(*), count(DISTINCT (source, "offset")) FROM events'
        )
        for out in (tmp_path / "one", tmp_path / "two")
    ]
    assert counts[0].row(0) == counts[1].row(0)


def test_two_workers_give_what_one_gives_on_a_small_file(tmp_path: Path) -> None:
    lines = 20_000
    log = tmp_path / "access.log"
    generate(lines, log, seed=5)
    results = []
    for workers in (1, 2):
        config = RunConfig(
            inputs=[str(log)],
            out=tmp_path / f"out{workers}",
            format="combined",
            workers=workers,
            chunk_size=256 << 10,
            batch_size=64 << 10,
            detect={"enabled": False},
        )
        summary = run_batch(config)
        assert summary.chunks >= 8
        results.append(run_query(config.out, "SELECT * FROM windows ORDER BY ALL"))
    assert_same_windows(results[0], results[1])
