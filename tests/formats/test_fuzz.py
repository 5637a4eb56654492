"""Random and truncated input never raises in any parser: it parses or is rejected."""

from __future__ import annotations

from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logweir.formats import PRESETS, Parser, compile_format
from logweir.schema import LineBatch

SPECS = [
    *sorted(PRESETS),
    r"regex:^(?P<ts>\S+) (?P<status>\d+) (?P<message>.*)$",
    r"regex:(?<=x)(?P<level>\w+)",
    "grok:%{HTTPD_COMBINEDLOG}",
    "grok:%{SYSLOGLINE}",
]

GOOD_LINES = [
    '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326 '
    '"http://x/" "Mozilla/4.08"',
    'www.example.com:80 10.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" '
    '200 5 "-" "-"',
    '{"ts": "2024-03-01T12:00:00Z", "status": 200, "msg": "hi", '
    '"nested": {"a": [1, 2]}}',
    '<165>1 2003-10-11T22:14:15.003Z host app 1 ID47 [x@1 a="b"] message',
    "Nov  3 09:23:38 veridian automount[7998]: lookup failed",
    'time="2021-09-15T21:17:10Z" level=error msg="not found" status=404',
]


@cache
def parser(spec: str) -> Parser:
    return compile_format(spec)


def check(spec: str, lines: list[str]) -> None:
    result = parser(spec).parse(LineBatch.from_strings("fuzz", lines))
    parsed = result.events.height + result.rejects.height + result.skipped
    assert parsed == len(lines), spec
    assert result.rejects.get_column("reason").null_count() == 0


def decoded(data: bytes) -> list[str]:
    text = data.decode("utf-8", "replace")
    return text.split("\n")


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    spec=st.sampled_from(SPECS),
    blobs=st.lists(st.binary(max_size=200), min_size=1, max_size=6),
)
def test_random_bytes_never_raise(spec: str, blobs: list[bytes]) -> None:
    lines = [line for blob in blobs for line in decoded(blob)]
    check(spec, lines)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=st.sampled_from(SPECS),
    line=st.sampled_from(GOOD_LINES),
    cut=st.integers(min_value=0, max_value=200),
    noise=st.sampled_from(["", "\x00", "\r", "\ufffd", '"', "\\", "]", "{", "%", "é"]),
)
def test_truncated_and_spliced_lines_never_raise(
    spec: str, line: str, cut: int, noise: str
) -> None:
    lines = [line[:cut], line[:cut] + noise + line[cut:], noise * 3, line]
    check(spec, lines)


def test_huge_and_odd_lines() -> None:
    odd = [
        "x" * 1_000_000,
        '{"msg": "' + "y" * 1_000_000 + '"}',
        "\x00" * 10,
        "\ufeff",
        "\r",
        "\t\t",
        "Nov  3 09:23:38 " + "h" * 10_000,
    ]
    for spec in SPECS:
        check(spec, odd)
