"""Series from window rows: metrics, top lists, bounded per-key rows."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from logweir.detectors.series import Row, TopEntry, parse_top, window_views

T0 = datetime(2024, 5, 1, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("request_rate", 20.0),
        ("requests", 1200.0),
        ("share_4xx", 0.05),
        ("share_5xx", 0.01),
        ("byte_rate", 1000.0),
        ("p95_ms", 250.0),
        ("unique_clients", 90.0),
    ],
)
def test_metrics_of_a_row(metric: str, expected: float) -> None:
    row = Row(
        requests=1200,
        bytes=60_000,
        status_4xx=60,
        status_5xx=12,
        duration_p95_ms=250.0,
        unique_clients=90,
    )
    assert row.metric(metric, 60) == pytest.approx(expected)  # type: ignore[arg-type]


def test_a_share_of_no_requests_is_unknown() -> None:
    assert Row(requests=0, status_5xx=0).metric("share_5xx", 60) is None


def test_top_lists_parse_and_bad_text_is_logged(caplog) -> None:
    assert parse_top('[{"key": "a", "count": 3}]') == (TopEntry("a", 3),)
    assert parse_top(None) == ()
    with caplog.at_level(logging.WARNING):
        assert parse_top("[{oops") == ()
    assert "unreadable top list" in caplog.text


def test_impossible_top_counts_are_dropped(window_frame, caplog, monkeypatch) -> None:
    monkeypatch.setattr("logweir.detectors.series._IMPOSSIBLE_SEEN", [])
    frame = window_frame(
        [
            {
                "start": T0,
                "requests": 100,
                "top_clients": [("1.1.1.1", 2**64 - 1), ("2.2.2.2", 40)],
            }
        ]
    )
    with caplog.at_level(logging.WARNING):
        (view,) = window_views(frame, 60)
        list(window_views(frame, 60))
    assert view.top("top_clients") == (TopEntry("2.2.2.2", 40),)
    # logged once at WARNING, not once per window
    assert caplog.text.count("count more than the row's 100 requests") == 1


def test_per_key_rows_are_bounded(window_frame) -> None:
    rows = [{"start": T0, "requests": 1000}]
    rows += [
        {"start": T0, "dimension": "path", "key": f"/p{i}", "requests": i}
        for i in range(1, 31)
    ]
    (view,) = window_views(window_frame(rows), 60, min_requests=5, top_k=10)
    kept = view.dimensions["path"]
    assert list(kept) == [f"/p{i}" for i in range(30, 20, -1)]


def test_views_come_in_time_order_for_one_window_size(window_frame) -> None:
    later = {"start": T0.replace(minute=5), "requests": 2}
    earlier = {"start": T0, "requests": 1}
    views = list(window_views(window_frame([later, earlier]), 60))
    assert [v.overall.requests for v in views] == [1.0, 2.0]
    assert list(window_views(window_frame([earlier]), 300)) == []
