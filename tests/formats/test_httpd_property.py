"""Round trips: random Apache / Nginx formats and values, rendered the way
the servers write them, parse back to the same values."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logweir.formats import ParseOptions
from logweir.formats.apache import compile_apache
from logweir.formats.nginx import compile_nginx
from logweir.schema import LineBatch

MONTHS = [
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
]


def apache_escape(text: str) -> str:
    """How httpd writes a string into a log (``ap_escape_logitem``)."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif byte < 0x20 or byte >= 0x7F:
            out.append(f"\\x{byte:02x}")
        else:
            out.append(char)
    return "".join(out)


def nginx_escape(text: str) -> str:
    """How nginx writes a variable with ``escape=default``."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char in '"\\' or byte < 0x20 or byte >= 0x7F:
            out.append(f"\\x{byte:02X}")
        else:
            out.append(char)
    return "".join(out)


def clf(when: datetime) -> str:
    offset = when.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return (
        f"{when.day:02d}/{MONTHS[when.month - 1]}/{when.year:04d}:"
        f"{when:%H:%M:%S} {sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    )


@dataclass(frozen=True)
class Token:
    """A format token, how to draw a value, render it and what comes back."""

    text: str
    values: st.SearchStrategy[Any]
    render: Callable[[Any], str]
    expect: Callable[[Any], Any] = lambda value: value


zones = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
# Naive wall times in a drawn offset: ``timezones=`` makes them aware.
times = st.datetimes(
    datetime(1970, 1, 2),  # noqa: DTZ001 - bounds of naive draws
    datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=zones,
).map(lambda d: d.replace(microsecond=0))
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
words = st.text("abcdefghijklmnopqrstuvwxyz0123456789_.", min_size=1, max_size=12)
free_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40
)
paths = st.lists(
    st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.%~", max_size=8), max_size=4
).map(lambda parts: "/" + "/".join(parts))
queries = st.none() | st.text("abcdefghijklmnopqrstuvwxyz0123456789=&%+", max_size=12)
spaced_paths = paths.map(lambda p: p + " x") | paths


def request_line(method: str, path: str, query: str | None, proto: str) -> str:
    return f"{method} {path}{'' if query is None else '?' + query} {proto}"


requests = st.builds(
    request_line,
    st.sampled_from(["GET", "POST", "HEAD", "PUT", "PROPFIND", "M-SEARCH"]),
    spaced_paths,
    queries,
    st.sampled_from(["HTTP/1.0", "HTTP/1.1", "HTTP/2.0"]),
)


def dash_or(value: Any, render: Callable[[Any], str] = str) -> str:
    return "-" if value is None else render(value)


def quoted_text(escape: Callable[[str], str]) -> Callable[[str], str]:
    return lambda value: '"' + escape(value) + '"'


def text_expect(value: str) -> str | None:
    return None if value == "-" else value


APACHE_TOKENS = [
    Token("%h", ipv4, str),
    Token("%a", ipv4, str),
    Token("%u", st.none() | words, dash_or),
    Token("%>s", st.integers(100, 599), str),
    Token("%s", st.integers(0, 999), lambda v: f"{v:03d}"),
    Token("%b", st.none() | st.integers(0, 10**15), dash_or),
    Token("%O", st.integers(0, 10**15), str),
    Token("%D", st.integers(0, 10**9), str),
    Token("%{ms}T", st.integers(0, 10**6), str),
    Token("%k", st.integers(0, 1000), str),
    Token("%P", st.integers(1, 4_000_000), str),
    Token("%t", times, lambda v: f"[{clf(v)}]", lambda v: v.astimezone(UTC)),
    Token("%{sec}t", st.integers(0, 4_000_000_000), str),
    Token('"%r"', requests, quoted_text(apache_escape)),
    Token('"%{X-Test}i"', free_text, quoted_text(apache_escape), text_expect),
    Token('"%{Referer}i"', free_text, quoted_text(apache_escape), text_expect),
    Token("%X", st.sampled_from("X+-"), str),
]

NGINX_TOKENS = [
    Token("$remote_addr", ipv4, str),
    Token("$remote_user", st.none() | words, dash_or),
    Token("$status", st.integers(100, 599), str),
    Token("$body_bytes_sent", st.integers(0, 10**15), str),
    Token("$request_length", st.integers(0, 10**9), str),
    Token(
        "$request_time",
        st.integers(0, 10**7),
        lambda v: f"{v / 1000:.3f}",
        lambda v: v / 1000,
    ),
    Token(
        "$upstream_response_time",
        st.lists(st.integers(0, 10**6), min_size=1, max_size=3),
        lambda v: ", ".join(f"{x / 1000:.3f}" for x in v),
        lambda v: round(sum(v) / 1000, 6),
    ),
    Token("[$time_local]", times, lambda v: f"[{clf(v)}]", lambda v: v.astimezone(UTC)),
    Token("$time_iso8601", times, lambda v: v.isoformat(), lambda v: v.astimezone(UTC)),
    Token(
        "$msec",
        st.integers(0, 4 * 10**12),
        lambda v: f"{v // 1000}.{v % 1000:03d}",
        lambda v: v / 1000,
    ),
    Token('"$request"', requests, quoted_text(nginx_escape)),
    Token('"$http_user_agent"', free_text, quoted_text(nginx_escape), text_expect),
    Token('"$cookie_id"', free_text, quoted_text(nginx_escape), text_expect),
    Token("$connection", st.integers(1, 10**9), str),
]

SEPARATORS = [" ", " | ", " :: ", "\t", " - "]


def field_name(token: Token) -> str:
    """The column parse_fields names after a token: the bare directive."""
    text = token.text.strip('"')
    return text[1:-1] if text.startswith("[") else text


@st.composite
def formats_and_lines(
    draw: st.DrawFn, tokens: list[Token]
) -> tuple[str, str, dict[str, Any]]:
    chosen = draw(
        st.lists(
            st.sampled_from(tokens), min_size=1, max_size=8, unique_by=lambda t: t.text
        )
    )
    seps = [draw(st.sampled_from(SEPARATORS)) for _ in chosen[1:]]
    values = [draw(token.values) for token in chosen]
    fmt, line = chosen[0].text, chosen[0].render(values[0])
    for sep, token, value in zip(seps, chosen[1:], values[1:], strict=True):
        fmt += sep + token.text
        line += sep + token.render(value)
    expected = {
        field_name(token): token.expect(value)
        for token, value in zip(chosen, values, strict=True)
    }
    return fmt, line, expected


def roundtrip(parser: Any, line: str) -> dict[str, Any]:
    batch = LineBatch.from_strings("prop", [line])
    result = parser.parse(batch)
    assert result.rejects.height == 0, result.rejects.to_dicts()
    assert result.events.height == 1
    row: dict[str, Any] = parser.parse_fields(batch).to_dicts()[0]
    return row


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(formats_and_lines(APACHE_TOKENS))
def test_apache_roundtrip(case: tuple[str, str, dict[str, Any]]) -> None:
    fmt, line, expected = case
    assert roundtrip(compile_apache(fmt, ParseOptions()), line) == expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(formats_and_lines(NGINX_TOKENS))
def test_nginx_roundtrip(case: tuple[str, str, dict[str, Any]]) -> None:
    fmt, line, expected = case
    assert roundtrip(compile_nginx(fmt, ParseOptions()), line) == expected
