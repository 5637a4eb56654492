"""The window aggregator against a slow reference, and its streaming rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from window_reference import EPOCH_2024, RefGroup, make_events, nearest_rank, reference

from logweir.errors import ConfigError, SourceError
from logweir.schema import WINDOW_SCHEMA
from logweir.windows import WindowAggregator, WindowSpec
from logweir.windows.distinct import relative_error
from logweir.windows.quantiles import ALPHA, MIN_MS, QUANTILES


@pytest.fixture()
def events() -> pl.DataFrame:
    return make_events(3000)


SPECS = [(60, 60), (300, 300), (120, 60)]
DIMENSIONS = ["status_class", "method", "host"]
STATUS = {1: "status_1xx", 2: "status_2xx", 3: "status_3xx", 4: "status_4xx"}
STATUS[5] = "status_5xx"


def aggregator(**options: object) -> WindowAggregator:
    settings: dict[str, object] = {"dimensions": DIMENSIONS, "lateness_s": 60}
    settings.update(options)
    return WindowAggregator(
        [WindowSpec(size, step) for size, step in SPECS],
        **settings,  # type: ignore[arg-type]
    )


def run(events: pl.DataFrame, batch: int = 700, **options: object) -> pl.DataFrame:
    windows = aggregator(**options)
    for start in range(0, events.height, batch):
        assert windows.update(events.slice(start, batch)).is_empty()
    return windows.finish()


def keyed(rows: pl.DataFrame) -> dict[tuple[object, ...], dict[str, object]]:
    return {
        (
            row["window_size_s"],
            row["window_step_s"],
            row["window_start"],
            row["dimension"],
            row["key"],
        ): row
        for row in rows.iter_rows(named=True)
    }


def test_rows_follow_window_schema(events: pl.DataFrame) -> None:
    rows = run(events)
    assert rows.schema == pl.Schema(WINDOW_SCHEMA)
    assert (rows["window_end"] - rows["window_start"]).dt.total_seconds().to_list() == (
        rows["window_size_s"].to_list()
    )


def test_counts_equal_the_reference_exactly(events: pl.DataFrame) -> None:
    rows = keyed(run(events))
    expected = reference(events, SPECS, DIMENSIONS)
    assert set(rows) == set(expected)
    for key, group in expected.items():
        row = rows[key]
        assert row["requests"] == group.requests, key
        assert row["bytes"] == group.bytes, key
        for klass, column in STATUS.items():
            assert row[column] == group.statuses[klass], (key, column)
        classified = sum(group.statuses.values())
        rate = group.statuses[5] / classified if classified else None
        assert row["error_rate"] == rate, key


def test_percentiles_are_within_alpha_of_the_reference(events: pl.DataFrame) -> None:
    rows = keyed(run(events))
    for key, group in reference(events, SPECS, DIMENSIONS).items():
        for column, parts in QUANTILES:
            reported = rows[key][column]
            if not group.durations:
                assert reported is None, key
                continue
            true = nearest_rank(group.durations, parts)
            if true < MIN_MS:
                assert reported == 0.0, key
            else:
                assert isinstance(reported, float), (key, column)
                assert abs(reported - true) <= ALPHA * true * (1 + 1e-9), (key, column)


def test_unique_clients_are_within_the_hll_bound(events: pl.DataFrame) -> None:
    rows = keyed(run(events))
    bound = relative_error(3)
    for key, group in reference(events, SPECS, DIMENSIONS).items():
        true = len(group.clients)
        reported = rows[key]["unique_clients"]
        assert isinstance(reported, int | float), key
        assert abs(reported - true) <= max(1.0, bound * true), key


def _assert_top(listed: str | None, counts: dict[str, int], top_n: int) -> None:
    """A top list with exact counts: the right counts, most frequent first."""
    if not counts:
        assert listed is None
        return
    entries = json.loads(listed or "[]")
    expected = sorted(counts.values(), reverse=True)[:top_n]
    assert [entry["count"] for entry in entries] == expected
    for entry in entries:
        assert counts[entry["key"]] == entry["count"]
    pairs = [(-entry["count"], entry["key"]) for entry in entries]
    assert pairs == sorted(pairs)


def test_top_lists_are_exact_below_capacity(events: pl.DataFrame) -> None:
    rows = keyed(run(events, top_n=5))
    columns = {"path": "top_paths", "client_ip": "top_clients"}
    columns["user_agent"] = "top_user_agents"
    for key, group in reference(events, SPECS, DIMENSIONS).items():
        row = rows[key]
        for item, column in columns.items():
            if key[3] in ("all", "status_class"):
                listed = row[column]
                assert listed is None or isinstance(listed, str), (key, column)
                _assert_top(listed, group.items[item], 5)
            else:
                assert row[column] is None, (key, column)


def test_every_event_lands_in_size_over_step_hopping_windows() -> None:
    events = make_events(500, span_s=600)
    windows = WindowAggregator("10m/2m", dimensions=[])
    windows.update(events)
    rows = windows.finish()
    assert rows["requests"].sum() == 5 * events.height
    starts = rows["window_start"].dt.epoch("s")
    assert (starts % 120 == 0).all()


def test_merge_of_split_inputs_equals_one_aggregator(events: pl.DataFrame) -> None:
    whole = run(events)
    parts = [aggregator() for _ in range(3)]
    labels = np.random.default_rng(3).integers(0, 3, events.height)
    for index, part in enumerate(parts):
        part.update(events.filter(pl.Series(labels == index)))
    merged = parts[0]
    merged.merge(parts[1])
    merged.merge(parts[2])
    assert_frame_equal(merged.finish(), whole)


def test_batch_boundaries_do_not_change_the_rows(events: pl.DataFrame) -> None:
    assert_frame_equal(run(events, batch=97), run(events, batch=3000))


def test_state_survives_a_round_trip_through_bytes(events: pl.DataFrame) -> None:
    first = aggregator()
    first.update(events.slice(0, 1500))
    restored = WindowAggregator.from_bytes(first.to_bytes())
    restored.update(events.slice(1500))
    assert_frame_equal(restored.finish(), run(events))


def test_compacted_parts_merge_as_their_bytes_do(events: pl.DataFrame) -> None:
    # What one worker does (merging its chunks' aggregators themselves) must
    # give what two workers do (merging them through bytes), even where the
    # Misra-Gries cut of small summaries acts.
    def parts() -> list[WindowAggregator]:
        made = [aggregator(top_n=2, top_capacity=3, pending_rows=50) for _ in range(3)]
        for index, part in enumerate(made):
            chunk = events.slice(index * 1000, 1000)
            for start in range(0, chunk.height, 150):
                part.update(chunk.slice(start, 150))
        return made

    def merged(pieces: list[WindowAggregator]) -> pl.DataFrame:
        first, *rest = pieces
        for piece in rest:
            first.merge(piece)
        return first.finish()

    through_bytes = [WindowAggregator.from_bytes(part.to_bytes()) for part in parts()]
    compacted = parts()
    for part in compacted:
        part.compact()
    expected = merged(through_bytes)
    assert expected["top_paths"].drop_nulls().len() > 0
    assert_frame_equal(merged(compacted), expected)


def test_late_event_goes_to_late_output() -> None:
    events = make_events(400, span_s=600).sort("ts")
    windows = aggregator()
    windows.update(events)
    mark = datetime.fromtimestamp(EPOCH_2024 + 300, UTC)
    closed = windows.close(mark)
    last_end = closed["window_end"].max()
    assert isinstance(last_end, datetime)
    assert last_end <= mark
    old = events.head(3)
    late = windows.update(old)
    assert_frame_equal(late, old)
    assert windows.late_events == 3
    rest = windows.finish()
    first_start = rest["window_start"].min()
    assert isinstance(first_start, datetime)
    assert first_start >= datetime.fromtimestamp(EPOCH_2024 + 240, UTC)
    overall = pl.concat([closed, rest]).filter(
        (pl.col("dimension") == "all") & (pl.col("window_size_s") == 60)
    )
    assert overall["requests"].sum() == events.height


def test_event_in_an_open_window_is_not_late() -> None:
    events = make_events(200, span_s=600).sort("ts")
    windows = WindowAggregator("1m", dimensions=[], lateness_s=0)
    windows.update(events)
    windows.close(datetime.fromtimestamp(EPOCH_2024 + 120, UTC))
    fresh = events.filter(
        pl.col("ts") >= datetime.fromtimestamp(EPOCH_2024 + 120, UTC)
    ).head(1)
    assert windows.update(fresh).is_empty()


def test_close_emits_each_window_once_and_forgets_it() -> None:
    events = make_events(1000, span_s=900)
    windows = aggregator()
    windows.update(events)
    emitted = []
    for minute in range(0, 20, 3):
        emitted.append(
            windows.close(datetime.fromtimestamp(EPOCH_2024 + minute * 60, UTC))
        )
    emitted.append(windows.finish())
    together = pl.concat(emitted)
    assert_frame_equal(
        together.sort(together.columns[:6]), run(events).sort(together.columns[:6])
    )
    assert windows.finish().is_empty()


def test_close_drops_the_state_of_finished_panes() -> None:
    events = make_events(2000, span_s=3600)
    windows = WindowAggregator("1m", dimensions=["status_class"])
    windows.update(events)
    before = windows.memory_bytes()
    windows.close(datetime.fromtimestamp(EPOCH_2024 + 3000, UTC))
    assert windows.memory_bytes() < before / 3


def test_watermark_is_newest_event_minus_lateness() -> None:
    events = make_events(50, span_s=60)
    windows = WindowAggregator("1m", lateness_s=30)
    assert windows.watermark is None
    windows.update(events)
    newest = events["ts"].max()
    assert isinstance(newest, datetime)
    assert windows.watermark == newest - timedelta(seconds=30)


def test_events_without_time_are_counted_but_in_no_window() -> None:
    events = make_events(100).with_columns(
        ts=pl.when(pl.col("offset") < 1000).then(None).otherwise(pl.col("ts"))
    )
    windows = WindowAggregator("1m", dimensions=[])
    assert windows.update(events).is_empty()
    assert windows.untimed_events == 10
    assert windows.finish()["requests"].sum() == 90


def test_heavy_dimension_lists_the_busiest_keys_exactly() -> None:
    events = make_events(2000, span_s=120, paths=30)
    windows = WindowAggregator("2m", dimensions=["path"], top_n=4)
    windows.update(events)
    rows = windows.finish().filter(pl.col("dimension") == "path")
    counts = (
        events.group_by("path").len().sort(["len", "path"], descending=[True, False])
    )
    assert rows["key"].to_list() == counts["path"].head(4).to_list()
    assert rows["requests"].to_list() == counts["len"].head(4).to_list()
    assert rows["duration_p50_ms"].null_count() == 4
    assert rows["top_paths"].null_count() == 4


def test_top_counts_stay_within_the_misra_gries_bound() -> None:
    events = make_events(4000, span_s=60, paths=2000, seed=11)
    windows = WindowAggregator("1m", dimensions=[], top_capacity=20, top_n=10)
    for start in range(0, events.height, 500):
        windows.update(events.slice(start, 500))
    row = windows.finish().row(0, named=True)
    true = dict(events.group_by("path").len().iter_rows())
    slack = events.height / 21
    for entry in json.loads(row["top_paths"]):
        assert true[entry["key"]] - slack <= entry["count"] <= true[entry["key"]]
    heavy = [path for path, count in true.items() if count > slack]
    listed = {entry["key"] for entry in json.loads(row["top_paths"])}
    assert set(sorted(heavy, key=lambda p: -true[p])[:10]) <= listed | set(heavy[10:])


def test_duration_edge_values() -> None:
    frame = make_events(6, span_s=1).with_columns(
        duration_ms=pl.Series([0.0, None, -5.0, float("nan"), 0.0004, 250.0])
    )
    windows = WindowAggregator("1m", dimensions=[])
    windows.update(frame)
    row = windows.finish().row(0, named=True)
    # Counted: 0, 0.0004 (both as zero) and 250; the rest are unusable.
    assert row["duration_p50_ms"] == 0.0
    assert abs(row["duration_p99_ms"] - 250.0) <= ALPHA * 250.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dimensions": ["colour"]}, "unknown window dimension 'colour'"),
        ({"top_n": 0}, "bad top-N settings"),
        ({"top_n": 50, "top_capacity": 20}, "bad top-N settings"),
        ({"lateness_s": -1}, "bad lateness -1s: must not be negative"),
    ],
)
def test_bad_settings_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        WindowAggregator("1m", **options)  # type: ignore[arg-type]


def test_merge_refuses_other_settings() -> None:
    with pytest.raises(ConfigError, match="cannot merge window states"):
        WindowAggregator("1m").merge(WindowAggregator("5m"))


def test_merge_refuses_events_of_emitted_windows() -> None:
    events = make_events(100, span_s=600).sort("ts")
    ahead = WindowAggregator("1m", dimensions=[])
    ahead.update(events)
    ahead.close(datetime.fromtimestamp(EPOCH_2024 + 600, UTC))
    behind = WindowAggregator("1m", dimensions=[])
    behind.update(events)
    with pytest.raises(ConfigError, match="in windows already emitted"):
        ahead.merge(behind)


def test_garbage_state_is_refused_with_a_clear_message() -> None:
    with pytest.raises(SourceError, match="not a logweir window state"):
        WindowAggregator.from_bytes(b"PAR1 not a state")
    state = WindowAggregator("1m").to_bytes()
    with pytest.raises(SourceError, match="truncated"):
        WindowAggregator.from_bytes(state[:-10])


def test_events_batch_without_needed_columns_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"lacks columns \['bytes'"):
        WindowAggregator("1m").update(make_events(3).drop("bytes"))


def test_reference_groups_are_complete() -> None:
    # Guards the reference itself: one event, every row it should make.
    event = make_events(1)
    groups = reference(event, [(60, 60)], ["status_class", "method"])
    assert all(isinstance(group, RefGroup) for group in groups.values())
    assert {key[3] for key in groups} <= {"all", "status_class", "method"}


def test_unique_clients_in_estimation_mode_do_not_depend_on_the_split() -> None:
    events = make_events(20_000, span_s=60, clients=12_000, seed=5)
    whole = WindowAggregator("1m", dimensions=["status_class"])
    whole.update(events)
    parts = [WindowAggregator("1m", dimensions=["status_class"]) for _ in range(2)]
    parts[0].update(events.slice(0, 7_000))
    parts[1].update(events.slice(7_000))
    parts[0].merge(parts[1])
    expected = whole.finish()
    # Top lists over 12 000 clients are cut (Misra–Gries), which depends on
    # the split; everything else must not.
    exact = pl.exclude("top_clients")
    assert_frame_equal(parts[0].finish().select(exact), expected.select(exact))
    true = events["client_ip"].n_unique()
    overall = expected.filter(pl.col("dimension") == "all")["unique_clients"].item()
    assert true > 2_000  # past the exact (coupon) modes of LG_K 12
    assert abs(overall - true) <= relative_error(3) * true
