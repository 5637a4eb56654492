"""``logweir run --follow --serve``: /metrics and the live alert stream.

The run follows a file that grows while the test reads the server of the
same process; at the end its JSON summary and its lake must agree with
what ``/metrics`` counted.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_helpers import feed, following, metric_totals, split_log, wait_for

from logweir.pipeline.query import run_query


def _listen(url: str, events: list[dict[str, Any]], stop: threading.Event) -> None:
    """Collect the alert stream's events until ``stop`` (or the server goes)."""
    try:
        with (
            httpx.Client(timeout=httpx.Timeout(10, read=None)) as client,
            client.stream("GET", url + "api/alerts/stream") as stream,
        ):
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                if stop.is_set():
                    return
    except httpx.HTTPError:
        return


def _windowed_requests(url: str) -> int:
    rows = httpx.get(url + "api/windows", params={"size_s": 60}, timeout=10).json()
    return sum(row["requests"] for row in rows["rows"])


@pytest.mark.slow
def test_metrics_count_what_was_processed_and_alerts_stream_live(
    generated_log: Path, tmp_path: Path
) -> None:
    first, second, total_lines = split_log(generated_log, tmp_path)
    events: list[dict[str, Any]] = []
    stop = threading.Event()
    with following(tmp_path) as run:
        assert httpx.get(run.url + "api/health").json()["live"] is True
        listener = threading.Thread(target=_listen, args=(run.url, events, stop))
        listener.start()
        feed(first, run.followed, 3, 0.3)
        feed(second, run.followed, 3, 0.3)
        spike = wait_for(
            "the spike on the alert stream",
            lambda: next((e for e in events if e["rule"] == "traffic_spike"), None),
        )
        assert spike["start"] == "2024-06-03T08:12:00+00:00"
        metrics = wait_for(
            "every line counted",
            lambda: _when_all_read(run.url, total_lines),
        )
        # open windows reach the store within a publish interval
        wait_for(
            "the windows to hold every parsed line",
            lambda: (
                _windowed_requests(run.url) == metrics["logweir_lines_parsed_total"]
            ),
        )
        stop.set()
    listener.join(timeout=10)
    summary = run.summary
    assert metrics["logweir_lines_read_total"] == summary["lines"] == total_lines
    assert metrics["logweir_lines_parsed_total"] == summary["events"]
    assert metrics["logweir_lines_rejected_total"] == summary["rejects"]
    assert metrics["logweir_bytes_read_total"] == run.followed.stat().st_size
    assert metrics["logweir_alerts_fired_total"] >= 1
    (lake,) = run_query(run.out, "SELECT count(*) AS n FROM events").to_dicts()
    assert lake["n"] == summary["events"]


def _when_all_read(url: str, total_lines: int) -> dict[str, float] | None:
    totals = metric_totals(url)
    if totals.get("logweir_lines_read_total") != total_lines:
        return None
    return totals
