"""``logweir parse`` and ``logweir detect PATH``, through the CLI entry point."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import polars as pl
import pytest

from logweir.cli import main

JSON_LOG = (
    '{"ts":"2024-03-01T12:00:00.5+01:00","status":"200","msg":"hi","x":{"a":1}}\n'
    "{bad\n"
    "\n"
    '{"ts":1709294400,"method":"GET","url":"/a?b=1","bytes":"-"}\n'
)
COLUMNS = [
    "client_ip",
    "method",
    "path",
    "query",
    "protocol",
    "status",
    "bytes",
    "referer",
    "user_agent",
    "host",
    "duration_ms",
    "level",
    "message",
    "service",
]
NULLS = dict.fromkeys(COLUMNS)


def event(source: str, offset: int, **values: object) -> dict[str, object]:
    return {"ts": None, **NULLS, **values, "source": source, "offset": offset}


@pytest.fixture
def json_log(tmp_path: Path) -> Path:
    path = tmp_path / "app.jsonl"
    path.write_text(JSON_LOG)
    return path


def read_events(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_detects_the_format_and_writes_json_lines(
    json_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["parse", str(json_log)]) == 0
    out, err = capsys.readouterr()
    source = str(json_log)
    assert read_events(out) == [
        {
            **event(
                source, 0, ts="2024-03-01T11:00:00.500000Z", status=200, message="hi"
            ),
            "extra": {"x": '{"a":1}'},
        },
        {
            **event(
                source,
                81,
                ts="2024-03-01T12:00:00Z",
                method="GET",
                path="/a",
                query="b=1",
            ),
            "extra": {},
        },
    ]
    assert list(read_events(out)[0]) == [*event(source, 0), "extra"]
    assert err == (
        f"logweir: {source}: format json (detected: 66.7% of 3 sampled lines)\n"
        "logweir: 4 lines: 2 events, 1 rejected, 1 skipped\n"
        "         1  not JSON\n"
        f"  {source}:2: not JSON: Expecting property name enclosed in double quotes "
        "(column 2)\n"
    )


def test_reads_stdin_with_an_explicit_format(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = b"Jan  3 09:47:02 veridian sudo: hello\n<13>1 - - - - - -\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(lines)))
    assert main(["parse", "--format", "syslog", "--year", "2024", "-"]) == 0
    out, err = capsys.readouterr()
    assert read_events(out) == [
        {
            **event(
                "-",
                0,
                ts="2024-01-03T09:47:02Z",
                host="veridian",
                service="sudo",
                message="hello",
            ),
            "extra": {},
        },
        {**event("-", 37, level="notice"), "extra": {"facility": "user"}},
    ]
    assert err == "logweir: 2 lines: 2 events, 0 rejected, 0 skipped\n"


def test_strict_stops_at_the_first_reject(
    json_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["parse", "--strict", "-f", "json", str(json_log)]) == 2
    out, err = capsys.readouterr()
    assert [row["offset"] for row in read_events(out)] == [0]
    assert err == (
        f"logweir: {json_log}:2 (byte 75): not JSON: Expecting property name enclosed "
        "in double quotes (column 2)\n"
    )


def test_rejects_file_keeps_every_reject(
    json_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rejects = tmp_path / "rejects.jsonl"
    assert main(["parse", "-f", "json", "--rejects", str(rejects), str(json_log)]) == 0
    capsys.readouterr()
    assert read_events(rejects.read_text()) == [
        {
            "source": str(json_log),
            "line_number": 2,
            "offset": 75,
            "raw": "{bad",
            "reason": "not JSON: Expecting property name enclosed in double quotes "
            "(column 2)",
        }
    ]


def test_csv_and_parquet_outputs(
    json_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["parse", "-f", "json", "--output", "csv", str(json_log)]) == 0
    out, _ = capsys.readouterr()
    header, first, _second = out.splitlines()
    assert header.split(",")[:2] == ["ts", "client_ip"]
    assert first.startswith("2024-03-01T11:00:00.500000Z,,,,,,200,")
    assert first.endswith(',0,"{""x"":""{\\""a\\"":1}""}"')
    parquet = tmp_path / "events.parquet"
    assert (
        main(
            [
                "parse",
                "-f",
                "json",
                "--output",
                "parquet",
                "-o",
                str(parquet),
                str(json_log),
            ]
        )
        == 0
    )
    frame = pl.read_parquet(parquet)
    assert frame.get_column("offset").to_list() == [0, 81]
    assert frame.get_column("extra").to_list() == [
        [{"key": "x", "value": '{"a":1}'}],
        [],
    ]


def test_json_map_and_timezone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nested.jsonl"
    path.write_text('{"t": "2024-07-01 12:00:00", "http": {"verb": "PUT"}}\n')
    argv = [
        "parse",
        "-f",
        "json",
        "--timezone",
        "Europe/Berlin",
        "--json-map",
        "method=http.verb",
        "--json-map",
        "ts=t",
        str(path),
    ]
    assert main(argv) == 0
    [row] = read_events(capsys.readouterr().out)
    assert (row["ts"], row["method"]) == ("2024-07-01T10:00:00Z", "PUT")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["parse", "--json-map", "nope=a", "-f", "json"],
            "logweir: --json-map 'nope=a': 'nope' is not a column; choose from ",
        ),
        (
            ["parse", "--json-map", "x", "-f", "json"],
            "logweir: --json-map 'x': expected COLUMN=PATH",
        ),
        (
            ["parse", "--timezone", "Mars/Base", "-f", "json"],
            "logweir: unknown time zone 'Mars/Base'",
        ),
        (
            ["parse", "-f", "regex:(?P<a>x"],
            "logweir: invalid regex at position 0: missing ), unterminated subpattern",
        ),
        (["parse", "-f", "json", "/does/not/exist.log"], "logweir: "),
    ],
)
def test_bad_arguments_are_one_line_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message)
    assert err.count("\n") == 1


def test_unknown_format_is_an_error_with_the_explanation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "klog.log"
    path.write_text("I0505 17:59:40.692994   28133 klog.go:70] hello\n")
    assert main(["parse", str(path)]) == 2
    assert capsys.readouterr().err.startswith(
        f"logweir: {path}: unknown format: no candidate parses any of 1 sampled lines"
    )


def test_detect_prints_the_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "app.log"
    path.write_text("level=info msg=hi\nlevel=warn msg=ho\n")
    assert main(["detect", str(path)]) == 0
    assert capsys.readouterr().out == (
        f"{path}: logfmt (100.0% of 2 lines)\n"
        "  logfmt: parses 100.0% of 2 sampled lines (2/2)\n"
    )
    assert main(["detect", "--json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "path": str(path),
        "format": "logfmt",
        "match_rate": 1.0,
        "sampled": 2,
        "ambiguous_with": [],
        "runners_up": [],
        "explanation": "logfmt: parses 100.0% of 2 sampled lines (2/2)",
    }
