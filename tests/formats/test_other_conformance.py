"""Peer conformance for JSON, syslog, logfmt, regex and grok (the corpus).

* Vector's VRL examples (``vrl/docs/generated``) for the formats logweir
  parses, each expected value compared after mapping VRL's names onto ours;
* loghub's Linux syslog and Apache error log through a regex, every field of
  their structured CSVs compared;
* every lnav syslog and JSON-lines sample parsed, with the only rejects
  being the lines listed here as genuinely not of the format.

The pass counts are in docs/formats.md.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from logweir.formats import ParseOptions, compile_format
from logweir.formats.custom import GrokParser, RegexParser
from logweir.formats.jsonl import JsonParser
from logweir.formats.logfmt import LogfmtParser
from logweir.formats.syslog import SyslogParser
from logweir.schema import LineBatch


def literals(source: str) -> list[str]:
    """The string literals of a VRL expression, unescaped, in order."""
    found = []
    for match in re.finditer(
        r"""[sr]'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)\"""", source
    ):
        raw, quoted = match.groups()
        found.append(raw if raw is not None else json.loads(f'"{quoted}"'))
    return found


def examples(corpus: Path, function: str) -> list[dict[str, Any]]:
    path = corpus / "vrl" / "docs" / "generated" / f"{function}.json"
    loaded: list[dict[str, Any]] = json.loads(path.read_text())["examples"]
    return loaded


def one_event(parser: Any, line: str) -> dict[str, Any]:
    result = parser.parse(LineBatch.from_strings("vrl", [line]))
    assert result.rejects.height == 0, result.rejects.to_dicts()
    row: dict[str, Any] = result.events.row(0, named=True)
    row["extra"] = {item["key"]: item["value"] for item in row["extra"]}
    return row


def iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


# --- VRL ---------------------------------------------------------------------------

SYSLOG_NAMES = {"hostname": "host", "appname": "service", "message": "message"}


def test_vrl_parse_syslog(corpus: Path) -> None:
    [example] = examples(corpus, "parse_syslog")
    expected = example["return"]
    row = one_event(SyslogParser(), literals(example["source"])[0])
    for vrl, ours in SYSLOG_NAMES.items():
        assert row[ours] == expected[vrl]
    assert row["ts"] == iso(expected["timestamp"])
    assert row["level"] == expected["severity"]
    assert row["extra"]["facility"] == expected["facility"]
    assert row["extra"]["pid"] == str(expected["procid"])
    assert row["extra"]["msgid"] == expected["msgid"]
    for sd_id, params in expected.items():
        if isinstance(params, dict):
            for name, value in params.items():
                assert row["extra"][f"{sd_id}.{name}"] == value


def test_vrl_parse_linux_authorization(corpus: Path) -> None:
    [example] = examples(corpus, "parse_linux_authorization")
    expected = example["return"]
    year = iso(expected["timestamp"]).year
    parser = SyslogParser(ParseOptions(reference_year=year))
    row = one_event(parser, literals(example["source"])[0])
    assert (row["host"], row["service"], row["message"]) == (
        expected["hostname"],
        expected["appname"],
        expected["message"],
    )
    assert row["ts"] == iso(expected["timestamp"])
    assert row["extra"] == {"pid": str(expected["procid"])}


LOGFMT_COLUMNS = {
    "@timestamp": "ts",
    "level": "level",
    "msg": "message",
    "app": "service",
    "ip": "client_ip",
}


@pytest.mark.parametrize("function", ["parse_logfmt", "parse_key_value"])
def test_vrl_logfmt_examples(corpus: Path, function: str) -> None:
    checked = 0
    for example in examples(corpus, function):
        if "field_delimiter" in example["source"]:
            continue  # other delimiters: not logfmt
        row = one_event(LogfmtParser(), literals(example["source"])[0])
        for key, value in example["return"].items():
            text = "true" if value is True else value
            column = LOGFMT_COLUMNS.get(key)
            if column == "ts":
                assert row["ts"] == datetime(2021, 1, 10, 21, 47, 39, tzinfo=UTC)
            elif column is not None:
                assert row[column] == text
            else:
                assert row["extra"][key] == text
        checked += 1
    assert checked == {"parse_logfmt": 3, "parse_key_value": 3}[function]


