"""Nginx log_format compiler: tables of real lines with exact values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from logweir.errors import FormatError
from logweir.formats import ParseOptions, compile_format
from logweir.formats.nginx import compile_nginx, log_format_from_config
from logweir.schema import LineBatch

LINE = (
    '172.17.0.1 - alice [01/Apr/2021:12:02:31 +0200] "POST /not-found?x=1 HTTP/1.1" '
    '404 153 "http://localhost/somewhere" "Mozilla/5.0 (Windows NT 6.1)"'
)


def parse(fmt: str, lines: list[str], **options: Any) -> Any:
    parser = compile_format(fmt, ParseOptions(**options))
    return parser.parse(LineBatch.from_strings("access.log", lines))


def event(fmt: str, line: str) -> dict[str, Any]:
    result = parse(fmt, [line])
    assert result.rejects.height == 0, result.rejects.to_dicts()
    row: dict[str, Any] = result.events.to_dicts()[0]
    return row


def extra(row: dict[str, Any]) -> dict[str, str]:
    return {item["key"]: item["value"] for item in row["extra"]}


def test_combined_preset() -> None:
    row = event("nginx", LINE)
    assert {k: v for k, v in row.items() if v is not None} == {
        "ts": datetime(2021, 4, 1, 10, 2, 31, tzinfo=UTC),
        "client_ip": "172.17.0.1",
        "method": "POST",
        "path": "/not-found",
        "query": "x=1",
        "protocol": "HTTP/1.1",
        "status": 404,
        "bytes": 153,
        "referer": "http://localhost/somewhere",
        "user_agent": "Mozilla/5.0 (Windows NT 6.1)",
        "source": "access.log",
        "offset": 0,
        "extra": [{"key": "remote_user", "value": "alice"}],
    }


def test_main_preset_keeps_forwarded_for_in_extra() -> None:
    row = event("nginx_main", LINE + ' "1.2.3.4, 10.10.1.1"')
    assert extra(row) == {
        "remote_user": "alice",
        "http_x_forwarded_for": "1.2.3.4, 10.10.1.1",
    }
    assert compile_format("nginx_main").name == "nginx_main"
    assert compile_format("nginx_combined").name == "nginx_combined"


FORMAT_CASES = [
    pytest.param(
        "${remote_addr}:$remote_port $request_time $upstream_response_time "
        "$upstream_addr $upstream_status",
        "10.0.0.1:5123 0.050 0.049, 0.050 : 0.100 10.0.0.2:80, 10.0.0.3:80 502, 200",
        {"client_ip": "10.0.0.1", "duration_ms": 50.0},
        {
            "remote_port": "5123",
            "upstream_response_time": "0.199",
            "upstream_addr": "10.0.0.2:80, 10.0.0.3:80",
            "upstream_status": "502, 200",
        },
        id="braces-and-upstream-lists-summed",
    ),
    pytest.param(
        "$remote_addr $upstream_response_time $request_time",
        "10.0.0.1 - 0.001",
        {"duration_ms": 1.0},
        {},
        id="upstream-dash-is-null",
    ),
    pytest.param(
        "$time_iso8601 $host $request_method $request_uri $server_protocol",
        "2019-05-06T12:09:43-04:00 example.org GET /a/b?c=d HTTP/2.0",
        {
            "ts": datetime(2019, 5, 6, 16, 9, 43, tzinfo=UTC),
            "host": "example.org",
            "method": "GET",
            "path": "/a/b",
            "query": "c=d",
            "protocol": "HTTP/2.0",
        },
        {},
        id="iso-time-and-request-pieces",
    ),
    pytest.param(
        "$msec $uri $args $scheme $connection $pipe $ssl_protocol",
        "1556888888.123 /x a=1 https 42 p TLSv1.3",
        {
            "ts": datetime(2019, 5, 3, 13, 8, 8, 123000, tzinfo=UTC),
            "path": "/x",
            "query": "a=1",
        },
        {"scheme": "https", "connection": "42", "pipe": "p", "ssl_protocol": "TLSv1.3"},
        id="msec-and-connection-variables",
    ),
    pytest.param(
        "$status $bytes_sent $body_bytes_sent $request_length $server_name",
        "200 1200 1000 300 example.com",
        {"status": 200, "bytes": 1000, "host": "example.com"},
        {"bytes_sent": "1200", "request_length": "300"},
        id="body-bytes-win-over-bytes-sent",
    ),
    pytest.param(
        '"$cookie_session" "$arg_page" "$sent_http_content_type" $my_custom_var',
        '"abc" "2" "text/html" zz',
        {},
        {
            "cookie_session": "abc",
            "arg_page": "2",
            "sent_http_content_type": "text/html",
            "my_custom_var": "zz",
        },
        id="named-families-and-unknown-variables",
    ),
    pytest.param(
        '$remote_addr "$http_user_agent"',
        '1.2.3.4 "say \\x22hi\\x22 caf\\xC3\\xA9"',
        {"user_agent": 'say "hi" café'},
        {},
        id="default-escaping-undone",
    ),
]


@pytest.mark.parametrize(("fmt", "line", "columns", "extras"), FORMAT_CASES)
def test_variables_map_to_columns_and_extra(
    fmt: str, line: str, columns: dict[str, Any], extras: dict[str, str]
) -> None:
    row = event(fmt, line)
    assert {name: row[name] for name in columns} == columns
    assert extra(row) == extras


CONFIG = """
log_format  json_combined escape=json
    '{'
      '"time":"$time_iso8601",'
      '"remote_addr":"$remote_addr",'
      '"request":"$request",'
      '"status": $status,'
      '"ua":"$http_user_agent"'
    '}';
