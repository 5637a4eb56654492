"""JSON lines: key mapping, types, timestamps, extra and rejects."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest

from logweir.errors import ConfigError
from logweir.formats import ParseOptions, compile_format, jsonl
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


# --- the shape road and the general road give the same events -----------------


def general_road_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send every line down the DuckDB/Python road (the shape road off)."""
    monkeypatch.setattr(jsonl, "MAX_SHAPES", 0)


ONE_SHAPE = [
    '{"ts":"2024-03-01T12:00:00Z","status":200,"msg":"plain","n":1.50,"ok":true}',
    '{"ts": "2024-03-01T12:00:01Z", "status": 404, "msg": "a \\"quoted\\" \\\\ \\n '
    'word \\u00e9", "n": 1E5, "ok": false}',
    '{"ts":"2024-03-01T12:00:02Z","status":"500","msg":"","n":null,"ok":null}',
    '  {"ts":"2024-03-01T12:00:03Z","status":null,"msg":"x\\/y","n":-0.0,"ok":true}  ',
    '{"ts":"2024-03-01T12:00:04Z","status":200,"msg":"\\ud83d\\ude00","n":2,"ok":true}',
]


def test_a_log_of_one_shape_reads_as_the_general_road_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast = parse(ONE_SHAPE)
    general_road_only(monkeypatch)
    slow = parse(ONE_SHAPE)
    columns = [name for name in EVENT_SCHEMA if name != "extra"]
    assert fast.events.select(columns).equals(slow.events.select(columns))
    assert fast.events.get_column("message").to_list() == [
        "plain",
        'a "quoted" \\ \n word é',
        "",
        "x/y",
        "😀",
    ]
    # Numbers keep their text on the shape road; DuckDB prints them anew.
    assert [extra(row) for row in fast.events.to_dicts()] == [
        {"n": "1.50", "ok": "true"},
        {"n": "1E5", "ok": "false"},
        {},
        {"n": "-0.0", "ok": "true"},
        {"n": "2", "ok": "true"},
    ]
    assert [extra(row) for row in slow.events.to_dicts()][:2] == [
        {"n": "1.5", "ok": "true"},
        {"n": "100000.0", "ok": "false"},
    ]


@pytest.mark.parametrize(
    ("line", "outcome"),
    [
        # Each looks like the shape but is not: the general road decides.
        ('{"ts":"2024-03-01T12:00:00Z","status":200,"status":201}', 200),
        ('{"ts":"2024-03-01T12:00:00Z","status":200,"msg":"a\tb"}', "reject"),
        ('{"ts":"2024-03-01T12:00:00Z","status":200,"msg":"\\x"}', "reject"),
        ('{"ts":"2024-03-01T12:00:00Z","status":200,"msg":"ok"}x', "reject"),
        ('{"ts":"2024-03-01T12:00:00Z","status":200}{"msg":"ok"}', "reject"),
        ('{"ts":"2024-03-01T12:00:00Z","status":{"code":200},"msg":"ok"}', None),
        ('{"ts":"2024-03-01T12:00:00Z","status":0200,"msg":"ok"}', "reject"),
        ('{"ts":"2024-03-01T12:00:00Z","status":200,"msg":"\\ud800"}', 200),
    ],
)
def test_lines_unlike_their_shape_are_read_by_the_general_road(
    line: str, outcome: Any
) -> None:
    shaped = '{"ts":"2024-03-01T12:00:00Z","status":200,"msg":"ok"}'
    result = parse([shaped] * 5 + [line])
    assert result.events.get_column("status").to_list()[:5] == [200] * 5
    if outcome == "reject":
        assert result.rejects.get_column("line_number").to_list() == [6]
        assert result.rejects.get_column("reason").str.starts_with("not JSON").all()
    else:
        assert result.rejects.height == 0
        assert result.events.get_column("status").to_list()[5] == outcome