def test_vrl_parse_json_objects_and_the_invalid_one(corpus: Path) -> None:
    cases = examples(corpus, "parse_json")
    parser = JsonParser()
    [plain] = [case for case in cases if case["title"] == "Parse JSON"]
    assert one_event(parser, literals(plain["source"])[0])["extra"] == plain["return"]
    [invalid] = [case for case in cases if case["title"] == "Invalid JSON value"]
    line = literals(invalid["source"])[0]
    result = parser.parse(LineBatch.from_strings("vrl", [line]))
    column = re.search(r"column (\d+)", invalid["raises"])
    assert column is not None
    assert result.rejects.get_column("reason").to_list() == [
        "not JSON: Expecting property name enclosed in double quotes "
        f"(column {column[1]})"
    ]
    # Arrays, strings, numbers and booleans are JSON but no event: rejected.
    scalars = [case for case in cases if case["title"].startswith("Parse JSON ")]
    lines = [
        literals(case["source"])[0]
        for case in scalars
        if "max_depth" not in case["source"]
    ]
    rejected = parser.parse(LineBatch.from_strings("vrl", lines)).rejects
    assert rejected.height == len(lines) == 5


def test_vrl_parse_regex(corpus: Path) -> None:
    checked = 0
    for example in examples(corpus, "parse_regex"):
        if "numeric_groups" in example["source"]:
            continue  # numbered groups: logweir keeps named groups only
        value, pattern = (
            literals(example["source"])[-2:]
            if "variable" not in example["source"]
            else list(reversed(literals(example["source"])[:2]))
        )
        row = one_event(RegexParser(pattern), value)
        for name, expected in example["return"].items():
            assert (row["host"] if name == "host" else row["extra"][name]) == expected
        checked += 1
    assert checked == 3


def test_vrl_parse_grok(corpus: Path) -> None:
    [example] = examples(corpus, "parse_grok")
    value, pattern = literals(example["source"])[:2]
    row = one_event(compile_format(f"grok:{pattern}"), value)
    expected = example["return"]
    assert row["ts"] == iso(expected["timestamp"])
    assert (row["level"], row["message"]) == (expected["level"], expected["message"])


def test_vrl_parse_groks_with_aliases_as_pattern_files(
    corpus: Path, tmp_path: Path
) -> None:
    first, second = examples(corpus, "parse_groks")
    text = first["source"]
    aliases = dict(re.findall(r'"(\w+)": "([^"]+)"', text))
    (tmp_path / "aliases").write_text("".join(f"{k} {v}\n" for k, v in aliases.items()))
    value = literals(text)[0]
    patterns = [item for item in literals(text)[1:3]]
    results = [
        GrokParser(pattern, pattern_files=[tmp_path]).parse(
            LineBatch.from_strings("vrl", [value])
        )
        for pattern in patterns
    ]
    # parse_groks takes the first pattern that matches: here the second.
    assert [result.events.height for result in results] == [0, 1]
    row = results[1].events.row(0, named=True)
    expected = first["return"]
    assert (row["ts"], row["level"], row["message"]) == (
        iso(expected["timestamp"]),
        expected["level"],
        expected["message"],
    )
    files = dict(re.findall(r'#\s+"(\w+)": "([^"]+)"', second["source"]))
    (tmp_path / "aliases").write_text("".join(f"{k} {v}\n" for k, v in files.items()))
    parser = GrokParser("%{PATTERN_A}", pattern_files=[tmp_path])
    row = one_event(parser, literals(second["source"])[0])
    assert row["extra"] == second["return"]


# --- loghub ------------------------------------------------------------------------

LINUX_REGEX = (
    r"^(?P<ts>\w{3} +\d{1,2} \d{2}:\d{2}:\d{2}) (?P<host>\S+) +(?P<service>.+?)"
    r"(?:\[(?P<pid>\d+)\])?:\s*(?P<message>.*?)\s*$"
)
APACHE_ERROR_REGEX = r"^\[(?P<ts>[^\]]+)\] \[(?P<level>[^\]]+)\] (?P<message>.*?)\s*$"


def loghub(corpus: Path, name: str) -> tuple[list[str], pl.DataFrame]:
    folder = corpus / "loghub" / name
    lines = (folder / f"{name}_2k.log").read_text(encoding="utf-8").split("\n")
    expected = pl.read_csv(folder / f"{name}_2k.log_structured.csv", infer_schema=False)
    return lines, expected


def test_loghub_linux_every_field(corpus: Path) -> None:
    lines, expected = loghub(corpus, "Linux")
    parser = RegexParser(LINUX_REGEX, ParseOptions(reference_year=2005))
    result = parser.parse(LineBatch.from_strings("Linux_2k.log", lines))
    assert (result.events.height, result.rejects.height) == (2000, 0)
    pid = pl.col("extra").list.eval(
        pl.element()
        .filter(pl.element().struct.field("key") == "pid")
        .struct.field("value")
    )
    got = result.events.select(
        pl.col("ts").dt.strftime("%b").alias("Month"),
        pl.col("ts").dt.day().cast(pl.String).alias("Date"),
        pl.col("ts").dt.strftime("%H:%M:%S").alias("Time"),
        pl.col("host").alias("Level"),
        pl.col("service").alias("Component"),
        pid.list.first().alias("PID"),
        pl.col("message").fill_null("").alias("Content"),
    )
    want = expected.select(
        "Month",
        "Date",
        "Time",
        "Level",
        "Component",
        "PID",
        pl.col("Content").fill_null(""),
    )
    assert got.rows() == want.rows()


