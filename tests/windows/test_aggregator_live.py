"""WindowAggregator's follow-mode views: peek (open windows) and amend (late).

Each is checked against the batch reference: one aggregator that saw
every event at once and emitted everything with finish().
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from logweir.schema import EVENT_SCHEMA
from logweir.windows import WindowAggregator

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
KEY = ["window_size_s", "window_step_s", "window_start", "dimension", "key"]


def events(seconds: list[float], status: int = 200) -> pl.DataFrame:
    rows = {
        "ts": [T0 + timedelta(seconds=s) for s in seconds],
        "client_ip": [f"10.0.0.{int(s) % 9}" for s in seconds],
        "path": [f"/p{int(s) % 4}" for s in seconds],
        "status": [status] * len(seconds),
        "bytes": [100] * len(seconds),
        "method": ["GET"] * len(seconds),
        "duration_ms": [float(int(s) % 50) for s in seconds],
    }
    frame = pl.DataFrame(rows)
    return frame.select(
        [
            frame.get_column(name).cast(dtype)
            if name in frame.columns
            else pl.lit(None, dtype=dtype).alias(name)
            for name, dtype in EVENT_SCHEMA.items()
        ]
    )


def reference(frames: list[pl.DataFrame], windows: str) -> pl.DataFrame:
    aggregator = WindowAggregator(windows, lateness_s=60)
    aggregator.update(pl.concat(frames))
    return aggregator.finish().sort(KEY)


def rows_of(rows: pl.DataFrame, want: pl.DataFrame) -> pl.DataFrame:
    """The rows of ``want`` for the windows ``rows`` holds."""
    windows = rows.select("window_size_s", "window_step_s", "window_start").unique()
    return want.join(windows, on=list(windows.columns), how="semi").sort(KEY)


def test_peek_forms_only_the_windows_changed_since_the_last_peek() -> None:
    aggregator = WindowAggregator("1m,5m", lateness_s=60)
    first = events([1, 2, 70])
    aggregator.update(first)
    rows = aggregator.peek()
    starts = set(rows.get_column("window_start").to_list())
    assert starts == {T0, T0 + timedelta(minutes=1)}
    assert aggregator.peek().is_empty()
    second = events([75])
    aggregator.update(second)
    rows = aggregator.peek()
    # the minute of second 75 and the 5 minutes around it; not minute 0
    assert set(zip(rows["window_size_s"], rows["window_start"], strict=True)) == {
        (60, T0 + timedelta(minutes=1)),
        (300, T0),
    }
    assert rows.sort(KEY).equals(rows_of(rows, reference([first, second], "1m,5m")))


def test_every_peek_equals_a_batch_run_over_the_events_so_far() -> None:
    # Follow mode peeks many times a second; new cells (a status class or
    # method first seen) arrive between peeks, and hopping windows share
    # panes. Each peek must hold exactly the rows a batch run over every
    # event so far gives for the windows it forms.
    windows = "1m,5m,10m/1m"
    aggregator = WindowAggregator(windows, lateness_s=600)
    frames: list[pl.DataFrame] = []
    for step in range(8):
        seconds = [step * 40 + offset for offset in (0.5, 3, 17, 29)]
        frame = events(seconds, status=(200, 404, 503, 301)[step % 4])
        if step % 3 == 2:
            frame = frame.with_columns(method=pl.lit("POST"))
        frames.append(frame)
        aggregator.update(frame)
        rows = aggregator.peek()
        assert not rows.is_empty()
        assert rows.sort(KEY).equals(rows_of(rows, reference(frames, windows)))


def test_peek_up_to_a_size_leaves_longer_windows_for_later() -> None:
    aggregator = WindowAggregator("1m,1h", lateness_s=60)
    aggregator.update(events([5, 6]))
    short = aggregator.peek(longest_s=60)
    assert set(short.get_column("window_size_s").to_list()) == {60}
    rest = aggregator.peek()
    assert set(rest.get_column("window_size_s").to_list()) == {3600}


def test_peek_skips_emitted_windows() -> None:
    aggregator = WindowAggregator("1m", lateness_s=0)
    aggregator.update(events([5, 65, 130]))
    aggregator.close()
    rows = aggregator.peek()
    assert set(rows.get_column("window_start").to_list()) == {T0 + timedelta(minutes=2)}


@pytest.mark.parametrize(
    ("windows", "late_s", "forgotten"),
    [
        # the 1 h window holds every pane: all emitted windows re-formed
        ("1m,5m,1h", [10, 61, 62], 0),
        # minute 11 is held by open 10 min windows, but the emitted ones
        # starting at minutes 2 and 3 lost their first panes
        ("10m/1m,1m", [700, 701], 2),
    ],
)
def test_amend_counts_late_events_exactly_where_state_is_held(
    windows: str, late_s: list[float], forgotten: int
) -> None:
    aggregator = WindowAggregator(windows, lateness_s=60)
    on_time = events([float(s) for s in range(0, 900, 3)])
    aggregator.update(on_time)
    emitted = aggregator.close()
    assert not emitted.is_empty()
    late = events(late_s, status=503)
    came_back = aggregator.update(late)
    assert came_back.height == len(late_s)
    rows, stale = aggregator.amend(came_back)
    assert stale.height == forgotten
    want = reference([on_time, late], windows)
    assert not rows.is_empty()
    assert rows.sort(KEY).equals(rows_of(rows, want))
    # open windows include the late events when they are emitted at last
    rest = aggregator.finish()
    assert rest.sort(KEY).equals(rows_of(rest, want))


def test_amend_names_emitted_windows_whose_state_is_forgotten() -> None:
    aggregator = WindowAggregator("1m,5m", lateness_s=0)
    on_time = events([float(s) for s in range(0, 900, 5)])
    aggregator.update(on_time)
    aggregator.close()
    came_back = aggregator.update(events([12], status=500))
    rows, stale = aggregator.amend(came_back)
    assert rows.is_empty()
    assert sorted(zip(stale["size_s"], stale["start_s"], strict=True)) == [
        (60, int(T0.timestamp())),
        (300, int(T0.timestamp())),
    ]


def test_a_restored_state_forms_every_held_window_again() -> None:
    aggregator = WindowAggregator("1m,5m", lateness_s=60)
    aggregator.update(events([1, 70, 200]))
    aggregator.peek()
    restored = WindowAggregator.from_bytes(aggregator.to_bytes())
    assert restored.peek().is_empty()  # nothing counted since it was made
    restored.mark_all_changed()
    again = restored.peek()
    assert again.sort(KEY).equals(aggregator.finish().sort(KEY))
