"""Regex and grok formats: groups to columns, compile errors, reject reasons."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from logweir.errors import FormatError
from logweir.formats import ParseOptions, compile_format
from logweir.formats.custom import GrokParser, RegexParser, compile_grok, expand_grok
from logweir.schema import LineBatch

COMBINED = (
    '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?a=1 HTTP/1.0" '
    '200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"'
)


def rows(parser: Any, lines: list[str]) -> list[dict[str, Any]]:
    result = parser.parse(LineBatch.from_strings("log", lines))
    assert result.rejects.height == 0, result.rejects.to_dicts()
    found = []
    for row in result.events.iter_rows(named=True):
        found.append(
            {
                k: v
                for k, v in row.items()
                if v not in (None, []) and k not in ("source", "offset")
            }
        )
    return found


def test_regex_groups_fill_canonical_columns_and_extra() -> None:
    parser = RegexParser(
        r"^(?P<ts>\S+) (?P<level>\w+) \[(?P<thread>[^\]]+)\] (?P<duration_s>[\d.]+)s "
        r"(?P<status>\d+) (?P<message>.*)$"
    )
    assert rows(
        parser, ["2024-03-01T12:00:00Z WARN [main-1] 0.25s 503 upstream slow"]
    ) == [
        {
            "ts": datetime(2024, 3, 1, 12, tzinfo=UTC),
            "level": "WARN",
            "status": 503,
            "duration_ms": 250.0,
            "message": "upstream slow",
            "extra": [{"key": "thread", "value": "main-1"}],
        }
    ]


def test_regex_request_group_is_split_and_ts_format_is_used() -> None:
    parser = RegexParser(
        r'^(?P<ts>\d+/\d+/\d+ \d+:\d+) "(?P<request>[^"]*)" (?P<bytes>\d+|-)$',
        ParseOptions(timezone="+02:00"),
        ts_format="%d/%m/%Y %H:%M",
    )
    assert rows(parser, ['01/03/2024 14:00 "POST /api/v1?x=y HTTP/2.0" -']) == [
        {
            "ts": datetime(2024, 3, 1, 12, tzinfo=UTC),
            "method": "POST",
            "path": "/api/v1",
            "query": "x=y",
            "protocol": "HTTP/2.0",
        }
    ]


def test_regex_with_lookbehind_runs_line_by_line_with_the_same_result() -> None:
    parser = RegexParser(r"(?<=id=)(?P<service>\w+)")
    assert parser.rust is None
    assert rows(parser, ["x id=alpha y"]) == [{"service": "alpha"}]


@pytest.mark.parametrize(
    ("pattern", "message", "position"),
    [
        (
            "(?P<a>x",
            "invalid regex at position 0: missing ), unterminated subpattern",
            0,
        ),
        ("a[b", "invalid regex at position 1: unterminated character set", 1),
        (
            "(?P<a.b>x)",
            "invalid regex at position 4: bad character in group name 'a.b'",
            4,
        ),
        (
            "(?<x>a)(?P<y>b",
            "invalid regex at position 7: missing ), unterminated subpattern",
            7,
        ),
        ("abc", "regex 'abc' has no named group", None),
    ],
)
def test_invalid_regex_is_a_format_error_naming_the_position(
    pattern: str, message: str, position: int | None
) -> None:
    with pytest.raises(FormatError) as caught:
        RegexParser(pattern)
    assert str(caught.value).startswith(message)
    assert caught.value.position == position


def test_regex_rejects_name_the_last_group_that_fits() -> None:
    parser = compile_format(
        r"regex:^(?P<client_ip>\S+) (?P<status>\d{3}) (?P<bytes>\d+)$"
    )
    result = parser.parse(
        LineBatch.from_strings(
            "log", ["1.2.3.4 200 12", "1.2.3.4 20x 5", "", " x", "x"]
        )
    )
    assert result.rejects.select("line_number", "reason").rows() == [
        (
            2,
            "no match for the regex: it fits up to group 'client_ip' (column 8), "
            "then fails at group 'status'",
        ),
        (4, "no match for the regex: it fails before group 'client_ip'"),
        (
            5,
            "no match for the regex: it fits up to group 'client_ip' (column 2), "
            "then fails at group 'status'",
        ),
    ]


def test_regex_value_that_does_not_fit_its_column_rejects() -> None:
    parser = RegexParser(r"^(?P<status>\S+) (?P<ts>.+)$")
    result = parser.parse(
        LineBatch.from_strings("log", ["999999 2024-01-01", "200 never"])
    )
    assert result.rejects.select("line_number", "reason").rows() == [
        (1, "status: field 'status' has '999999', not an HTTP status code"),
        (2, "ts: field 'ts' has 'never', not a timestamp"),
    ]


def test_grok_combined_log_fills_the_schema() -> None:
    parser = compile_format("grok:%{HTTPD_COMBINEDLOG}")
    assert parser.name == "grok"
    assert rows(parser, [COMBINED]) == [
        {
            "ts": datetime(2000, 10, 10, 20, 55, 36, tzinfo=UTC),
            "client_ip": "127.0.0.1",
            "method": "GET",
            "path": "/apache_pb.gif",
            "query": "a=1",
            "protocol": "HTTP/1.0",
            "status": 200,
            "bytes": 2326,
            "referer": "http://www.example.com/start.html",
            "user_agent": "Mozilla/4.08 [en] (Win98; I ;Nav)",
            "extra": [
                {"key": "ident", "value": "-"},
                {"key": "auth", "value": "frank"},
            ],
        }
    ]


def test_grok_syslog_and_ecs_names() -> None:
    parser = compile_grok(
        "%{SYSLOGTIMESTAMP:timestamp} %{IPORHOST:[host][hostname]} "
        "%{PROG:[process][name]}(?:\\[%{POSINT:[process][pid]:int}\\])?: "
        "%{GREEDYDATA:message}",
        ParseOptions(reference_year=2024),
    )
    assert rows(
        parser, ["Nov  3 09:23:38 veridian automount[7998]: lookup failed"]
    ) == [
        {
            "ts": datetime(2024, 11, 3, 9, 23, 38, tzinfo=UTC),
            "host": "veridian",
            "service": "automount",
            "message": "lookup failed",
            "extra": [{"key": "process.pid", "value": "7998"}],
        }
    ]


def test_grok_rfc5424_line() -> None:
    parser = compile_grok("%{SYSLOG5424LINE}")
    line = (
        "<13>1 2020-03-13T20:45:38.119Z dynamicwireless.name non 2426 ID931 "
        '[a@1 b="c"] Try'
    )
    [found] = rows(parser, [line])
    assert (found["ts"], found["host"], found["service"], found["message"]) == (
        datetime(2020, 3, 13, 20, 45, 38, 119000, tzinfo=UTC),
        "dynamicwireless.name",
        "non",
        "Try",
    )


def test_grok_loads_pattern_files_at_run_time(tmp_path: Path) -> None:
    (tmp_path / "mine").write_text(
        "# my patterns\nTICKET [A-Z]+-[0-9]+\n"
        "TICKETLINE %{TICKET:ticket} %{GREEDYDATA:message}\n"
    )
    parser = GrokParser("%{TICKETLINE}", pattern_files=[tmp_path])
    assert rows(parser, ["OPS-42 disk full"]) == [
        {"message": "disk full", "extra": [{"key": "ticket", "value": "OPS-42"}]}
    ]


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("%{NOPE:x}", "unknown grok pattern %{NOPE} at position 0"),
        ("%{WORD:a} %{FOO}", "unknown grok pattern %{FOO} at position 10"),
        ("plain", "grok pattern 'plain' names no field"),
    ],
)
def test_bad_grok_is_a_format_error(pattern: str, message: str) -> None:
    with pytest.raises(
        FormatError, match=message.replace("{", r"\{").replace("}", r"\}")
    ):
        compile_grok(pattern)


def test_recursive_grok_definition_is_a_format_error(tmp_path: Path) -> None:
    (tmp_path / "loop").write_text("A %{B}\nB %{A:x}\n")
    with pytest.raises(FormatError, match="refers to itself"):
        GrokParser("%{A:y}", pattern_files=[tmp_path / "loop"])


def test_expand_grok_names_groups_and_maps_fields() -> None:
    regex, fields = expand_grok("%{INT:[a][b]} (?<c>x)", {"INT": "[0-9]+"})
    assert regex == "(?P<_g1>[0-9]+) (?P<_g0>x)"
    assert fields == {"_g0": "c", "_g1": "a.b"}


def test_grok_reject_reason_names_the_field() -> None:
    parser = compile_grok("%{IP:client} %{NUMBER:status} %{WORD:word}")
    result = parser.parse(LineBatch.from_strings("log", ["1.2.3.4 oops x"]))
    assert result.rejects.get_column("reason").to_list() == [
        "no match for the grok: it fits up to group 'client' (column 8), "
        "then fails at group 'status'"
    ]


def test_parsers_pickle() -> None:
    for parser in (
        RegexParser(r"(?P<message>.*)"),
        compile_grok("%{GREEDYDATA:message}"),
    ):
        clone = pickle.loads(pickle.dumps(parser))
        assert rows(clone, ["hello"]) == [{"message": "hello"}]