def test_loghub_apache_error_log_every_field(corpus: Path) -> None:
    lines, expected = loghub(corpus, "Apache")
    parser = RegexParser(APACHE_ERROR_REGEX)
    result = parser.parse(LineBatch.from_strings("Apache_2k.log", lines))
    assert (result.events.height, result.rejects.height) == (2000, 0)
    got = result.events.select(
        pl.col("ts").dt.strftime("%a %b %d %H:%M:%S %Y").alias("Time"),
        pl.col("level").alias("Level"),
        pl.col("message").alias("Content"),
    )
    assert got.rows() == expected.select("Time", "Level", "Content").rows()


# --- lnav --------------------------------------------------------------------------

LNAV_SYSLOG = {
    "logfile_syslog.0": {},
    "logfile_syslog.1": {},
    "logfile_syslog.2": {},
    "logfile_syslog.3": {},
    "logfile_syslog_fr.0": {},
    "logfile_syslog_with_mixed_times.0": {},
    "logfile_syslog_with_access_log.0": {},
    "logfile_bad_syslog.0": {},
    "logfile_haproxy.0": {},
    # Two header lines that are not syslog at all.
    "logfile_syslog_with_header.0": {
        1: "not syslog: no timestamp at column 1",
        2: "not syslog: no timestamp at column 1",
    },
}

LNAV_JSON = {
    "gharchive_log.jsonl": {},
    "logfile_bunyan.0": {},
    "logfile_cloudflare.json": {},
    "logfile_ecs_log.json": {},
    "logfile_journald.json": {},
    "logfile_json.json": {},
    "logfile_json2.json": {},
    "logfile_json3.json": {},
    "logfile_json_subsec.json": {},
    "logfile_muxed_syslog.0": {},
    "logfile_nested_json.json": {},
    "logfile_otel_collector.jsonl": {},
    # Line 3 is cut off inside a string.
    "logfile_invalid_json.json": {
        3: "not JSON: Unterminated string starting at (column 74)"
    },
    # Line 3 ends after a key.
    "logfile_invalid_json2.json": {3: "not JSON: Expecting value (column 73)"},
    # Line 5 is cut off inside a string.
    "logfile_json_invalid.json": {
        5: "not JSON: Unterminated string starting at (column 63)"
    },
    # Lines 4-8 are a logfmt line and a Go panic with its stack.
    "logfile_mixed_json2.json": {
        4: "not JSON: Expecting value (column 1)",
        5: "not JSON: Expecting value (column 1)",
        6: "not JSON: Expecting value (column 4)",
        7: "not JSON: Expecting value (column 4)",
        8: "not JSON: Expecting value (column 4)",
    },
}


def lnav_lines(corpus: Path, name: str) -> list[str]:
    raw = (corpus / "lnav" / "test" / name).read_bytes().decode("utf-8", "replace")
    lines = raw.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


@pytest.mark.parametrize(("name", "rejected"), sorted(LNAV_SYSLOG.items()))
def test_lnav_syslog_samples(corpus: Path, name: str, rejected: dict[int, str]) -> None:
    parser = SyslogParser(ParseOptions(reference_year=2024))
    lines = lnav_lines(corpus, name)
    result = parser.parse(LineBatch.from_strings(name, lines))
    assert dict(result.rejects.select("line_number", "reason").rows()) == rejected
    assert result.events.height + result.skipped == len(lines) - len(rejected)
    assert result.events.get_column("ts").null_count() == 0


def test_lnav_syslog_format_samples(corpus: Path) -> None:
    definition = json.loads((corpus / "lnav/src/formats/syslog_log.json").read_text())
    lines = [
        sample["line"]
        for value in definition.values()
        if isinstance(value, dict)
        for sample in value.get("sample", [])
    ]
    result = SyslogParser().parse(LineBatch.from_strings("syslog_log.json", lines))
    assert (result.events.height, result.rejects.height) == (len(lines), 0) == (9, 0)


@pytest.mark.parametrize(("name", "rejected"), sorted(LNAV_JSON.items()))
def test_lnav_json_samples(corpus: Path, name: str, rejected: dict[int, str]) -> None:
    lines = lnav_lines(corpus, name)
    result = JsonParser().parse(LineBatch.from_strings(name, lines))
    assert dict(result.rejects.select("line_number", "reason").rows()) == rejected
    assert result.events.height == len(lines) - len(rejected)
