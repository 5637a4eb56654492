"""Fixtures for the HTTP service: a real run's output and a real server.

The output folder comes from ``logweir gen`` and ``logweir run`` (in this
process, one worker), over a log with one injected traffic spike; the
server is uvicorn on a free loopback port, queried with httpx.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serve_helpers import FORMAT, GEN_ARGS, BatchRun, Served, run_cli, serving

from logweir.serve import ServeSettings


@pytest.fixture(scope="session")
def generated_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    log = tmp_path_factory.mktemp("serve-log") / "access.log"
    status, _ = run_cli("gen", *GEN_ARGS, "--output", str(log))
    assert status == 0
    return log


@pytest.fixture(scope="session")
def batch_run(
    tmp_path_factory: pytest.TempPathFactory, generated_log: Path
) -> BatchRun:
    folder = tmp_path_factory.mktemp("serve-run")
    out, html = folder / "out", folder / "report.html"
    status, text = run_cli(
        "run",
        str(generated_log),
        "--out",
        str(out),
        "--format",
        FORMAT,
        "--workers",
        "1",
        "--report",
        str(html),
        "--json",
    )
    assert status == 0
    labels = generated_log.with_name(generated_log.name + ".incidents.json")
    incidents = json.loads(labels.read_text())
    if isinstance(incidents, dict):
        incidents = incidents.get("incidents", [])
    return BatchRun(generated_log, out, html, json.loads(text), incidents)


@pytest.fixture(scope="module")
def served(batch_run: BatchRun) -> Iterator[Served]:
    """The batch run's output, SQL on with small limits, no token."""
    settings = ServeSettings(sql_enabled=True, sql_timeout_s=2.0, sql_max_rows=50)
    with serving(batch_run.out, settings) as running:
        yield running


def _browser_paths() -> tuple[str, str] | None:
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    return None


@pytest.fixture(scope="session")
def browser_paths() -> tuple[str, str]:
    """Debian's chromium and chromedriver (scripts/setup-browser.sh)."""
    found = _browser_paths()
    if found is None:
        message = "chromium or chromedriver missing: run scripts/setup-browser.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture
def browser(browser_paths: tuple[str, str]) -> Iterator[Any]:
    """A headless Chromium driven by Selenium, keeping the console log."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = browser_paths
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1440,1000",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        yield driver
    finally:
        driver.quit()
