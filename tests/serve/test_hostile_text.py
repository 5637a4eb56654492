"""Log text that looks like HTML stays text, in a real browser.

Paths, user agents, referrers and even the log file's own name come from
whoever sends requests to the logged server; the report and the dashboard
must show them, never run them. Headless Chromium opens both pages and
must find no script ran (no alert dialog, no marker set) and the hostile
strings shown literally.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from serve_helpers import FORMAT, run_cli, serving

from logweir.serve import ServeSettings

SCRIPT_PATH = "/<script>window.pwned=1;alert(1)</script>"
IMG_AGENT = "<img src=x onerror=window.pwned=2;alert(2)>"
LOG_NAME = "<svg onload=alert(3)> logs é.log"


def _hostile_log(folder: Path) -> Path:
    log = folder / LOG_NAME
    lines = []
    for second in range(30):
        path = SCRIPT_PATH if second % 2 else "/ok"
        lines.append(
            f"10.0.0.{second % 3} - - [01/Mar/2026:10:00:{second:02d} +0000] "
            f'"GET {path} HTTP/1.1" 404 12 "javascript:alert(4)" "{IMG_AGENT}" 1500'
        )
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return log


def _assert_inert(driver: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    try:
        text = driver.switch_to.alert.text
    except NoAlertPresentException:
        text = None
    assert text is None, f"a script ran: alert({text})"
    assert driver.execute_script("return window.pwned === undefined") is True
    body = driver.find_element(By.TAG_NAME, "body").text
    assert SCRIPT_PATH in body
    assert not driver.find_elements(By.CSS_SELECTOR, "main script, main img")


def test_hostile_log_text_is_inert_in_report_and_dashboard(
    browser: Any, tmp_path: Path
) -> None:
    log = _hostile_log(tmp_path)
    out, html = tmp_path / "out", tmp_path / "report.html"
    status, _ = run_cli(
        "run", str(log), "--out", str(out), "--format", FORMAT,
        "--workers", "1", "--report", str(html), "--quiet",
    )  # fmt: skip
    assert status == 0
    page = html.read_text("utf-8")
    assert "Content-Security-Policy" in page  # a second wall: no script may run
    browser.get(html.as_uri())
    _assert_inert(browser)
    with serving(out, ServeSettings()) as served:
        browser.get(served.url)
        _assert_inert(browser)
        browser.get(served.url + "dashboard/panels")
        _assert_inert(browser)
