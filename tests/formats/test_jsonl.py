"""JSON lines: key mapping, types, timestamps, extra and rejects."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from typing import Any

import pytest

from logweir.errors import ConfigError
from logweir.formats import ParseOptions, compile_format
from logweir.formats.jsonl import JsonParser
from logweir.schema import EVENT_SCHEMA, LineBatch


def parse(lines: list[str], **options: Any) -> Any:
    parser = JsonParser(ParseOptions(**options))
    return parser.parse(LineBatch.from_strings("app.log", lines))


def event(line: str, **options: Any) -> dict[str, Any]:
    result = parse([line], **options)
    assert result.rejects.height == 0, result.rejects.to_dicts()
    row: dict[str, Any] = result.events.row(0, named=True)
    return {k: v for k, v in row.items() if v is not None and v != []}


def extra(row: dict[str, Any]) -> dict[str, str]:
    return {item["key"]: item["value"] for item in row.get("extra", [])}


def test_nginx_style_access_line_fills_every_http_column() -> None:
    line = (
        '{"time_iso8601":"2024-03-01T12:00:00+02:00","remote_addr":"10.0.0.1",'
        '"request":"GET /a/b?x=1&y=2 HTTP/1.1","status":"404","body_bytes_sent":"512",'
        '"request_time":"0.250","http_referer":"-","http_user_agent":"curl/8.0",'
        '"host":"example.com"}'
    )
    assert event(line) == {
        "ts": datetime(2024, 3, 1, 10, 0, tzinfo=UTC),
        "client_ip": "10.0.0.1",
        "method": "GET",
        "path": "/a/b",
        "query": "x=1&y=2",
        "protocol": "HTTP/1.1",
        "status": 404,
        "bytes": 512,
        "user_agent": "curl/8.0",
        "host": "example.com",
        "duration_ms": 250.0,
        "source": "app.log",
        "offset": 0,
    }


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            '{"@timestamp": "2024-03-01T12:00:00Z"}',
            datetime(2024, 3, 1, 12, tzinfo=UTC),
        ),
        (
            '{"time": "2024-03-01 12:00:00,250"}',
            datetime(2024, 3, 1, 12, 0, 0, 250000, tzinfo=UTC),
        ),
        ('{"ts": 1709294400}', datetime(2024, 3, 1, 12, tzinfo=UTC)),
        ('{"ts": 1709294400123}', datetime(2024, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)),
        (
            '{"ts": "1709294400123456"}',
            datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
        ),
        ('{"ts": 1709294400.5}', datetime(2024, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)),
        (
            '{"date": "01/Mar/2024:13:00:00 +0100"}',
            datetime(2024, 3, 1, 12, tzinfo=UTC),
        ),
        (
            '{"timestamp": "2024-03-01T07:00:00-05:00"}',
            datetime(2024, 3, 1, 12, tzinfo=UTC),
        ),
    ],
)
def test_timestamps_in_any_common_shape_become_utc(
    line: str, expected: datetime
) -> None:
    assert event(line)["ts"] == expected


def test_timestamp_without_offset_uses_the_configured_zone() -> None:
    row = event('{"ts": "2024-07-01T12:00:00"}', timezone="Europe/Berlin")
    assert row["ts"] == datetime(2024, 7, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("line", "column", "value"),
    [
        ('{"client_ip": "1.2.3.4"}', "client_ip", "1.2.3.4"),
        ('{"ClientIP": "1.2.3.4"}', "client_ip", "1.2.3.4"),
        ('{"status_code": 201}', "status", 201),
        ('{"status": 200.0}', "status", 200),
        ('{"response": "503"}', "status", 503),
        ('{"size": "2e3"}', "bytes", 2000),
        ('{"duration_ms": 12.5}', "duration_ms", 12.5),
        ('{"request_time": 0.5}', "duration_ms", 500.0),
        ('{"latency": "1.5s"}', "duration_ms", 1500.0),
        ('{"duration": "1m30s"}', "duration_ms", 90000.0),
        ('{"event": {"duration": 2000000}}', "duration_ms", 2.0),
        ('{"lvl": "WARN"}', "level", "WARN"),
        ('{"msg": "a\\nb \\"c\\" \\u00e9"}', "message", 'a\nb "c" é'),
        ('{"logger": "app.db"}', "service", "app.db"),
        ('{"hostname": "web-1"}', "host", "web-1"),
        ('{"agent": "Mozilla/5.0"}', "user_agent", "Mozilla/5.0"),
        ('{"referrer": "https://x.test/"}', "referer", "https://x.test/"),
        ('{"url": "https://x.test/p?q=1"}', "path", "/p"),
        ('{"url": "https://x.test/p?q=1"}', "query", "q=1"),
        ('{"http_version": "2.0"}', "protocol", "HTTP/2.0"),
        ('{"log.level": "info"}', "level", "info"),
        ('{"http": {"request": {"method": "PUT"}}}', "method", "PUT"),
        (
            '{"event": {"duration": 2000000}, "event.duration": 3000000}',
            "duration_ms",
            3.0,
        ),
    ],
)
def test_common_keys_fill_their_columns(line: str, column: str, value: Any) -> None:
    result = parse([line])
    assert result.rejects.height == 0
    assert result.events.get_column(column).to_list() == [value]


def test_explicit_mapping_reads_nested_paths_and_overrides_defaults() -> None:
    line = '{"http": {"request": {"method": "POST"}}, "method": "GET", "code": "201"}'
    row = event(line, json_mapping={"method": "http.request.method", "status": "code"})
    assert row["method"] == "POST"
    assert row["status"] == 201
    assert extra(row) == {"http": '{"request":{"method":"POST"}}', "method": "GET"}


def test_unmapped_keys_go_to_extra_as_text_in_line_order() -> None:
    row = event(
        '{"a": 1, "b": true, "c": {"d": [1, 2]}, "e": null, "f": "x", "msg": "m"}'
    )
    assert row["extra"] == [
        {"key": "a", "value": "1"},
        {"key": "b", "value": "true"},
        {"key": "c", "value": '{"d":[1,2]}'},
        {"key": "f", "value": "x"},
    ]


def test_second_candidate_for_a_column_stays_in_extra() -> None:
    row = event('{"time": "2024-03-01T12:00:00Z", "ts": "2020-01-01T00:00:00Z"}')
    assert row["ts"] == datetime(2024, 3, 1, 12, tzinfo=UTC)
    assert extra(row) == {"ts": "2020-01-01T00:00:00Z"}


def test_object_under_a_mapped_key_is_opened_not_used_as_a_value() -> None:
    row = event('{"request": {"method": "GET", "uri": "/a?b"}, "status": 200}')
    assert (row["method"], row["path"], row["query"]) == ("GET", "/a", "b")
    assert extra(row) == {"request": '{"method":"GET","uri":"/a?b"}'}


def test_default_key_whose_value_does_not_fit_goes_to_extra_not_rejects() -> None:
    row = event('{"status": "Pending", "ts": "soon", "msg": "pod"}')
    assert "status" not in row
    assert "ts" not in row
    assert extra(row) == {"status": "Pending", "ts": "soon"}


def test_explicitly_mapped_key_that_does_not_fit_rejects_the_line() -> None:
    result = parse(['{"code": "abc"}'], json_mapping={"status": "code"})
    assert result.rejects.select("line_number", "reason").rows() == [
        (1, "status: field 'code' has 'abc', not an HTTP status code")
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            "{bad",
            "not JSON: Expecting property name enclosed in double quotes (column 2)",
        ),
        ('{"a": 1', "not JSON: Expecting ',' delimiter (column 8)"),
        ('{"a": 1} trailing', "not JSON: Extra data (column 10)"),
        ("[1, 2]", "not a JSON object: the line holds a JSON array"),
        ('"text"', "not a JSON object: the line holds a JSON string"),
        ("42", "not a JSON object: the line holds a JSON number"),
        ("plain text", "not JSON: Expecting value (column 1)"),
    ],
)
def test_lines_that_are_no_json_object_are_rejected_with_the_position(
    line: str, reason: str
) -> None:
    result = parse(['{"msg": "ok"}', line])
    assert result.events.height == 1
    assert result.rejects.rows() == [("app.log", 2, 14, line, reason)]


def test_empty_and_crlf_lines() -> None:
    result = parse(['{"msg": "a"}\r', "", "   ", '{"msg": "b"}'])
    assert result.events.get_column("message").to_list() == ["a", "b"]
    assert result.events.get_column("offset").to_list() == [0, 19]
    assert result.skipped == 2


def test_escaped_nul_and_empty_key_take_the_line_by_line_road() -> None:
    result = parse(['{"msg": "a\\u0000b", "": "empty key"}', '{"msg": "plain"}'])
    assert result.rejects.height == 0
    assert result.events.get_column("message").to_list() == ["a\x00b", "plain"]
    assert result.events.get_column("extra").to_list() == [
        [{"key": "", "value": "empty key"}],
        [],
    ]


def test_keys_that_collide_with_internal_names_are_kept() -> None:
    row = event('{"row": 7, "extra": "x", "_reason": "y"}')
    assert extra(row) == {"row": "7", "extra": "x", "_reason": "y"}


def test_events_follow_the_schema_and_the_parser_pickles() -> None:
    parser = compile_format("json")
    clone = pickle.loads(pickle.dumps(parser))
    result = clone.parse(LineBatch.from_strings("s", ['{"msg": "x"}']))
    assert dict(result.events.schema) == EVENT_SCHEMA


def test_bad_mapping_target_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot map a field to 'nope'"):
        JsonParser(ParseOptions(json_mapping={"nope": "a"}))
