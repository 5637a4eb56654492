"""Apache LogFormat compiler: tables of real lines with exact values."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from logweir.errors import FormatError
from logweir.formats import ParseOptions, compile_format
from logweir.formats.apache import compile_apache
from logweir.schema import EVENT_SCHEMA, REJECT_SCHEMA, LineBatch

COMBINED = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"'
LINE = (
    '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?a=1 '
    'HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08"'
)


def parse(fmt: str, lines: list[str], **options: Any) -> Any:
    parser = compile_format(fmt, ParseOptions(**options))
    return parser.parse(LineBatch.from_strings("test.log", lines))


def event(fmt: str, line: str, **options: Any) -> dict[str, Any]:
    result = parse(fmt, [line], **options)
    assert result.rejects.height == 0, result.rejects.to_dicts()
    row: dict[str, Any] = result.events.to_dicts()[0]
    return row


def extra(row: dict[str, Any]) -> dict[str, str]:
    return {item["key"]: item["value"] for item in row["extra"]}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_combined_line_maps_to_canonical_columns() -> None:
    row = event("combined", LINE)
    assert row == {
        "ts": utc(2000, 10, 10, 20, 55, 36),
        "client_ip": "127.0.0.1",
        "method": "GET",
        "path": "/apache_pb.gif",
        "query": "a=1",
        "protocol": "HTTP/1.0",
        "status": 200,
        "bytes": 2326,
        "referer": "http://www.example.com/start.html",
        "user_agent": "Mozilla/4.08",
        "host": None,
        "duration_ms": None,
        "level": None,
        "message": None,
        "service": None,
        "source": "test.log",
        "offset": 0,
        "extra": [{"key": "remote_user", "value": "frank"}],
    }


def test_events_and_rejects_have_the_canonical_schemas() -> None:
    result = parse("combined", [LINE, "Bad line"])
    assert dict(result.events.schema) == EVENT_SCHEMA
    assert dict(result.rejects.schema) == REJECT_SCHEMA


# Each case: one line of the combined format and the columns that differ from
# the line above (LINE) once parsed.
LINE_CASES = [
    pytest.param(
        LINE.replace("2326", "-"), {"bytes": None}, id="bytes-dash-is-null-not-0"
    ),
    pytest.param(LINE.replace("2326", "0"), {"bytes": 0}, id="bytes-zero"),
    pytest.param(
        LINE.replace('"GET /apache_pb.gif?a=1 HTTP/1.0"', '"-"'),
        {"method": None, "path": None, "query": None, "protocol": None},
        id="request-dash",
    ),
    pytest.param(
        LINE.replace("?a=1 HTTP", " b?c=d e HTTP"),
        {"path": "/apache_pb.gif b", "query": "c=d e"},
        id="request-with-spaces",
    ),
    pytest.param(
        LINE.replace("/apache_pb.gif?a=1", '/a"b?x="y"'),
        {"path": '/a"b', "query": 'x="y"'},
        id="request-with-unescaped-quotes",
    ),
    pytest.param(
        LINE.replace("/apache_pb.gif?a=1", '/a\\"b'),
        {"path": '/a"b', "query": None},
        id="request-with-escaped-quote",
    ),
    pytest.param(
        LINE.replace("?a=1 HTTP/1.0", ""),
        {"path": "/apache_pb.gif", "query": None, "protocol": None},
        id="http-0.9-request-without-protocol",
    ),
    pytest.param(
        LINE.replace("GET /apache_pb.gif?a=1 HTTP/1.0", "\\x16\\x03\\x01\\x02"),
        {
            "method": None,
            "path": None,
            "query": None,
            "protocol": None,
            "extra": [
                {"key": "remote_user", "value": "frank"},
                {"key": "request", "value": "\x16\x03\x01\x02"},
            ],
        },
        id="tls-handshake-junk-request-kept-in-extra",
    ),
    pytest.param(
        LINE.replace("/apache_pb.gif", "/t\\xc3\\xa9st"),
        {"path": "/tést"},
        id="escaped-utf8-bytes",
    ),
    pytest.param(
        LINE.replace("/apache_pb.gif", "/t\\xe9st"),
        {"path": "/tést"},
        id="escaped-latin1-byte-when-not-utf8",
    ),
    pytest.param(
        LINE.replace("Mozilla/4.08", 'say \\"hi\\" \\\\o/'),
        {"user_agent": 'say "hi" \\o/'},
        id="escaped-quote-and-backslash",
    ),
    pytest.param(
        LINE.replace("Mozilla/4.08", "x\x00y\ufffdz"),
        {"user_agent": "x\x00y\ufffdz"},
        id="nul-and-replacement-char",
    ),
    pytest.param(LINE + "\r", {}, id="crlf-stripped"),
    pytest.param(
        LINE.replace("-0700", "+0530"),
        {"ts": utc(2000, 10, 10, 8, 25, 36)},
        id="positive-offset",
    ),
    pytest.param(
        LINE.replace("127.0.0.1 - frank", '::1 ident ""'),
        {
            "client_ip": "::1",
            "extra": [
                {"key": "remote_logname", "value": "ident"},
                {"key": "remote_user", "value": ""},
            ],
        },
        id="ipv6-logname-and-empty-user",
    ),
]


@pytest.mark.parametrize(("line", "changes"), LINE_CASES)
def test_combined_line_variants(line: str, changes: dict[str, Any]) -> None:
    expected = event("combined", LINE)
    expected.update(changes)
    assert event("combined", line) == expected


REJECT_CASES = [
    pytest.param(
        "Bad line",
        "line does not match format at char 8 (expected ' ' before %u, "
        "got end of line)",
        id="too-few-fields",
    ),
    pytest.param(
        LINE.replace(" 200 ", " abc "),
        'status: expected a 3-digit status at char 81, got "abc"',
        id="status-not-a-number",
    ),
    pytest.param(
        LINE.replace(" 200 ", " 20 "),
        'status: expected a 3-digit status at char 81, got "20"',
        id="status-two-digits",
    ),
    pytest.param(
        LINE.replace("10/Oct", "31/Feb"),
        'time: invalid date or time at char 18, got "[31/Feb/2000:13:55:36 -0700]"',
        id="impossible-date",
    ),
    pytest.param(
        LINE.replace("10/Oct/2000:13:55:36", "2000-10-10 13:55:36"),
        'time: expected [dd/Mon/yyyy:HH:MM:SS +zzzz] at char 18, got "[2000-10-10"',
        id="time-in-another-layout",
    ),
    pytest.param(
        LINE.replace("2326", "99999999999999999999999"),
        'body_bytes: invalid byte count at char 85, got "99999999999999999999999"',
        id="byte-count-overflows",
    ),
    pytest.param(
        LINE + " trailing",
        "line does not match format at char 140 (unexpected text after "
        '%{User-Agent}i: " trailing")',
        id="trailing-text",
    ),
    pytest.param(
        LINE.replace('"GET', "GET"),
        'line does not match format at char 46 (expected \' "\' before %r, got " GET")',
        id="request-without-opening-quote",
    ),
]


@pytest.mark.parametrize(("line", "reason"), REJECT_CASES)
def test_malformed_lines_are_rejected_with_a_reason(line: str, reason: str) -> None:
    result = parse("combined", [LINE, line])
    assert result.events.height == 1
    assert result.rejects.to_dicts() == [
        {
            "source": "test.log",
            "line_number": 2,
            "offset": len(LINE) + 1,
            "raw": line,
            "reason": reason,
        }
    ]


def test_empty_lines_are_skipped_not_rejected() -> None:
    result = parse("combined", ["", LINE, "\r", "", LINE])
    assert result.skipped == 3
    assert result.rejects.height == 0
    assert result.events.get_column("offset").to_list() == [1, len(LINE) + 5]


def test_megabyte_lines_do_not_crash() -> None:
    valid = LINE.replace("Mozilla/4.08", "M" * 1_000_000)
    garbage = "x " * 500_000
    result = parse("combined", [valid, garbage, '"' * 1_000_000])
    assert result.events.get_column("user_agent").str.len_chars().to_list() == [
        1_000_000
    ]
    assert result.rejects.get_column("reason").to_list() == [
        'time: expected [dd/Mon/yyyy:HH:MM:SS +zzzz] at char 6, got "x"',
        "line does not match format at char 1000000 (expected ' ' before %l, "
        "got end of line)",
    ]
    assert result.rejects.get_column("raw").str.len_chars().to_list() == [2054, 2054]


def test_crafted_line_does_not_stall_the_fallback() -> None:
    # Quotes, statuses and separators repeated: a backtracking matcher
    # takes hours on this; the fallback runs in time linear in the line.
    head = '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "'
    crafted = head + 'a" 200 1 "b" "' * 3000 + "x"
    result = parse("combined", [crafted, crafted[:-1] + '"'])
    assert result.rejects.get_column("line_number").to_list() == [1]
    # The lenient split takes the shortest request and referer: the agent
    # is all the repeats but the first.
    assert result.events.get_column("user_agent").str.len_chars().to_list() == [
        len('a" 200 1 "b" "') * 2999
    ]


def test_many_bad_lines_fall_back_quickly() -> None:
    lines = [f'{i} "a" "b" "c" "d" "e" "f" "g" "h"' * 20 for i in range(2_000)]
    result = parse("combined", lines)
    assert result.rejects.height == 2_000


FORMAT_CASES = [
    pytest.param(
        '%v:%p %a %{c}a %A %{remote}p %{local}p "%{X-Forwarded-For}i" %{Host}i',
        "www.example.org:443 10.0.0.1 10.0.0.2 10.1.1.1 51234 8443 "
        '"1.2.3.4, 5.6.7.8" example.org',
        {"client_ip": "10.0.0.1", "host": "example.org"},
        {
            "server_name": "www.example.org",
            "server_port": "443",
            "peer_addr": "10.0.0.2",
            "local_addr": "10.1.1.1",
            "remote_port": "51234",
            "local_port": "8443",
            "http_x_forwarded_for": "1.2.3.4, 5.6.7.8",
        },
        id="addresses-ports-headers",
    ),
    pytest.param(
        "%a:%{remote}p <-> %A:%p",
        "2001:db8::1:44782 <-> ::1:80",
        {"client_ip": "2001:db8::1"},
        {"remote_port": "44782", "local_addr": "::1", "server_port": "80"},
        id="ipv6-address-then-port",
    ),
    pytest.param(
        "%h %D %T %{ms}T",
        "1.2.3.4 1234567 1 1234",
        {"client_ip": "1.2.3.4", "duration_ms": 1234.567},
        {"duration_s": "1"},
        id="duration-from-microseconds-wins",
    ),
    pytest.param(
        "%h %{ms}T", "1.2.3.4 250", {"duration_ms": 250.0}, {}, id="duration-ms"
    ),
    pytest.param(
        "%h %T", "1.2.3.4 3", {"duration_ms": 3000.0}, {}, id="duration-seconds"
    ),
    pytest.param(
        "%s %>s %<s",
        "302 200 301",
        {"status": 200},
        {"original_status": "302"},
        id="final-status-wins",
    ),
    pytest.param("%s", "404", {"status": 404}, {}, id="status-alone"),
    pytest.param(
        '%m %U%q %H "%f" %P:%{tid}P %{hextid}P %k %X %I %O %S %L %R %^FB',
        'POST /cgi/x.pl?y=1 HTTP/1.1 "/srv/x.pl" 16:140168282543872 7fb9de5af700 '
        "3 + 412 1300 1712 WxYz1 cgi-script 1500",
        {
            "method": "POST",
            "path": "/cgi/x.pl",
            "query": "y=1",
            "protocol": "HTTP/1.1",
            "bytes": 1300,
        },
        {
            "request_file": "/srv/x.pl",
            "pid": "16",
            "tid": "140168282543872",
            "keepalive_requests": "3",
            "connection_status": "+",
            "bytes_received": "412",
            "bytes_transferred": "1712",
            "log_id": "WxYz1",
            "handler": "cgi-script",
            "ttfb_us": "1500",
        },
        id="request-parts-and-server-directives",
    ),
    pytest.param(
        "%{SESSION}C %{HOME}e %{note-x}n %{Content-Type}o %{grpc-status}^to",
        "abc /root - text/html 0",
        {},
        {
            "cookie_session": "abc",
            "env_home": "/root",
            "sent_http_content_type": "text/html",
            "trailer_out_grpc_status": "0",
        },
        id="named-variables",
    ),
    pytest.param(
        "%{%d/%b/%Y:%H:%M:%S}t.%{msec_frac}t %{%z}t %h",
        "10/Oct/2000:13:55:36.250 -0700 1.2.3.4",
        {"ts": utc(2000, 10, 10, 20, 55, 36, 250_000)},
        {},
        id="strftime-and-msec-frac",
    ),
    pytest.param(
        "[%{%d/%b/%Y %H:%M:%S}t] %h",
        "[29/Aug/2023 22:02:58] 1.2.3.4",
        {"ts": utc(2023, 8, 29, 22, 2, 58)},
        {},
        id="strftime-without-offset-is-utc-by-default",
    ),
    pytest.param(
        "%{%a %b %e %I:%M:%S %p %y}t",
        "Sun Jan  5 03:04:05 PM 99",
        {"ts": utc(1999, 1, 5, 15, 4, 5)},
        {},
        id="strftime-12-hour-space-padded-2-digit-year",
    ),
    pytest.param(
        "%{%Y %j %T %Z}t",
        "2019 032 01:02:03 GMT",
        {"ts": utc(2019, 2, 1, 1, 2, 3)},
        {},
        id="strftime-day-of-year-and-gmt",
    ),
    pytest.param(
        "%{sec}t %{msec}t %{usec}t",
        "1556888888 1556888888123 1556888888123456",
        {"ts": utc(2019, 5, 3, 13, 8, 8)},
        {},
        id="epoch-seconds-first",
    ),
    pytest.param(
        "%{usec}t",
        "1556888888123456",
        {"ts": utc(2019, 5, 3, 13, 8, 8, 123456)},
        {},
        id="epoch-microseconds",
    ),
    pytest.param(
        "%{sec}t.%{usec_frac}t",
        "1556888888.000042",
        {"ts": utc(2019, 5, 3, 13, 8, 8, 42)},
        {},
        id="epoch-seconds-and-usec-frac",
    ),
    pytest.param(
        "%{end:sec}t %{begin:msec}t",
        "1556888890 1556888888500",
        {"ts": utc(2019, 5, 3, 13, 8, 8, 500_000)},
        {"time_end": "2019-05-03T13:08:10Z"},
        id="begin-time-is-the-event-time",
    ),
    pytest.param(
        "%{end:%Y-%m-%dT%H:%M:%S%z}t",
        "2019-05-03T15:08:10+02:00",
        {"ts": utc(2019, 5, 3, 13, 8, 10)},
        {},
        id="end-time-when-alone",
    ),
    pytest.param(
        "%400,501{User-agent}i %!200,304{Referer}i %h",
        "- http://x/ 1.2.3.4",
        {"user_agent": None, "referer": "http://x/", "client_ip": "1.2.3.4"},
        {},
        id="status-conditions",
    ),
    pytest.param(
        "%h\t%u %%done",
        "1.2.3.4\tbob %done",
        {"client_ip": "1.2.3.4"},
        {"remote_user": "bob"},
        id="tab-and-percent-literals",
    ),
]


@pytest.mark.parametrize(("fmt", "line", "columns", "extras"), FORMAT_CASES)
def test_directives_map_to_columns_and_extra(
    fmt: str, line: str, columns: dict[str, Any], extras: dict[str, str]
) -> None:
    row = event(fmt, line)
    assert {name: row[name] for name in columns} == columns
    assert extra(row) == extras


def test_epoch_out_of_range_is_rejected_not_wrapped() -> None:
    result = parse("%h %{sec}t", ["h 99999999999999999", "h 9999999999999999999999"])
    assert result.rejects.get_column("reason").to_list() == [
        'time: invalid date or time at char 2, got "99999999999999999"',
        'time: invalid date or time at char 2, got "9999999999999999999999"',
    ]


def test_strftime_without_offset_uses_the_configured_zone() -> None:
    fmt = "[%{%d/%b/%Y %H:%M:%S}t]"
    winter = event(fmt, "[10/Jan/2021 12:00:00]", timezone="Europe/Berlin")
    summer = event(fmt, "[10/Jul/2021 12:00:00]", timezone="Europe/Berlin")
    fixed = event(fmt, "[10/Jul/2021 12:00:00]", timezone="-05:00")
    assert winter["ts"] == utc(2021, 1, 10, 11)
    assert summer["ts"] == utc(2021, 7, 10, 10)
    assert fixed["ts"] == utc(2021, 7, 10, 17)


def test_skipped_wall_time_in_zone_is_rejected() -> None:
    result = parse(
        "[%{%Y-%m-%d %H:%M:%S}t]", ["[2021-03-28 02:30:00]"], timezone="Europe/Berlin"
    )
    assert result.rejects.get_column("reason").to_list() == [
        'time: invalid date or time at char 1, got "2021 03 28 02 30 00"'
    ]


def test_logformat_line_from_httpd_conf() -> None:
    parser = compile_apache(
        'LogFormat "%h %l %u %t \\"%r\\" %>s %b" common', ParseOptions()
    )
    assert parser.name == "common"
    assert parser.format_text == '%h %l %u %t "%r" %>s %b'


def test_known_formats_are_named() -> None:
    assert compile_format('%h %l %u %t "%r" %>s %b').name == "common"
    assert compile_format("%h %u").name == "apache"


@pytest.mark.parametrize(
    "preset",
    [
        "common",
        "combined",
        "vhost_combined",
        "vhost_common",
        "common_debian",
        "combined_debian",
        "referer",
        "agent",
    ],
)
def test_presets_compile_and_parse(preset: str) -> None:
    lines = {
        "common": LINE.rsplit(' "', 2)[0],
        "combined": LINE,
        "vhost_combined": "example.com:80 " + LINE,
        "vhost_common": "example.com " + LINE.rsplit(' "', 2)[0],
        "common_debian": LINE.rsplit(' "', 2)[0],
        "combined_debian": LINE,
        "referer": "http://www.example.com/start.html -> /apache_pb.gif",
        "agent": "Mozilla/4.08 (X11; I; Linux 2.0.32 i586)",
    }
    result = parse(preset, [lines[preset]])
    assert result.rejects.height == 0
    assert compile_format(preset).name == preset


def test_referer_and_agent_presets_fill_their_columns() -> None:
    row = event("referer", "http://a.example/x -> /y/z")
    assert (row["referer"], row["path"]) == ("http://a.example/x", "/y/z")
    row = event("agent", "curl/8.1.2 (x86_64)")
    assert row["user_agent"] == "curl/8.1.2 (x86_64)"


BAD_FORMATS = [
    ("%", "invalid directive '%' at char 0 of LogFormat '%'", 0),
    ("%h %", "invalid directive '%' at char 3 of LogFormat '%h %'", 3),
    (
        '%h "%{Referer"',
        "invalid directive '%{' at char 4 of LogFormat '%h \"%{Referer\"'",
        4,
    ),
    ("%h %Q", "unknown directive '%Q' at char 3 of LogFormat '%h %Q'", 3),
    ("%{x}T", "unknown directive '%{x}T' at char 0 of LogFormat '%{x}T'", 0),
    ("%{gid}P", "unknown directive '%{gid}P' at char 0 of LogFormat '%{gid}P'", 0),
    ("%i", "unknown directive '%i' at char 0 of LogFormat '%i'", 0),
    (
        "%h %{%Y-%Q}t",
        "invalid time conversion '%Q' at char 3 of time format "
        "'%Y-%Q' (char 8 of the LogFormat)",
        8,
    ),
    (
        "%{%d/%b/%Y:%H:%M:%S %^z}t",
        "invalid time conversion '%^' at char 18 of "
        "time format '%d/%b/%Y:%H:%M:%S %^z' (char 20 of the LogFormat)",
        20,
    ),
]


@pytest.mark.parametrize(("fmt", "message", "position"), BAD_FORMATS)
def test_bad_formats_name_the_directive_and_position(
    fmt: str, message: str, position: int
) -> None:
    with pytest.raises(FormatError) as caught:
        compile_apache(fmt, ParseOptions())
    assert str(caught.value) == message
    assert caught.value.position == position


def test_parse_fields_gives_typed_directive_values() -> None:
    parser = compile_apache(
        '%h %{%Y-%m-%d}t %>s %b %D %{hextid}P %{%z}t "%r"', ParseOptions()
    )
    batch = LineBatch.from_strings(
        "x", ['h1 2019-05-06 404 - 12 ff -0130 "GET /a?b HTTP/1.1"', "", "bad"]
    )
    frame = parser.parse_fields(batch)
    assert frame.columns == [
        "%h",
        "%{%Y}t",
        "%{%m}t",
        "%{%d}t",
        "%>s",
        "%b",
        "%D",
        "%{hextid}P",
        "%{%z}t",
        "%r",
    ]
    assert frame.to_dicts() == [
        {
            "%h": "h1",
            "%{%Y}t": 2019,
            "%{%m}t": 5,
            "%{%d}t": 6,
            "%>s": 404,
            "%b": None,
            "%D": 12,
            "%{hextid}P": 255,
            "%{%z}t": -timedelta(hours=1, minutes=30),
            "%r": "GET /a?b HTTP/1.1",
        },
        dict.fromkeys(frame.columns),
    ]


def test_parser_pickles_as_its_recipe() -> None:
    parser = compile_format(COMBINED, ParseOptions(timezone="Europe/Paris"))
    clone = pickle.loads(pickle.dumps(parser))
    batch = LineBatch.from_strings("x", [LINE, "Bad line"])
    assert clone.name == "combined"
    assert clone.options == parser.options
    first, second = parser.parse(batch), clone.parse(batch)
    assert first.events.equals(second.events)
    assert first.rejects.equals(second.rejects)


def test_batches_of_many_lines_match_in_chunks() -> None:
    lines = [LINE.replace("2326", str(i)) for i in range(50_000)]
    lines[12_345] = "Bad line"
    result = parse("combined", lines)
    assert result.events.height == 49_999
    assert result.rejects.get_column("line_number").to_list() == [12_346]
    total = sum(range(50_000)) - 12_345
    assert result.events.get_column("bytes").sum() == total
    assert result.events.get_column("offset").is_sorted()


def test_empty_batch() -> None:
    result = parse("combined", [])
    assert result.events.height == 0 and result.rejects.height == 0
    assert result.events.schema == pl.Schema(EVENT_SCHEMA)
