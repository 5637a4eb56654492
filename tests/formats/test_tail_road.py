"""The tail road: formats that end with a quoted free-text field (``combined``
and its kin) cut it off with a byte search and run the capture regex on the
rest. Every line must come out exactly as the whole-line regex road gives it:
each test parses the same lines with and without the road and compares."""

from __future__ import annotations

from functools import cache

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logweir.formats import ParseOptions, compile_format
from logweir.formats.apache import compile_apache
from logweir.formats.engine import FormatParser
from logweir.formats.nginx import compile_nginx
from logweir.schema import LineBatch

COMBINED = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"'
NGINX = (
    '$remote_addr - $remote_user [$time_local] "$request" $status '
    '$body_bytes_sent "$http_referer" "$http_user_agent"'
)
LINE = (
    '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif?x=1 HTTP/1.0" '
    '200 2326 "http://x/start.html" "Mozilla/4.08 (X11)"'
)
HEAD = '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.0" 200 5 '
NGINX_LINE = (
    '10.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "POST /api HTTP/1.1" 201 17 '
    '"-" "curl/8.1.2"'
)


@cache
def parsers(spec: str) -> tuple[FormatParser, FormatParser]:
    """``spec`` compiled twice: with its tail road, and with the regex only."""
    road = compile_format(spec)
    plain = compile_format(spec)
    assert isinstance(road, FormatParser) and isinstance(plain, FormatParser)
    plain._tail = None
    return road, plain


def same_both_ways(spec: str, lines: list[str]) -> pl.DataFrame:
    """Parse ``lines`` on both roads; assert events, rejects and per-field
    values are equal; return the events."""
    road, plain = parsers(spec)
    assert road._tail is not None, spec
    batch = LineBatch.from_strings("t.log", lines)
    ours, theirs = road.parse(batch), plain.parse(batch)
    assert ours.events.equals(theirs.events), (lines, ours.events, theirs.events)
    assert ours.rejects.equals(theirs.rejects), (ours.rejects, theirs.rejects)
    assert ours.skipped == theirs.skipped
    assert road.parse_fields(batch).equals(plain.parse_fields(batch))
    return ours.events


def taken(spec: str, lines: list[str]) -> list[bool]:
    """Which lines the tail road itself takes (not left to the regex)."""
    road, _ = parsers(spec)
    assert road._tail is not None
    frame = pl.DataFrame({"line": lines}, schema={"line": pl.String})
    texts = road._tail.texts(frame.lazy()).collect()
    return texts.get_column(road.marker).is_not_null().to_list()


@pytest.mark.parametrize(
    ("spec", "has_road"),
    [
        ("combined", True),
        ("combined_debian", True),
        ("vhost_combined", True),
        ("nginx", True),
        ("nginx_combined", True),
        (COMBINED, True),
        # A second " " earlier in the format would be found first.
        ("nginx_main", False),
        ("common", False),
        ("vhost_common", False),
        ("agent", False),
        # One character is no separator to search for.
        ('%h "%{User-Agent}i"', False),
        # The last field is not free text.
        ('%h "%r" "%>s"', False),
    ],
)
def test_which_formats_have_the_road(spec: str, has_road: bool) -> None:
    parser = compile_format(spec)
    assert isinstance(parser, FormatParser)
    assert (parser._tail is not None) == has_road


def test_plain_lines_take_the_road_and_give_the_values() -> None:
    lines = [LINE, HEAD + '"-" "-"', HEAD + '"" ""']
    assert taken("combined", lines) == [True, True, True]
    events = same_both_ways("combined", lines)
    assert events.get_column("user_agent").to_list() == ["Mozilla/4.08 (X11)", None, ""]
    assert events.get_column("referer").to_list() == ["http://x/start.html", None, ""]
    assert events.get_column("path").to_list() == ["/a.gif", "/a", "/a"]
    assert events.get_column("query").to_list() == ["x=1", None, None]


