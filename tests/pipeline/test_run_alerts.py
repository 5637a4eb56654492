"""Alerts of a run reach the store, the report, a JSON lines file and a webhook."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from logweir.gen import DEFAULT_INCIDENTS, generate
from logweir.pipeline.batch import run_batch
from logweir.pipeline.config import RunConfig
from logweir.pipeline.query import run_query

DURATION_FORMAT = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %D'


class _Receiver(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Receiver.bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean


@pytest.fixture
def webhook() -> Iterator[str]:
    _Receiver.bodies = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()
    server.server_close()


def test_every_incident_reaches_every_output(tmp_path: Path, webhook: str) -> None:
    log = tmp_path / "access.log"
    generate(153_000, log, fmt="combined-duration", seed=7, incidents=DEFAULT_INCIDENTS)
    out = tmp_path / "out"
    config = RunConfig.model_validate(
        {
            "inputs": [str(log)],
            "out": out,
            "format": DURATION_FORMAT,
            "workers": 1,
            "alerts": {"jsonl": "alerts.jsonl", "webhook": webhook},
        }
    )
    summary = run_batch(config)
    stored = run_query(out, "SELECT id, rule FROM alerts ORDER BY start")
    assert summary.alerts is not None
    assert (
        summary.alerts.get_column("id").to_list() == stored.get_column("id").to_list()
    )
    assert sorted(stored.get_column("rule")) == sorted(
        [
            "client_4xx_storm",
            "error_5xx_spike",
            "latency_regression",
            "traffic_drop",
            "traffic_spike",
        ]
    )
    ids = set(stored.get_column("id"))
    lines = (out / "alerts.jsonl").read_text(encoding="utf-8").splitlines()
    assert {json.loads(line)["id"] for line in lines} == ids
    (body,) = _Receiver.bodies
    assert {alert["id"] for alert in body["alerts"]} == ids
    assert body["text"].count("\n") == len(body["alerts"]) - 1


def test_no_detect_leaves_no_alerts(corpus: Path, tmp_path: Path) -> None:
    config = RunConfig.model_validate(
        {
            "inputs": [str(corpus / "lnav/test/logfile_shop_access_log.0")],
            "out": tmp_path,
            "format": "combined",
            "workers": 1,
            "detect": {"enabled": False},
            "alerts": {"jsonl": "alerts.jsonl"},
        }
    )
    summary = run_batch(config)
    assert summary.alerts is None
    assert not (tmp_path / "alerts.jsonl").exists()
    tables = run_query(tmp_path, "SELECT table_name FROM duckdb_tables() ORDER BY 1")
    assert "alerts" not in tables.get_column("table_name").to_list()
