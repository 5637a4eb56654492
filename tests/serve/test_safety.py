"""Safety: loopback by default, tokens, static paths, sizes, Host headers."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from urllib.parse import urlsplit

import httpx
import pytest
from serve_helpers import BatchRun, Served, run_cli, serving

from logweir.errors import ConfigError
from logweir.serve import Address, ServeSettings, check_bind, parse_addr
from logweir.serve.app import MAX_BODY_BYTES


def _raw_get(url: str, target: str, host: str = "127.0.0.1") -> tuple[int, bytes]:
    """GET ``target`` byte for byte (clients would tidy ``..`` away)."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as conn:
        request = f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
        conn.sendall(request.encode() + b"\r\n")
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize(
    "target",
    [
        "/static/../app.py",
        "/static/%2e%2e/app.py",
        "/static/..%2fapp.py",
        "/static/%2e%2e%2f%2e%2e%2fsinks/store.py",
        "/static/....//app.py",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
    ],
)
def test_static_files_cannot_leave_their_folder(served: Served, target: str) -> None:
    status, body = _raw_get(served.url, target)
    assert status in (400, 404)
    assert b"import" not in body and b"root:" not in body


def test_static_files_inside_their_folder_are_served(served: Served) -> None:
    status, body = _raw_get(served.url, "/static/dashboard.css")
    assert status == 200 and b"logweir dashboard" in body


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", Address("127.0.0.1", 8080)),
        (":9000", Address("127.0.0.1", 9000)),
        ("[::1]:8080", Address("::1", 8080)),
        ("0.0.0.0:80", Address("0.0.0.0", 80)),
        ("localhost:0", Address("localhost", 0)),
    ],
)
def test_addresses(text: str, expected: Address) -> None:
    assert parse_addr(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "127.0.0.1:http",
            "--addr '127.0.0.1:http': give HOST:PORT, e.g. 127.0.0.1:8080",
        ),
        ("127.0.0.1:70000", "--addr '127.0.0.1:70000': port must be 0 to 65535"),
        ("[::zz]:80", "--addr '[::zz]:80': not an IPv6 address"),
    ],
)
def test_bad_addresses_say_why(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_addr(text)
    assert str(caught.value) == message


def test_loopback_needs_no_token_and_elsewhere_does() -> None:
    check_bind(parse_addr("127.0.0.1:0"), None)
    check_bind(parse_addr("[::1]:0"), None)
    check_bind(parse_addr("0.0.0.0:0"), "t0ken")
    with pytest.raises(ConfigError, match="give a token"):
        check_bind(parse_addr("0.0.0.0:0"), None)


def test_serve_refuses_to_listen_elsewhere_without_a_token(
    batch_run: BatchRun,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LOGWEIR_TOKEN", raising=False)
    status, _ = run_cli("serve", "--out", str(batch_run.out), "--addr", "0.0.0.0:0")
    assert status == 2
    assert capsys.readouterr().err == (
        "logweir: listening on 0.0.0.0 shows the logs to the network: give a token "
        "(--token or LOGWEIR_TOKEN), or listen on 127.0.0.1\n"
    )


def test_serve_needs_a_store(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _ = run_cli("serve", "--out", str(tmp_path))
    assert status == 2
    assert "holds no logweir.duckdb" in capsys.readouterr().err


def test_a_token_guards_everything_but_health(batch_run: BatchRun) -> None:
    with serving(batch_run.out, ServeSettings(token="s3cret")) as guarded:
        client = guarded.client
        assert client.get("/api/health").status_code == 200
        for path in ("/api/windows", "/metrics", "/", "/static/dashboard.js"):
            assert client.get(path).status_code == 401, path
        wrong = {"Authorization": "Bearer nope"}
        assert client.get("/api/windows", headers=wrong).status_code == 401
        right = {"Authorization": "Bearer s3cret"}
        assert client.get("/api/windows", headers=right).status_code == 200
        assert client.get("/metrics", headers=right).status_code == 200


def test_the_dashboard_link_with_a_token_sets_a_cookie(batch_run: BatchRun) -> None:
    with serving(batch_run.out, ServeSettings(token="s3cret")) as guarded:
        with httpx.Client(base_url=guarded.url, timeout=10) as browser_like:
            first = browser_like.get("/", params={"token": "s3cret"})
            assert first.status_code == 303
            assert "token" not in first.headers["location"]
            assert "HttpOnly" in first.headers["set-cookie"]
            page = browser_like.get("/")
            assert page.status_code == 200
            assert browser_like.get("/dashboard/panels").status_code == 200
        assert guarded.client.get("/", params={"token": "wrong"}).status_code == 401


def test_large_bodies_are_refused(served: Served) -> None:
    big = b"x" * (MAX_BODY_BYTES + 1)
    answer = served.client.post(
        "/api/sql", content=big, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 413

    def chunks() -> object:
        for _ in range(8):
            yield b"y" * (MAX_BODY_BYTES // 4)

    streamed = served.client.post(
        "/api/sql", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413


def test_long_sql_is_refused_by_the_schema(served: Served) -> None:
    answer = served.client.post("/api/sql", json={"sql": "SELECT 1 " + " " * 30_000})
    assert answer.status_code == 422


def test_other_host_headers_are_refused_on_loopback(batch_run: BatchRun) -> None:
    settings = ServeSettings(allowed_hosts=["127.0.0.1", "localhost"])
    with serving(batch_run.out, settings) as local:
        assert local.client.get("/api/health").status_code == 200
        status, _ = _raw_get(local.url, "/api/health", host="evil.example")
        assert status == 400


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_logweir_serve_runs_until_interrupted(batch_run: BatchRun) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "logweir", "serve", "--out", str(batch_run.out),
         "--addr", f"127.0.0.1:{port}", "--enable-sql"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line == f"logweir: serving {batch_run.out} on http://127.0.0.1:{port}/\n"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            assert client.get("/api/health").json()["sql_enabled"] is True
            answer = client.post("/api/sql", json={"sql": "SELECT count(*) FROM runs"})
            assert answer.json()["rows"] == [[1]]
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    assert process.returncode == 0


def test_serve_flag_needs_follow(
    batch_run: BatchRun, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _ = run_cli(
        "run", str(batch_run.log), "--out", str(batch_run.out), "--serve", ":0"
    )
    assert status == 2
    assert capsys.readouterr().err == (
        "logweir: --serve needs --follow (to look at a finished run: serve)\n"
    )


@pytest.mark.parametrize(
    ("addr", "host"),
    [
        ("127.0.0.1:8080", "127.0.0.1"),
        ("127.0.0.5:8080", "127.0.0.5"),
        ("[::1]:8080", "[::1]"),
        ("localhost:8080", "localhost"),
    ],
)
def test_the_address_listened_on_is_an_accepted_host(addr: str, host: str) -> None:
    from logweir.serve.server import loopback_hosts

    hosts = loopback_hosts(parse_addr(addr))
    assert hosts is not None and host in hosts and "evil.example" not in hosts
