"""Text from a log is printed as it is, never read as rich markup.

A path such as ``/a[/b]`` once crashed the report with a MarkupError and
lost the bracketed part of every reject reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from logweir.cli import main

LINES = (
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a[/b] HTTP/1.0" 404 26 '
    '"-" "[bold]agent"\n'
    "this line is not a log line [/x]\n"
)


@pytest.fixture()
def out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    log = tmp_path / "m.log"
    log.write_text(LINES)
    folder = tmp_path / "o[/x]"
    status = main(["run", str(log), "--out", str(folder), "--format", "combined"])
    report = capsys.readouterr().out
    assert status == 0
    assert "/a[/b]" in report
    assert str(folder) in report
    assert "[dd/Mon/yyyy:HH:MM:SS +zzzz]" in report
    return folder


def test_query_prints_brackets_from_the_log(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sql = "SELECT path, user_agent FROM events"
    assert main(["query", sql, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "/a[/b]" in printed
    assert "[bold]agent" in printed
