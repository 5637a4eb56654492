"""``--report`` to a place it cannot be written: one clear line, run kept."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from serve_helpers import FORMAT

from logweir.cli import main
from logweir.pipeline.query import run_query

LINE = '10.0.0.1 - - [01/Mar/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "a" 10\n'


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("folder", "is a folder"),
        ("a.log/report.html", "a.log is not a folder"),
    ],
)
def test_an_unwritable_report_says_why_and_keeps_the_run(
    tmp_path: Path, target: str, reason: str
) -> None:
    log = tmp_path / "a.log"
    log.write_text(LINE * 3)
    (tmp_path / "folder").mkdir()
    out, report = tmp_path / "out", tmp_path / target
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        status = main(
            ["run", str(log), "--out", str(out), "--format", FORMAT, "--quiet",
             "--report", str(report)]
        )  # fmt: skip
    assert status != 0
    assert errors.getvalue() == (
        f"logweir: cannot write the report {report}: {reason} (the run's output "
        f"in {out} is complete)\n"
    )
    assert run_query(out, "SELECT count(*) AS n FROM events").to_dicts() == [{"n": 3}]