EDGE_LINES = [
    # Escaped quotes and backslashes: left to the regex road, unescaped there.
    HEAD + '"-" "Mozilla \\"quoted\\" agent"',
    HEAD + '"http://x/\\"a\\"" "curl"',
    HEAD + '"-" "ends with a backslash\\\\"',
    HEAD + '"-" "a \\x41 escape"',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /\\"x HTTP/1.1" 200 5 "-" "a"',
    # "-" fields and an empty request.
    '- - - - "-" - - "-" "-"',
    HEAD + '"-" "-"',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "" 400 0 "-" "-"',
    # Spaces in the path: the lenient fallback splits the request.
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /odd path HTTP/1.1" 200 5 "-" "a b"',
    # The separator inside the agent, or more than once.
    HEAD + '"-" "a" "b"',
    HEAD + '"r" "" ""',
    HEAD + '"-" "a" "b" "c"',
    # Unescaped quotes (some servers): the lenient regex takes them.
    HEAD + '"-" "say "hi" now"',
    HEAD + '"a "b" c" "agent"',
    # The separator in the head: cut too early, left to the regex.
    '1" "2 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 5 "-" "x"',
    'a"b "c - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 5 "-" "x"',
    # Truncated lines and text after the closing quote.
    LINE[:-1],
    LINE[:-10],
    LINE.rsplit('"', 2)[0],
    LINE + " ",
    LINE + "x",
    LINE + '"',
    # Non-ASCII before and after the cut, NUL, U+FFFD.
    '1.2.3.4 - jürgen [10/Oct/2000:13:55:36 -0700] "GET /é HTTP/1.1" 200 5 "-" "ü"',
    HEAD + '"https://例え.jp/" "Mözilla 5.0 ✓"',
    HEAD + '"-" "nul\x00byte"',
    HEAD + '"-" "bad \ufffd byte"',
    HEAD + '"é" "é"',
    # Values that match but do not convert: rejects with the same reason.
    '1.2.3.4 - - [31/Feb/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 '
    '99999999999999999999999 "-" "x"',
    # Not a log line at all.
    '" "',
    '"-" "-"',
    "junk",
]


@pytest.mark.parametrize("spec", ["combined", COMBINED])
def test_edge_lines_equal_the_regex_road(spec: str) -> None:
    same_both_ways(spec, EDGE_LINES)
    # One line at a time too: the roads must agree line by line, not only
    # on a batch where the fallback sees them together.
    for line in EDGE_LINES:
        same_both_ways(spec, [line])


def test_only_clean_lines_are_taken() -> None:
    got = dict(zip(EDGE_LINES, taken("combined", EDGE_LINES), strict=True))
    # A backslash anywhere, or quotes after the cut, keep a line off the road.
    assert not got[HEAD + '"-" "Mozilla \\"quoted\\" agent"']
    assert not got[HEAD + '"-" "a \\x41 escape"']
    assert not got[HEAD + '"-" "a" "b"']
    assert not got[LINE[:-1]]
    assert not got[LINE + "x"]
    # Non-ASCII text is fine on both sides of the cut.
    assert got[HEAD + '"https://例え.jp/" "Mözilla 5.0 ✓"']
    assert got[
        '1.2.3.4 - jürgen [10/Oct/2000:13:55:36 -0700] "GET /é HTTP/1.1" 200 5 "-" "ü"'
    ]
    events = same_both_ways("combined", [HEAD + '"https://例え.jp/" "Mözilla 5.0 ✓"'])
    assert events.get_column("user_agent").to_list() == ["Mözilla 5.0 ✓"]
    assert events.get_column("referer").to_list() == ["https://例え.jp/"]


def test_escaped_agent_is_unescaped_like_before() -> None:
    events = same_both_ways(
        "combined", [HEAD + '"-" "Mozilla \\"quoted\\" \\xc3\\xa9"', LINE]
    )
    assert events.get_column("user_agent").to_list() == [
        'Mozilla "quoted" é',
        "Mozilla/4.08 (X11)",
    ]