def test_reasons_of_bad_lines_are_the_same_beside_a_shape() -> None:
    shaped = '{"ts":"2024-03-01T12:00:00Z","msg":"ok"}'
    lines = [
        shaped,
        '{"ts":"2024-03-01T12:00:00Z","msg":"a\tb"}',
        '{"ts":"2024-03-01T12:00:00Z","msg":"\\x"}',
        shaped,
    ]
    assert parse(lines).rejects.select("line_number", "reason").rows() == [
        (2, "not JSON: Invalid control character at (column 38)"),
        (3, "not JSON: Invalid \\escape (column 37)"),
    ]


def test_escaped_lone_surrogate_becomes_a_replacement_character() -> None:
    result = parse(['{"msg": "a\\ud800b"}', '{"msg": "c"}'])
    assert result.events.get_column("message").to_list() == ["a\ufffdb", "c"]


def test_several_shapes_in_one_batch_keep_line_order_and_key_order() -> None:
    lines = []
    for index in range(30):
        lines.append(f'{{"ts":{1709294400 + index},"a":"{index}","status":200}}')
        lines.append(f'{{"level":"info","b":{index},"msg":"m{index}"}}')
        lines.append(f'{{"x":"{index}","a":"again"}}')
    result = parse(lines)
    assert result.rejects.height == 0
    events = result.events
    assert events.get_column("offset").is_sorted()
    assert events.get_column("status").to_list()[:3] == [200, None, None]
    assert events.get_column("message").to_list()[:3] == [None, "m0", None]
    assert [extra(row) for row in events.head(3).to_dicts()] == [
        {"a": "0"},
        {"b": "0"},
        {"x": "0", "a": "again"},
    ]
    # Keys in the order the batch first shows them: "a" (line 1) before "x".
    assert [item["key"] for item in events.row(2, named=True)["extra"]] == ["a", "x"]


def test_a_shape_with_more_keys_than_one_regex_captures() -> None:
    keys = [f"k{index:02d}" for index in range(24)]
    lines = [
        json.dumps({"status": 200, **{key: f"{key}-{row}" for key in keys}})
        for row in range(50)
    ]
    result = parse(lines)
    assert result.rejects.height == 0
    assert extra(result.events.row(49, named=True)) == {
        key: f"{key}-49" for key in keys
    }


def test_a_big_batch_in_parallel_chunks_equals_small_batches() -> None:
    # Over the chunk sizes of lineprep.capture and keymap.resolve_and_convert.
    rows = 120_000
    index = pl.int_range(rows, eager=True)
    lines = (
        pl.lit('{"time":"2024-03-01T12:')
        + (index // 60 % 60).cast(pl.String).str.zfill(2)
        + pl.lit(":")
        + (index % 60).cast(pl.String).str.zfill(2)
        + pl.lit('Z","request":"GET /p/')
        + (index % 997).cast(pl.String)
        + pl.lit('?q=1 HTTP/1.1","status":')
        + pl.when(index % 7 == 0).then(pl.lit('"-"')).otherwise(pl.lit("200"))
        + pl.lit(',"latency":"')
        + (index % 50).cast(pl.String)
        + pl.lit('ms","user":"u')
        + (index % 13).cast(pl.String)
        + pl.lit('"}')
    )
    texts = pl.select(lines).to_series().to_list()
    texts[778] = '{"broken": '
    parser = JsonParser()
    whole = parser.parse(LineBatch.from_strings("big", texts))
    pieces = [
        parser.parse(
            LineBatch.from_strings(
                "big", texts[start : start + 10_000], first_line=start + 1
            )
        )
        for start in range(0, rows, 10_000)
    ]
    events = pl.concat([piece.events for piece in pieces])
    columns = [name for name in EVENT_SCHEMA if name != "offset"]
    assert whole.events.select(columns).equals(events.select(columns))
    assert whole.rejects.select("line_number", "reason").rows() == [
        (779, "not JSON: Expecting value (column 12)")
    ]
    assert whole.events.get_column("status").null_count() == -(-rows // 7)
