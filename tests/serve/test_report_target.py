"""``--report`` to a place it cannot be written: one clear line, before the run."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from serve_helpers import FORMAT

from logweir.cli import main

LINE = '10.0.0.1 - - [01/Mar/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "a" 10\n'


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("folder", "is a folder"),
        ("a.log/report.html", "a.log is not a folder"),
    ],
)
def test_an_unwritable_report_is_refused_before_the_run_starts(
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
    assert errors.getvalue().startswith(f"logweir: --report {report}")
    assert errors.getvalue().endswith(f"{reason}\n")
    assert not out.exists()  # nothing was read or written


def test_the_report_target_can_be_checked_before_a_run(tmp_path: Path) -> None:
    from logweir.errors import ConfigError
    from logweir.serve.report import check_report_target

    check_report_target(tmp_path / "new" / "report.html")  # made when written
    with pytest.raises(ConfigError, match=r"^--report .*: is a folder$"):
        check_report_target(tmp_path)
