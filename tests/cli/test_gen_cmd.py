"""``logweir gen`` through the command-line runner: exact output and errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from logweir.cli import main
from logweir.gen import DEFAULT_INCIDENTS, generate


def test_gen_writes_the_same_bytes_as_the_library(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "access.log"
    status = main(["gen", "--lines", "2000", "--seed", "7", "--output", str(out)])
    assert status == 0
    expected = io.BytesIO()
    result = generate(2000, expected, seed=7)
    assert out.read_bytes() == expected.getvalue()
    assert capsys.readouterr().err == (
        f"wrote 2000 combined lines ({result.bytes_written:,} bytes) to {out}, "
        f"2024-06-03 08:00:00 to {result.last_ts:%H:%M:%S} UTC; "
        f"{sum(result.malformed.values())} malformed, "
        f"{result.out_of_order} out of order\n"
    )


def test_gen_to_stdout(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    status = main(["gen", "--lines", "1e3", "--format", "nginx-json", "--quiet"])
    assert status == 0
    captured = capsysbinary.readouterr()
    expected = io.BytesIO()
    generate(1000, expected, fmt="nginx-json")
    assert captured.out == expected.getvalue()
    assert captured.err == b""


def test_gen_with_the_default_incidents_writes_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "web.log"
    argv = ["gen", "--lines", "150000", "--format", "combined-duration", "--incidents"]
    assert main([*argv, "--output", str(out), "--no-malformed", "--quiet"]) == 0
    labels = json.loads((tmp_path / "web.log.incidents.json").read_text())
    assert [i["kind"] for i in labels["incidents"]] == [
        i.kind for i in DEFAULT_INCIDENTS
    ]
    assert labels["malformed"] == {
        "truncated": 0,
        "garbage": 0,
        "empty": 0,
        "latin1": 0,
    }
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--incident", "latency@1m"],
            "logweir: bad incident 'latency@1m': write "
            "KIND@OFFSET/DURATION[:MAGNITUDE], e.g. error_rate@30m/2m or "
            "scanner@1h/90s:20\n",
        ),
        (
            ["--incidents"],
            "logweir: incidents with the log on stdout need --labels FILE for their "
            "labels\n",
        ),
        (
            ["--rate", "-3"],
            "logweir: --rate must be above 0 requests/s, not -3\n",
        ),
    ],
)
def test_bad_options_give_one_line_and_status_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["gen", "--lines", "10", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.err == message
    assert captured.out == ""


def test_an_unwritable_output_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "missing-dir" / "x.log"
    assert main(["gen", "--lines", "10", "--output", str(target)]) == 2
    assert capsys.readouterr().err == (
        f"logweir: cannot write '{target}': no such file or directory\n"
    )


def test_an_unparsable_start_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["gen", "--start", "yesterday"])
    assert caught.value.code == 2
    assert capsys.readouterr().err.endswith(
        "logweir gen: error: argument --start: 'yesterday' is not an ISO 8601 time "
        "such as 2024-06-03T08:00:00Z\n"
    )
