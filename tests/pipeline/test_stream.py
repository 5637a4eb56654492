"""The streaming pipeline in process, fed by an in-memory source.

Every check compares what the pipeline kept (store rows, lake files, late
output) with what a plain batch aggregation of the same lines gives, or
with counts made the obvious way from the lines themselves.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from memory_source import MemorySource

from logweir.formats.base import ParseOptions
from logweir.formats.registry import compile_format
from logweir.pipeline.checkpoint import load_checkpoint, recover
from logweir.pipeline.config import RunConfig, load_config, parse_seconds
from logweir.pipeline.stream import StreamPipeline
from logweir.schema import LineBatch
from logweir.sources.stream import SourceBatch
from logweir.windows import WindowAggregator

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
#: Columns compared between runs (every window column).
ORDER = ["window_size_s", "window_step_s", "window_start", "dimension", "key"]


def line(moment: datetime, status: int = 200, path: str = "/a", ip: str = "") -> str:
    client = ip or f"10.0.0.{moment.second % 7}"
    stamp = moment.strftime("%d/%b/%Y:%H:%M:%S +0000")
    return f'{client} - - [{stamp}] "GET {path} HTTP/1.1" {status} 512 "-" "ua/1"'


def traffic(count: int, step_s: float = 0.5, start: datetime = T0) -> list[str]:
    statuses = (200, 200, 200, 304, 404, 500)
    return [
        line(start + timedelta(seconds=i * step_s), statuses[i % 6], f"/p{i % 13}")
        for i in range(count)
    ]


def config_for(out: Path, **overrides: Any) -> RunConfig:
    values: dict[str, Any] = {
        "out": str(out),
        "format": "combined",
        "windows": "1m,5m",
        "lateness": "1m",
        "commit_interval": "100ms",
        "publish_interval": "20ms",
        "exit_when_idle": "300ms",
        "detect": {"enabled": False},
    }
    values.update(overrides)
    return load_config(None, values)


def follow(source: MemorySource, config: RunConfig, **kwargs: Any) -> StreamPipeline:
    """Run a pipeline over ``source`` until it is idle; return it (closed)."""
    checkpoint = recover(config.out)
    pipeline = StreamPipeline(source, config, checkpoint=checkpoint, **kwargs)
    pipeline.run(threading.Event())
    return pipeline


def store_windows(out: Path) -> pl.DataFrame:
    with duckdb.connect(str(out / "logweir.duckdb"), read_only=True) as db:
        frame = pl.from_arrow(db.sql("SELECT * FROM windows").to_arrow_table())
    assert isinstance(frame, pl.DataFrame)
    return frame.sort(ORDER)


def batch_windows(lines: list[str], windows: str = "1m,5m") -> pl.DataFrame:
    """The reference: every line parsed at once, every window from finish()."""
    parser = compile_format("combined", ParseOptions())
    events = parser.parse(LineBatch.from_strings("ref", lines)).events
    aggregator = WindowAggregator(windows, lateness_s=60)
    aggregator.update(events)
    return aggregator.finish().sort(ORDER)


def lake(out: Path, folder: str = "events") -> pl.DataFrame:
    files = sorted((out / folder).rglob("*.parquet"))
    if not files:
        return pl.DataFrame()
    return pl.read_parquet(files, hive_partitioning=False)


def assert_same_windows(got: pl.DataFrame, want: pl.DataFrame) -> None:
    assert got.height == want.height
    got = got.select(want.columns).cast(dict(want.schema))
    differ = [name for name in want.columns if not got[name].equals(want[name])]
    assert not differ, f"window columns differ: {differ}"


def test_windows_equal_a_batch_run_of_the_same_lines(tmp_path: Path) -> None:
    lines = traffic(3000)
    follow(MemorySource({"a": lines}, batch_lines=97), config_for(tmp_path))
    assert_same_windows(store_windows(tmp_path), batch_windows(lines))


def test_lake_holds_each_line_once_named_by_stream_and_positions(
    tmp_path: Path,
) -> None:
    lines = traffic(1500)
    source = MemorySource({"a": lines[:700], "b/0": lines[700:]}, batch_lines=50)
    follow(source, config_for(tmp_path))
    events = lake(tmp_path)
    assert events.height == 1500
    assert events.select("source", "offset").unique().height == 1500
    names = {p.name for p in (tmp_path / "events").rglob("*.parquet")}
    assert any(name.startswith("a-0000000000000000-") for name in names)
    # "b/0" cannot be a file name: "/" becomes "_" and a hash keeps it apart
    assert any(name.startswith("b_0=") for name in names)
    checkpoint = load_checkpoint(tmp_path)
    assert checkpoint is not None
    assert checkpoint.positions == source.positions()
    assert source.committed[-1] == source.positions()


def test_every_pipeline_metric_moves(tmp_path: Path) -> None:
    lines = [*traffic(500), "not a log line"]
    source = MemorySource({"a": lines}, batch_lines=50)
    pipeline = follow(source, config_for(tmp_path))
    registry = pipeline.metrics.registry

    def value(name: str, **labels: str) -> float:
        found = registry.get_sample_value(name, labels)
        return 0.0 if found is None else found

    assert value("logweir_lines_read_total", source="mem:a") == 501
    assert value("logweir_lines_parsed_total", source="mem:a") == 500
    rejected = [
        sample
        for metric in registry.collect()
        if metric.name == "logweir_lines_rejected"
        for sample in metric.samples
        if sample.name.endswith("_total")
    ]
    assert sum(sample.value for sample in rejected) == 1
    assert value("logweir_bytes_read_total", source="mem:a") == sum(
        len(text) + 1 for text in lines
    )
    assert value("logweir_batch_seconds_count") >= 1
    for sink in ("lake", "rejects", "store", "checkpoint"):
        assert value("logweir_write_seconds_count", sink=sink) >= 1, sink
    assert value("logweir_event_latency_seconds_count") == 500
    assert value("logweir_watermark_lag_seconds") > 0
    assert value("logweir_queue_depth", queue="read") >= 0
    assert registry.get_sample_value("logweir_checkpoint_age_seconds") is not None


def test_open_windows_are_readable_before_they_close(tmp_path: Path) -> None:
    source = MemorySource({"a": traffic(40)}, batch_lines=10)
    config = config_for(tmp_path, exit_when_idle=None)
    pipeline = StreamPipeline(source, config)
    stop = threading.Event()
    runner = threading.Thread(target=pipeline.run, args=(stop,))
    runner.start()
    try:
        deadline = time.monotonic() + 30
        requests = 0
        while time.monotonic() < deadline and requests < 40:
            with pipeline.store_lock:
                rows = pipeline.store.read_windows(60, T0, T0 + timedelta(hours=1))
            requests = int(rows.get_column("requests").sum() or 0)
            time.sleep(0.02)
        # 40 lines span 20 s: no window can have closed (lateness 1 min)
        assert requests == 40
        assert pipeline.counters.windows == 0
        source.append("a", traffic(10, start=T0 + timedelta(seconds=20)))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and requests < 50:
            with pipeline.store_lock:
                rows = pipeline.store.read_windows(60, T0, T0 + timedelta(hours=1))
            requests = int(rows.get_column("requests").sum() or 0)
            time.sleep(0.02)
        assert requests == 50
    finally:
        stop.set()
        runner.join()
    assert pipeline.metrics.event_latency_seconds._sum.get() > 0


def test_input_shuffled_within_lateness_gives_the_same_windows(
    tmp_path: Path,
) -> None:
    lines = traffic(2400, step_s=0.25)  # 10 minutes
    rng = random.Random(5)
    # every line moves by at most 160 lines (40 s): within the 1 min lateness
    jitter = [index + rng.uniform(0, 160) for index in range(len(lines))]
    shuffled = [text for _, text in sorted(zip(jitter, lines, strict=True))]
    assert shuffled != lines
    follow(MemorySource({"a": shuffled}, batch_lines=40), config_for(tmp_path))
    assert_same_windows(store_windows(tmp_path), batch_windows(lines))
    assert lake(tmp_path, "late").is_empty()


def test_late_event_goes_to_late_output_and_corrects_its_window(
    tmp_path: Path,
) -> None:
    early = traffic(1200)  # 10 minutes from T0
    late_lines = [
        line(T0 + timedelta(seconds=30), 500, "/late-1"),
        line(T0 + timedelta(seconds=95), 404, "/late-2"),
    ]
    source = MemorySource({"a": early}, batch_lines=100)
    config = config_for(tmp_path, exit_when_idle=None)
    pipeline = StreamPipeline(source, config)
    stop = threading.Event()
    runner = threading.Thread(target=pipeline.run, args=(stop,))
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and pipeline.counters.lines < 1200:
            time.sleep(0.02)
        while time.monotonic() < deadline and pipeline.counters.windows < 8:
            time.sleep(0.02)
        # the watermark (last event 10 min on, minus 1 min) has closed the
        # first minutes: these two lines are late
        source.append("a", late_lines)
        while time.monotonic() < deadline and pipeline.counters.lines < 1202:
            time.sleep(0.02)
    finally:
        stop.set()
        runner.join()
    assert pipeline.counters.late == 2
    assert pipeline.metrics.events_late._value.get() == 2
    late = lake(tmp_path, "late")
    assert sorted(late.get_column("path").to_list()) == ["/late-1", "/late-2"]
    # late events are events: the lake has them too, once
    assert lake(tmp_path).height == 1202
    assert_same_windows(store_windows(tmp_path), batch_windows(early + late_lines))


def test_event_later_than_any_held_window_is_recomputed_from_the_lake(
    tmp_path: Path,
) -> None:
    early = traffic(1200)  # 10 minutes; 1m and 5m windows only
    late_lines = [line(T0 + timedelta(seconds=10), 503, "/very-late")]
    source = MemorySource({"a": early}, batch_lines=100)
    pipeline = StreamPipeline(source, config_for(tmp_path, exit_when_idle=None))
    stop = threading.Event()
    runner = threading.Thread(target=pipeline.run, args=(stop,))
    runner.start()
    try:
        deadline = time.monotonic() + 60
        # wait until the first 5 minutes are emitted and their state forgotten
        while time.monotonic() < deadline and pipeline.counters.windows < 9:
            time.sleep(0.02)
        source.append("a", late_lines)
        while time.monotonic() < deadline and pipeline.counters.late < 1:
            time.sleep(0.02)
    finally:
        stop.set()
        runner.join()
    assert pipeline.counters.late == 1
    recomputed = pipeline.metrics.write_seconds.labels("recompute")
    assert recomputed._sum.get() > 0
    assert_same_windows(store_windows(tmp_path), batch_windows(early + late_lines))


def test_restart_resumes_from_the_checkpoint_without_loss_or_repeat(
    tmp_path: Path,
) -> None:
    lines = traffic(2000)
    first = MemorySource({"a": lines[:900]}, batch_lines=64)
    follow(first, config_for(tmp_path))
    checkpoint = load_checkpoint(tmp_path)
    assert checkpoint is not None
    second = MemorySource({"a": lines}, positions=checkpoint.positions, batch_lines=64)
    follow(second, config_for(tmp_path))
    events = lake(tmp_path)
    assert events.height == 2000
    assert events.select("source", "offset").unique().height == 2000
    assert_same_windows(store_windows(tmp_path), batch_windows(lines))


def test_recovery_deletes_files_written_after_the_checkpoint(tmp_path: Path) -> None:
    lines = traffic(600)
    follow(MemorySource({"a": lines}, batch_lines=64), config_for(tmp_path))
    checkpoint = load_checkpoint(tmp_path)
    assert checkpoint is not None
    end = checkpoint.streams["a"].end
    partition = next((tmp_path / "events").glob("date=*/hour=*"))
    orphan = partition / f"a-{end:016d}-{end + 500:016d}.parquet"
    orphan.write_bytes(b"not really parquet")
    temporary = partition / ".x.parquet.123-abcd.tmp"
    temporary.write_bytes(b"")
    batch_file = partition / f"feedface-{0:012d}-{100:012d}.parquet"
    batch_file.write_bytes(b"")
    kept = sorted(p for p in partition.glob("a-*.parquet") if p != orphan)
    recover(tmp_path)
    assert not orphan.exists() and not temporary.exists()
    assert batch_file.exists()  # a batch run's file is not the stream's
    assert sorted(partition.glob("a-*.parquet")) == kept


def test_a_slow_sink_slows_the_reader_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from logweir.pipeline import stream
    from logweir.sinks.lake import LakeWriter

    lines = traffic(12000, step_s=0.05)
    source = MemorySource({"a": lines}, batch_lines=100)
    write = LakeWriter.write
    ahead: list[int] = []

    def slow_write(self: LakeWriter, events: pl.DataFrame, name: str) -> Any:
        time.sleep(0.1)
        # bytes handed out by the source but not yet on disk, right now
        ahead.append(source.positions()["a"] - int(name.rsplit("-", 1)[1]))
        return write(self, events, name)

    monkeypatch.setattr(LakeWriter, "write", slow_write)
    config = config_for(tmp_path, commit_interval="20ms", commit_size="4KiB")
    follow(source, config)
    assert lake(tmp_path).height == 12000
    # Held at most: the read queue's polls, and units in flight (one being
    # written, the queued ones, one waiting to be queued, one being built),
    # each gathered from at most a full read queue and one more poll.
    polls_per_unit = stream.READ_QUEUE_POLLS + 1
    units = stream.WRITE_QUEUE_UNITS + 3
    polls = stream.READ_QUEUE_POLLS + units * polls_per_unit
    bound = polls * 100 * max(len(text) + 1 for text in lines)
    total = sum(len(text) + 1 for text in lines)
    assert bound < total / 2  # the bound says something
    assert max(ahead) <= bound
    assert len(ahead) > 5  # the writer did fall behind, many times


def test_a_revoke_commits_everything_handed_out_before_it_returns(
    tmp_path: Path,
) -> None:
    source = MemorySource({"a": traffic(2000)}, batch_lines=50)
    source.revoke_at_poll = 12
    config = config_for(tmp_path, commit_interval="1h", commit_size="1GiB")
    follow(source, config)
    assert source.handed_out_at_revoke is not None
    # nothing would have been committed yet but for the revoke
    assert source.committed_at_revoke[-1] == source.handed_out_at_revoke
    assert lake(tmp_path).height == 2000


def test_the_checkpoint_refuses_other_window_settings(tmp_path: Path) -> None:
    follow(MemorySource({"a": traffic(100)}), config_for(tmp_path))
    checkpoint = recover(tmp_path)
    with pytest.raises(Exception, match="--windows: the checkpoint"):
        StreamPipeline(
            MemorySource({"a": []}),
            config_for(tmp_path, windows="1m,1h"),
            checkpoint=checkpoint,
        )


def test_format_is_detected_from_the_first_lines(tmp_path: Path) -> None:
    lines = traffic(300)
    pipeline = follow(
        MemorySource({"a": lines}, batch_lines=30), config_for(tmp_path, format=None)
    )
    assert pipeline.format == "combined"
    assert pipeline.counters.events == 300
    checkpoint = load_checkpoint(tmp_path)
    assert checkpoint is not None and checkpoint.format == "combined"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("50ms", 0.05), ("1.5s", 1.5), ("2m", 120.0), ("3", 3.0), ("1h", 3600.0)],
)
def test_durations_in_seconds(text: str, seconds: float) -> None:
    assert parse_seconds(text) == pytest.approx(seconds)


def test_a_bad_duration_names_the_flag() -> None:
    with pytest.raises(Exception, match=r'--commit-interval: "soon" is not a duration'):
        load_config(None, {"commit_interval": "soon"})


@pytest.mark.parametrize(("longest", "expected_s"), [("1s", 1.0), ("20ms", 0.02)])
def test_the_publish_interval_stretches_at_low_rates_up_to_its_cap(
    tmp_path: Path, longest: str, expected_s: float
) -> None:
    """100 lines in a 20 ms cycle (5K lines/s) whose publish took 50 ms of
    CPU: at that rate the budget per line leaves nothing beyond the costs
    that come every second, so the interval is the cap."""
    config = config_for(tmp_path / "out", max_publish_interval=longest)
    pipeline = StreamPipeline(MemorySource({}), config, checkpoint=None)
    try:
        pipeline._rate, pipeline._rate_seen = 5_000.0, True  # earlier cycles
        pipeline._cycle_lines = 100
        pipeline._cycle_read_at = time.monotonic()
        assert pipeline._next_interval_s(0.02, 0.05) == pytest.approx(expected_s)
    finally:
        pipeline.store.close()


class _WaitingSource(MemorySource):
    """Each poll waits a moment for its lines, as a followed file at a
    trickle does (so that the reader pauses between polls)."""

    def poll(self, timeout_s: float) -> list[SourceBatch]:
        time.sleep(0.005)
        return super().poll(timeout_s)


def test_a_pausing_reader_is_not_taken_for_an_idle_source(tmp_path: Path) -> None:
    """At a trickle the reader pauses between polls (up to half the publish
    interval); an idle time shorter than that pause must not end the run
    while lines are still waiting."""
    source = _WaitingSource({"a": traffic(1000)}, batch_lines=20)
    config = config_for(tmp_path, exit_when_idle="50ms", max_publish_interval="300ms")
    pipeline = follow(source, config)
    assert pipeline.counters.lines == 1000


def test_the_first_cycle_with_lines_keeps_the_base_interval(tmp_path: Path) -> None:
    """The first lines of a run (a few, and a publish slowed by first-time
    costs) do not stretch the interval; the next cycle's rate does."""
    config = config_for(tmp_path / "out")
    pipeline = StreamPipeline(MemorySource({}), config, checkpoint=None)
    try:
        pipeline._cycle_lines = 6
        pipeline._cycle_read_at = time.monotonic()
        base = config.publish_interval_s
        assert pipeline._next_interval_s(0.05, 0.1) == pytest.approx(base)
        pipeline._cycle_lines = 6
        pipeline._cycle_read_at = time.monotonic()
        assert pipeline._next_interval_s(0.05, 0.1) > 0.5
    finally:
        pipeline.store.close()


