"""The JSON API over a real run's output, through a real server."""

from __future__ import annotations

import json
from datetime import datetime

import httpx
from prometheus_client.parser import text_string_to_metric_families
from serve_helpers import BatchRun, Served


def test_health_says_what_is_served(served: Served) -> None:
    answer = served.client.get("/api/health")
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ok",
        "version": answer.json()["version"],
        "live": False,
        "sql_enabled": True,
    }


def test_sizes_list_the_run_windows(served: Served) -> None:
    sizes = served.client.get("/api/sizes").json()
    assert [(s["size_s"], s["step_s"]) for s in sizes] == [
        (60, 60),
        (300, 300),
        (3600, 3600),
    ]
    assert "all" in sizes[0]["dimensions"]


def test_window_requests_add_up_to_the_lake(
    served: Served, batch_run: BatchRun
) -> None:
    rows = served.client.get("/api/windows", params={"size_s": 60}).json()["rows"]
    (lake,) = batch_run.query("SELECT count(*) AS n FROM events WHERE ts IS NOT NULL")
    assert sum(row["requests"] for row in rows) == lake["n"]
    assert all(row["dimension"] == "all" and row["key"] == "" for row in rows)
    starts = [row["window_start"] for row in rows]
    assert starts == sorted(starts)


def test_windows_by_dimension_and_time_range(
    served: Served, batch_run: BatchRun
) -> None:
    params = {
        "size_s": 60,
        "dimension": "status_class",
        "key": "4xx",
        "start": "2024-06-03T08:05:00Z",
        "end": "2024-06-03T08:10:00Z",
    }
    rows = served.client.get("/api/windows", params=params).json()["rows"]
    assert [row["window_start"] for row in rows] == [
        f"2024-06-03T08:0{minute}:00+00:00" for minute in range(5, 10)
    ]
    (lake,) = batch_run.query(
        "SELECT count(*) AS n FROM events WHERE status BETWEEN 400 AND 499 "
        "AND ts >= '2024-06-03 08:05:00+00' AND ts < '2024-06-03 08:10:00+00'"
    )
    assert sum(row["requests"] for row in rows) == lake["n"]


def test_windows_limit_keeps_the_latest(served: Served) -> None:
    every = served.client.get("/api/windows").json()["rows"]
    latest = served.client.get("/api/windows", params={"limit": 3}).json()["rows"]
    assert latest == every[-3:]


def test_end_before_start_is_a_clear_400(served: Served) -> None:
    answer = served.client.get(
        "/api/windows",
        params={"start": "2024-06-03T09:00:00Z", "end": "2024-06-03T08:00:00Z"},
    )
    assert answer.status_code == 400
    assert answer.json() == {"detail": "end is before start"}


def test_bad_parameters_are_422(served: Served) -> None:
    assert served.client.get("/api/windows", params={"size_s": 0}).status_code == 422
    assert served.client.get("/api/top", params={"kind": "hosts"}).status_code == 422
    answer = served.client.get("/api/alerts", params={"since": "yesterday"})
    assert answer.status_code == 422


def test_top_paths_are_lower_bounds_of_the_exact_counts(
    served: Served, batch_run: BatchRun
) -> None:
    top = served.client.get("/api/top", params={"kind": "paths", "n": 5}).json()
    assert top["exact"] is False and top["windows"] > 0
    exact = {
        row["path"]: row["n"]
        for row in batch_run.query("SELECT path, count(*) AS n FROM events GROUP BY 1")
    }
    heaviest = max(exact, key=lambda path: exact[path])
    assert top["entries"][0]["key"] == heaviest
    for entry in top["entries"]:
        assert 0 < entry["count"] <= exact[entry["key"]]


def test_the_injected_spike_is_an_alert(served: Served, batch_run: BatchRun) -> None:
    alerts = served.client.get("/api/alerts").json()
    spike = next(i for i in batch_run.incidents if i["kind"] == "traffic_spike")
    started = datetime.fromisoformat(spike["start"])
    found = [a for a in alerts if a["rule"] == "traffic_spike"]
    assert found, alerts
    assert datetime.fromisoformat(found[0]["start"]) == started
    assert isinstance(found[0]["detail"], dict)
    resolved = served.client.get("/api/alerts", params={"status": "resolved"}).json()
    assert {a["id"] for a in resolved} <= {a["id"] for a in alerts}


def test_alert_stream_sends_every_incident_as_an_event(served: Served) -> None:
    expected = {a["id"] for a in served.client.get("/api/alerts").json()}
    assert expected
    seen: dict[str, dict[str, object]] = {}
    with (
        httpx.Client(base_url=served.url, timeout=10) as client,
        client.stream("GET", "/api/alerts/stream") as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        event: dict[str, str] = {}
        for line in stream.iter_lines():
            if line.startswith(("id: ", "event: ", "data: ")):
                name, _, value = line.partition(": ")
                event[name] = value
            elif not line and "data" in event:
                assert event["event"] == "alert"
                seen[event["id"]] = json.loads(event["data"])
                event = {}
                if set(seen) == expected:
                    break
    assert set(seen) == expected


def test_metrics_parse_as_prometheus_text(served: Served) -> None:
    answer = served.client.get("/metrics")
    assert answer.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    assert {"logweir_lines_read", "logweir_alerts_fired"} <= set(families)
    # `logweir serve` over a finished run has processed nothing itself
    assert all(s.value == 0 for s in families["logweir_lines_read"].samples)


def test_openapi_is_served_and_docs_pages_are_off(served: Served) -> None:
    spec = served.client.get("/openapi.json").json()
    assert {"/api/windows", "/api/top", "/api/alerts", "/api/sql"} <= set(spec["paths"])
    assert served.client.get("/docs").status_code == 404


def test_dashboard_page_and_its_assets(served: Served) -> None:
    page = served.client.get("/")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert 'id="requests-total"' in page.text
    assert "http://" not in page.text and "https://" not in page.text
    for asset in ("static/dashboard.js", "static/dashboard.css"):
        assert served.client.get("/" + asset).status_code == 200
    panels = served.client.get("/dashboard/panels", params={"points": 5})
    assert panels.status_code == 200 and "<svg" in panels.text
