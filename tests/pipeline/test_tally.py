"""The report's tally gives exactly what DuckDB reads back from the lake."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from logweir.gen import generate
from logweir.pipeline import tally as tally_module
from logweir.pipeline.batch import run_batch
from logweir.pipeline.config import RunConfig
from logweir.pipeline.report import (
    build_report,
    report_from_lake,
    report_from_tally,
    report_to_dict,
)
from logweir.pipeline.tally import Tally

DURATION_FORMAT = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %D'


def _run(log: Path, out: Path, fmt: str, **settings: object) -> object:
    config = RunConfig.model_validate(
        {
            "inputs": [str(log)],
            "out": str(out),
            "format": fmt,
            "detect": {"enabled": False},
            **settings,
        }
    )
    return run_batch(config)


@pytest.fixture(scope="module")
def timed_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tally") / "access.log"
    generate(30_000, str(path), fmt="combined-duration", seed=11)
    return path


@pytest.mark.parametrize(
    "settings", [{"workers": 1}, {"workers": 2, "chunk_size": "1MiB"}]
)
def test_tally_report_equals_the_lake_report(
    timed_log: Path, tmp_path: Path, settings: dict[str, object]
) -> None:
    summary = _run(timed_log, tmp_path / "out", DURATION_FORMAT, **settings)
    assert summary.tally is not None and not summary.tally.overflow
    from_tally = report_to_dict(report_from_tally(summary, summary.tally))
    from_lake = report_to_dict(report_from_lake(summary))
    assert from_tally == from_lake
    assert from_tally["slowest_paths"], "the log records durations"
    assert from_tally["top_404s"], "the log has 404s"
    assert sum(from_tally["status_codes"].values()) == summary.events


def test_a_format_without_durations_has_no_slowest_paths(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    generate(5_000, str(log), fmt="combined", seed=12)
    summary = _run(log, tmp_path / "out", "combined")
    report = build_report(summary)
    assert report.slowest_paths == []
    assert report_to_dict(report) == report_to_dict(report_from_lake(summary))


def test_too_many_keys_fall_back_to_the_lake(
    timed_log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tally_module, "MAX_KEYS", 100)
    summary = _run(timed_log, tmp_path / "out", DURATION_FORMAT, workers=1)
    assert summary.tally is not None and summary.tally.overflow
    assert summary.tally.frame("paths").is_empty()  # nothing kept after giving up
    report = build_report(summary)
    assert report.requests == summary.events
    assert report_to_dict(report) == report_to_dict(report_from_lake(summary))


def test_tallies_merge_to_the_tally_of_the_whole() -> None:
    events = pl.DataFrame(
        {
            "ts": pl.datetime_range(
                pl.datetime(2024, 5, 1, time_zone="UTC"),
                pl.datetime(2024, 5, 1, 0, 9, 59, time_zone="UTC"),
                "1s",
                eager=True,
            ),
        }
    ).with_columns(
        client_ip=pl.format("10.0.0.{}", pl.int_range(pl.len()) % 7),
        path=pl.format("/p/{}", pl.int_range(pl.len()) % 13),
        status=pl.when(pl.int_range(pl.len()) % 5 == 0)
        .then(404)
        .otherwise(200)
        .cast(pl.UInt16),
        bytes=(pl.int_range(pl.len()) * 3).cast(pl.UInt64),
        duration_ms=pl.int_range(pl.len()).cast(pl.Float64) / 4,
    )
    whole = Tally()
    whole.add(events)
    parts = [Tally(), Tally()]
    parts[0].add(events.slice(0, 250))
    parts[1].add(events.slice(250))
    merged = Tally.from_bytes(parts[0].to_bytes())
    merged.merge(Tally.from_bytes(parts[1].to_bytes()))
    for name in ("paths", "clients", "statuses", "minutes"):
        key = merged.frame(name).columns[0]
        assert merged.frame(name).sort(key).equals(whole.frame(name).sort(key)), name
    assert (merged.events, merged.bandwidth) == (whole.events, whole.bandwidth)
    assert (merged.first_us, merged.last_us) == (whole.first_us, whole.last_us)
    assert merged.frame("minutes").height == 10


def test_garbage_is_not_a_tally() -> None:
    with pytest.raises(ValueError, match="not a logweir report tally"):
        Tally.from_bytes(b"nonsense")