def _polled(lines: int) -> Any:
    from logweir.pipeline.stream import _Polled
    from logweir.sources.stream import SourceBatch

    batch = LineBatch.from_strings("mem:a", ["x"] * lines)
    return _Polled([SourceBatch("a", 0, 2 * lines, batch)], {"a": 2 * lines}, 0.0)


@pytest.mark.parametrize(("queued", "waits"), [(10, True), (20_000, False)])
def test_a_burst_after_a_trickle_is_not_held_for_the_stretched_interval(
    tmp_path: Path, queued: int, waits: bool
) -> None:
    """After a trickle the interval has stretched to its cap (1 s); lines
    then coming far faster are taken after the base interval (50 ms)."""
    pipeline = StreamPipeline(MemorySource({}), config_for(tmp_path / "out"), None)
    try:
        pipeline._interval_s, pipeline._rate = 1.0, 5.0
        pipeline._last_publish = time.monotonic()
        for _ in range(4):
            pipeline._read_queue.put(_polled(queued // 4))
        started = time.monotonic()
        polls = pipeline._gather(_polled(1))
        waited = time.monotonic() - started
    finally:
        pipeline.store.close()
    assert len(polls) == 5
    if waits:
        assert waited >= 0.9  # a trickle still waits for its interval
    else:
        assert waited < 0.5, waited
    # either way the lines taken are published at once, not an interval later
    assert pipeline._publish_due
