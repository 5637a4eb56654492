"""Helpers for the HTTP service tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from logweir.cli import main
from logweir.pipeline.query import run_query
from logweir.serve import (
    Address,
    BackgroundServer,
    ServeSettings,
    StoreReader,
    create_app,
)

FORMAT = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %D'
#: 20 requests/s, a fivefold spike 12 to 15 minutes in, then some quiet.
GEN_ARGS = [
    "--lines",
    "34000",
    "--rate",
    "20",
    "--seed",
    "11",
    "--format",
    "combined-duration",
    "--incident",
    "traffic_spike@12m/3m",
    "--quiet",
]
REPO_ROOT = Path(__file__).resolve().parents[2]


def run_cli(*argv: str) -> tuple[int, str]:
    """``logweir ARGV`` in this process; its exit status and stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(list(argv))
    return status, out.getvalue()


@dataclass(frozen=True)
class BatchRun:
    log: Path
    out: Path
    report_html: Path
    summary: dict[str, Any]
    incidents: list[dict[str, Any]]

    def query(self, sql: str) -> list[dict[str, Any]]:
        return run_query(self.out, sql).to_dicts()


@dataclass
class Served:
    url: str
    client: httpx.Client
    reader: StoreReader


@contextlib.contextmanager
def serving(out: Path, settings: ServeSettings, **app_options: Any) -> Iterator[Served]:
    """A real server over ``out`` on a free loopback port."""
    reader = StoreReader.open(out)
    app = create_app(reader, settings=settings, **app_options)
    server = BackgroundServer(app, Address("127.0.0.1", 0)).start()
    try:
        with httpx.Client(base_url=server.url(), timeout=30) as client:
            yield Served(server.url(), client, reader)
    finally:
        server.stop()
        reader.close()


def artifacts_dir() -> Path:
    """Where browser tests leave screenshots (``test-artifacts/``, ignored)."""
    folder = Path(
        os.environ.get("LOGWEIR_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts")
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = 90) -> T:
    """Call ``probe`` until it gives something; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found is not None and found is not False:
            return found
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def feed(source: Path, target: Path, parts: int, pause_s: float) -> None:
    """Append ``source``'s lines to ``target`` in ``parts`` writes."""
    lines = source.read_bytes().splitlines(keepends=True)
    step = len(lines) // parts + 1
    with target.open("ab") as sink:
        for start in range(0, len(lines), step):
            sink.writelines(lines[start : start + step])
            sink.flush()
            time.sleep(pause_s)


def split_log(log: Path, folder: Path) -> tuple[Path, Path, int]:
    """The log cut before its spike (12 of about 17 minutes); and its lines."""
    lines = log.read_bytes().splitlines(keepends=True)
    cut = len(lines) * 11 // 20
    first, second = folder / "first.log", folder / "second.log"
    first.write_bytes(b"".join(lines[:cut]))
    second.write_bytes(b"".join(lines[cut:]))
    return first, second, len(lines)


def metric_totals(url: str) -> dict[str, float]:
    """``/metrics`` parsed; each counter summed over its labels."""
    text = httpx.get(url + "metrics", timeout=10).text
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_total"):
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


@dataclass
class Following:
    """``logweir run --follow FILE --serve 127.0.0.1:0 --json`` in a process."""

    followed: Path
    out: Path
    process: subprocess.Popen[str]
    errors: list[str] = field(default_factory=list)
    url: str = ""
    summary: dict[str, Any] = field(default_factory=dict)

    def address(self) -> str | None:
        for line in list(self.errors):
            found = re.search(r"dashboard on (http://\S+)", line)
            if found:
                return found.group(1)
        return None


@contextlib.contextmanager
def following(folder: Path) -> Iterator[Following]:
    """Follow an empty ``folder/access.log``; SIGTERM and read the summary at
    the end (the run prints its report as JSON)."""
    followed, out = folder / "access.log", folder / "out"
    followed.write_bytes(b"")
    command = [
        sys.executable, "-m", "logweir", "run", "--follow", str(followed),
        "--out", str(out), "--format", FORMAT, "--lateness", "1m",
        "--serve", "127.0.0.1:0", "--json",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LOGWEIR_TOKEN": ""},
    )
    run = Following(followed, out, process)

    def collect() -> None:  # a full stderr pipe would stop the run
        assert process.stderr is not None
        for line in process.stderr:
            run.errors.append(line)

    drain = threading.Thread(target=collect, daemon=True)
    drain.start()
    try:
        run.url = wait_for("the dashboard address", run.address, 60)
        yield run
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=120)
        drain.join(timeout=10)
    assert process.returncode == 0, "".join(run.errors)
    run.summary = json.loads(stdout)