def test_a_user_that_only_unescapes_to_two_quotes_is_not_empty() -> None:
    """Apache writes an empty user as ``""``; ``"\\"`` is a user that
    unescapes to two quotes. Values are converted before they are
    unescaped, on every road (found by the random test below)."""
    line = '1.2.3.4 - "\\" [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 5 "" ""'
    empty = '1.2.3.4 - "" [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 5 "" ""'
    events = same_both_ways("combined", [line, empty])
    users = [
        {item["key"]: item["value"] for item in extra}.get("remote_user")
        for extra in events.get_column("extra").to_list()
    ]
    assert users == ['""', ""]


def test_nginx_and_vhost_combined() -> None:
    same_both_ways("nginx", [NGINX_LINE, NGINX_LINE[:-3], NGINX_LINE + '"'])
    same_both_ways(NGINX, [NGINX_LINE, NGINX_LINE.replace("curl", 'cu\\"rl')])
    vhost = 'www.example.com:80 10.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET / '
    same_both_ways(
        "vhost_combined",
        [vhost + 'HTTP/1.1" 200 5 "-" "-"', vhost + 'HTTP/1.1" 200 5 "-" "a" "b"'],
    )


def test_json_escaped_nginx_format() -> None:
    parser = compile_nginx(NGINX, ParseOptions(), escape="json")
    plain = compile_nginx(NGINX, ParseOptions(), escape="json")
    plain._tail = None
    lines = [NGINX_LINE, NGINX_LINE.replace("curl", 'cu\\"rl\\u00e9')]
    batch = LineBatch.from_strings("t.log", lines)
    assert parser._tail is not None
    assert parser.parse(batch).events.equals(plain.parse(batch).events)


def test_a_big_batch_in_chunks_equals_the_regex_road() -> None:
    # Enough lines for one chunk per thread, with refused lines in each
    # chunk: they are put back into their own chunk.
    lines = [LINE if i % 7 else EDGE_LINES[i % len(EDGE_LINES)] for i in range(50_000)]
    events = same_both_ways("combined", lines)
    assert events.height > 40_000


def test_pickled_parser_keeps_the_road() -> None:
    import pickle

    parser = compile_apache(COMBINED, ParseOptions())
    again = pickle.loads(pickle.dumps(parser))
    assert again._tail == parser._tail


PIECES = [*'ab -"\\/?é\x00ü', "\\x41", '\\"']
FIELD = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    user=FIELD,
    request=FIELD,
    referer=FIELD,
    agent=FIELD,
    cut=st.integers(min_value=0, max_value=160),
    tail=st.sampled_from(["", '"', " ", 'x"', '" "', "\\"]),
)
def test_random_lines_equal_the_regex_road(
    user: str, request: str, referer: str, agent: str, cut: int, tail: str
) -> None:
    user = user.replace(" ", "") or "-"
    line = (
        f'1.2.3.4 - {user} [10/Oct/2000:13:55:36 -0700] "GET /{request} HTTP/1.1" '
        f'200 5 "{referer}" "{agent}"'
    )
    same_both_ways("combined", [line, line + tail, line[:cut], line[:cut] + tail])


@pytest.mark.parametrize(
    ("fmt", "lines"),
    [
        (
            '%v:%p %h %l %u %{%d/%b/%Y %H:%M:%S}t "%r" %>s %O "%{Referer}i" '
            '"%{User-Agent}i"',
            [
                'www:443 1.2.3.4 - - 10/Oct/2000 13:55:36 "GET / HTTP/1.1" 200 5 '
                '"-" "agent one"',
                'www:443 1.2.3.4 - - 10/Oct/2000 13:55:36 "GET / HTTP/1.1" 200 5 '
                '"-" "agent "two""',
                'www:443 1.2.3.4 - - 31/Feb/2000 13:55:36 "GET / HTTP/1.1" 200 5 '
                '"-" "x"',
            ],
        ),
        (
            # A status condition: the last field may be logged as "-".
            '%h %400,501{User-agent}i "%!200{Referer}i"',
            [
                '1.2.3.4 curl "-"',
                '1.2.3.4 - "http://x/"',
                '1.2.3.4 - "http://x/" ',
                '1.2.3.4 "curl" "a"',
            ],
        ),
    ],
)
def test_pasted_formats_equal_the_regex_road(fmt: str, lines: list[str]) -> None:
    same_both_ways(fmt, lines)
