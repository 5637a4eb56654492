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


def _scrape(url: str) -> dict[str, list[Any]]:
    """``/metrics`` parsed with prometheus_client's own parser: every sample
    by its name (``_count``, ``_sum``, ``_bucket`` suffixes included)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url + "metrics", timeout=10).text
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


@pytest.mark.slow
def test_scraped_metrics_break_counts_down_by_source_reason_and_sink(
    tmp_path: Path,
) -> None:
    good = [
        f"203.0.113.{i % 200} - - [03/Jun/2024:08:{i // 60:02d}:{i % 60:02d} +0000] "
        f'"GET /m/{i % 7} HTTP/1.1" 200 {100 + i} "-" "probe/2.0" {900 + i}\n'
        for i in range(600)
    ]
    bad = [
        "not a log line at all\n",  # does not match
        # a status that is no number, then a day February does not have
        '203.0.113.9 - - [03/Jun/2024:08:02:00 +0000] "GET / HTTP/1.1" 2x0 5 '
        '"-" "p" 1\n',
        '203.0.113.9 - - [31/Feb/2024:08:02:00 +0000] "GET / HTTP/1.1" 200 5 '
        '"-" "p" 1\n',
    ] * 4
    lines = good[:300] + bad + good[300:]
    with following(tmp_path) as run:
        with run.followed.open("a") as sink:
            sink.writelines(lines)
        wait_for(
            "every line read",
            lambda: (
                metric_totals(run.url).get("logweir_lines_read_total") == len(lines)
            ),
        )
        samples = wait_for(
            "the lake, rejects and checkpoint written",
            lambda: _committed(run.url, ("lake", "rejects", "checkpoint")),
        )
    summary = run.summary
    # a followed file is named with its identity: PATH#fingerprint
    (source,) = {s.labels["source"] for s in samples["logweir_lines_read_total"]}
    assert source.startswith(f"{run.followed}#")
    read = {s.labels["source"]: s.value for s in samples["logweir_lines_read_total"]}
    assert read == {source: len(lines)}
    parsed = samples["logweir_lines_parsed_total"]
    assert [(s.labels["source"], s.value) for s in parsed] == [(source, 600.0)]
    size = {s.labels["source"]: s.value for s in samples["logweir_bytes_read_total"]}
    assert size == {source: run.followed.stat().st_size}
    rejected = {
        s.labels["reason"]: s.value
        for s in samples["logweir_lines_rejected_total"]
        if s.labels["source"] == source
    }
    assert rejected == {k: float(v) for k, v in summary["rejects_by_reason"].items()}
    assert sum(rejected.values()) == len(bad) == summary["rejects"]
    assert len(rejected) == 3, rejected  # three reasons, four lines each
    # histograms: counts add up over their buckets, every batch timed
    batches = samples["logweir_batch_seconds_count"][0].value
    assert batches >= 1
    buckets = [s.value for s in samples["logweir_batch_seconds_bucket"]]
    assert buckets == sorted(buckets) and buckets[-1] == batches
    assert samples["logweir_batch_seconds_sum"][0].value > 0
    sinks = {s.labels["sink"]: s.value for s in samples["logweir_write_seconds_count"]}
    assert {"lake", "rejects", "checkpoint", "store"} <= set(sinks), sinks
    assert samples["logweir_checkpoint_age_seconds"][0].value < 30
    queues = {s.labels["queue"] for s in samples["logweir_queue_depth"]}
    assert queues, "queue depths are exported"
    assert all(s.value >= 0 for s in samples["logweir_queue_depth"])
    assert samples["logweir_watermark_lag_seconds"][0].value > 0


def _committed(url: str, sinks: tuple[str, ...]) -> dict[str, list[Any]] | None:
    """The scraped samples once each of ``sinks`` has written at least once."""
    samples = _scrape(url)
    counts = {
        s.labels["sink"]: s.value
        for s in samples.get("logweir_write_seconds_count", [])
    }
    return samples if all(counts.get(sink, 0) >= 1 for sink in sinks) else None
