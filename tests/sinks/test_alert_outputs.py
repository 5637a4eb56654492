"""Alert outputs: terminal, JSON lines, DuckDB table, webhook."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import duckdb
import pytest
from rich.console import Console

from logweir.detectors.alerts import Alert
from logweir.errors import SinkError
from logweir.sinks.alerts import (
    DuckDBAlertOutput,
    JsonLinesOutput,
    TerminalOutput,
    WebhookOutput,
    alerts_table,
)

T0 = datetime(2024, 5, 1, 14, 5, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def alert(status: str = "open", windows: int = 1) -> Alert:
    return Alert(
        id="error_5xx_spike:20240501T140500Z",
        status=status,  # type: ignore[arg-type]
        rule="error_5xx_spike",
        series="share_5xx",
        key="",
        detector="robust_zscore",
        severity="critical",
        start=T0,
        end=T0 + windows * MINUTE,
        window_start=T0,
        window_end=T0 + MINUTE,
        value=0.124,
        baseline=0.006,
        spread=0.003,
        score=39.3,
        windows=windows,
        message="5xx share 12.4 % in 14:05–14:06 against a usual 0.6 % ± 0.3",
        detail={},
    )


def test_terminal_prints_one_line_per_event() -> None:
    buffer = io.StringIO()
    output = TerminalOutput(Console(file=buffer, width=200, color_system=None))
    output.write([alert(), alert("resolved", 3)])
    line = (
        "CRITICAL error_5xx_spike: "
        "5xx share 12.4 % in 14:05–14:06 against a usual 0.6 % ± 0.3"
    )
    assert buffer.getvalue().splitlines() == [line, line]


def test_json_lines_append_every_event(tmp_path: Path) -> None:
    path = tmp_path / "alerts" / "alerts.jsonl"
    output = JsonLinesOutput(path)
    output.write([alert()])
    output.write([alert("resolved", 3)])
    output.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["status"] for r in records] == ["open", "resolved"]
    assert records[1]["end"] == "2024-05-01T14:08:00+00:00"
    with pytest.raises(SinkError, match="is closed"):
        output.write([alert()])


def test_json_lines_unwritable_path_is_a_sink_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SinkError, match="cannot open alert file"):
        JsonLinesOutput(blocker / "alerts.jsonl")


def test_duckdb_keeps_one_row_per_incident(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    output = DuckDBAlertOutput(path)
    output.write([alert()])
    output.write([alert("resolved", 3)])
    with duckdb.connect(str(path), read_only=True) as connection:
        rows = connection.execute(
            "SELECT id, status, windows, detail FROM alerts"
        ).fetchall()
    assert rows == [("error_5xx_spike:20240501T140500Z", "resolved", 3, "{}")]


def test_duckdb_uses_the_store_when_given() -> None:
    calls = []

    class Store:
        def upsert_table(self, name, frame, key, /):  # type: ignore[no-untyped-def]
            calls.append((name, frame.height, key))

    DuckDBAlertOutput(Store()).write([alert(), alert("resolved", 2)])
    assert calls == [("alerts", 1, ["id"])]


def test_alerts_table_types() -> None:
    frame = alerts_table([alert()])
    assert str(frame.schema["start"]) == "Datetime(time_unit='us', time_zone='UTC')"
    assert frame.row(0, named=True)["start"] == T0


class _Receiver(BaseHTTPRequestHandler):
    # Each test gets a subclass with its own lists (see the fixture).
    bodies: ClassVar[list[dict]] = []
    answers: ClassVar[list[int]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        code = type(self).answers.pop(0) if type(self).answers else 200
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {"bodies": [], "answers": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", handler
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_posts_the_alerts(receiver) -> None:
    url, handler = receiver
    output = WebhookOutput(url, timeout_s=2)
    output.write([alert()])
    assert output.delivered == 1 and output.failures == 0
    (body,) = handler.bodies
    assert body["source"] == "logweir"
    assert body["text"] == "5xx share 12.4 % in 14:05–14:06 against a usual 0.6 % ± 0.3"
    assert body["alerts"][0]["id"] == "error_5xx_spike:20240501T140500Z"


def test_webhook_retries_a_failing_receiver(receiver) -> None:
    url, handler = receiver
    handler.answers = [503, 500]
    pauses: list[float] = []
    output = WebhookOutput(url, retries=3, backoff_s=0.5, sleep=pauses.append)
    output.write([alert()])
    assert output.delivered == 1 and len(handler.bodies) == 3
    assert pauses == [0.5, 1.0]


def test_webhook_that_keeps_failing_is_logged_not_fatal(receiver, caplog) -> None:
    url, handler = receiver
    handler.answers = [500] * 10
    output = WebhookOutput(url, retries=2, sleep=lambda _: None)
    output.write([alert()])
    assert output.failures == 1 and len(handler.bodies) == 3
    assert "gave up on 1 alert(s) after 3 attempts" in caplog.text


def test_webhook_client_error_is_not_retried(receiver) -> None:
    url, handler = receiver
    handler.answers = [404]
    output = WebhookOutput(url, retries=3, sleep=lambda _: None)
    output.write([alert()])
    assert output.failures == 1 and len(handler.bodies) == 1


def test_webhook_refused_connection_is_not_fatal(caplog) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    port = server.server_port
    server.server_close()  # nothing listens there now
    output = WebhookOutput(
        f"http://127.0.0.1:{port}/", retries=1, timeout_s=1, sleep=lambda _: None
    )
    output.write([alert()])
    assert output.failures == 1
    assert "failed" in caplog.text


def test_webhook_url_must_be_http() -> None:
    with pytest.raises(SinkError, match="webhook URL must start with http"):
        WebhookOutput("ftp://example.org/")