"""


def test_log_format_directive_spread_over_lines() -> None:
    fmt, name, escape = log_format_from_config(CONFIG)
    assert (name, escape) == ("json_combined", "json")
    assert fmt == (
        '{"time":"$time_iso8601","remote_addr":"$remote_addr","request":"$request",'
        '"status": $status,"ua":"$http_user_agent"}'
    )
    parser = compile_nginx(CONFIG, ParseOptions())
    assert parser.name == "nginx:json_combined"
    line = (
        '{"time":"2024-01-02T03:04:05+00:00","remote_addr":"10.1.2.3",'
        '"request":"GET /q?a=\\"b\\" HTTP/1.1","status": 200,'
        '"ua":"curl/8 \\u00e9\\ttab"}'
    )
    result = parser.parse(LineBatch.from_strings("x", [line]))
    row = result.events.to_dicts()[0]
    assert (row["path"], row["query"], row["status"], row["user_agent"]) == (
        "/q",
        'a="b"',
        200,
        "curl/8 é\ttab",
    )


def test_quoted_format_pasted_alone() -> None:
    parser = compile_nginx("'$remote_addr - $status'", ParseOptions())
    assert parser.format_text == "$remote_addr - $status"


def test_escape_none_keeps_backslashes() -> None:
    parser = compile_nginx(
        "log_format raw escape=none '$remote_addr \"$http_user_agent\"';",
        ParseOptions(),
    )
    result = parser.parse(LineBatch.from_strings("x", ['1.1.1.1 "a\\x22b"']))
    assert result.events.get_column("user_agent").to_list() == ["a\\x22b"]


def test_malformed_nginx_lines_are_rejected_with_a_reason() -> None:
    result = parse("nginx", [LINE, LINE.replace(" 404 ", " 4o4 ")])
    assert result.rejects.get_column("reason").to_list() == [
        'status: expected a 3-digit status at char 79, got "4o4"'
    ]


BAD_FORMATS = [
    (
        "$remote_addr $",
        "invalid variable '$' at char 13 of log_format '$remote_addr $'",
        13,
    ),
    (
        "$remote_addr ${}x",
        "invalid variable '${}' at char 13 of log_format '$remote_addr ${}x'",
        13,
    ),
    ("a $-b", "invalid variable '$-' at char 2 of log_format 'a $-b'", 2),
    ("${status", "invalid variable '${status' at char 0 of log_format '${status'", 0),
    (
        "log_format x escape=xml '$status';",
        "unknown escape 'xml' in \"log_format x escape=xml '$status';\": use default, "
        "json or none",
        None,
    ),
    (
        "log_format x '$status",
        "unterminated ' quote at char 13 of \"log_format x '$status\"",
        13,
    ),
    ("log_format x;", "log_format without a format string: 'log_format x;'", None),
]


@pytest.mark.parametrize(("fmt", "message", "position"), BAD_FORMATS)
def test_bad_formats_name_the_variable_and_position(
    fmt: str, message: str, position: int | None
) -> None:
    with pytest.raises(FormatError) as caught:
        compile_nginx(fmt, ParseOptions())
    assert str(caught.value) == message
    assert caught.value.position == position


def test_parse_fields_gives_typed_variable_values() -> None:
    parser = compile_nginx(
        "$remote_addr $status $request_time $upstream_response_time $msec",
        ParseOptions(),
    )
    frame = parser.parse_fields(
        LineBatch.from_strings("x", ["1.2.3.4 200 0.050 0.1, 0.2 1556888888.5"])
    )
    assert frame.to_dicts() == [
        {
            "$remote_addr": "1.2.3.4",
            "$status": 200,
            "$request_time": 0.05,
            "$upstream_response_time": 0.3,
            "$msec": 1556888888.5,
        }
    ]
