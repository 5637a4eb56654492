"""Shared helpers of the field engine: request lines, escapes, extra."""

from __future__ import annotations

import polars as pl
import pytest

from logweir.formats.fields import (
    RequestParts,
    build_extra,
    request_columns,
    split_request_line,
    unescape_backslash,
    unescape_json,
)
from logweir.schema import EXTRA_TYPE

REQUESTS = [
    ("GET /a/b?c=1&d HTTP/1.1", RequestParts("GET", "/a/b", "c=1&d", "HTTP/1.1")),
    ("GET /a? HTTP/1.0", RequestParts("GET", "/a", "", "HTTP/1.0")),
    ("GET /a?b?c HTTP/2.0", RequestParts("GET", "/a", "b?c", "HTTP/2.0")),
    ("M-SEARCH * HTTP/1.1", RequestParts("M-SEARCH", "*", None, "HTTP/1.1")),
    ("GET /x", RequestParts("GET", "/x", None, None)),
    ("GET /a b HTTP/1.1", RequestParts("GET", "/a b", None, "HTTP/1.1")),
    ("GET /a b", RequestParts("GET", "/a b", None, None)),
    ("GET ?q=1 HTTP/1.1", RequestParts("GET", None, "q=1", "HTTP/1.1")),
    ("-", RequestParts(None, None, None, None)),
    ("", RequestParts(None, None, None, None)),
    ("\x16\x03\x01", RequestParts(None, None, None, None, unsplit="\x16\x03\x01")),
    ("GET", RequestParts(None, None, None, None, unsplit="GET")),
    (
        "1GET / HTTP/1.1",
        RequestParts(None, None, None, None, unsplit="1GET / HTTP/1.1"),
    ),
]


@pytest.mark.parametrize(("line", "parts"), REQUESTS)
def test_split_request_line(line: str, parts: RequestParts) -> None:
    assert split_request_line(line) == parts


@pytest.mark.parametrize(("line", "parts"), REQUESTS)
def test_request_columns_agree_with_split_request_line(
    line: str, parts: RequestParts
) -> None:
    frame = pl.DataFrame({"r": [line]}).select(
        **request_columns(pl.col("r"))  # type: ignore[arg-type]
    )
    assert frame.row(0) == (parts.method, parts.path, parts.query, parts.protocol)


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ('a\\"b\\\\c', 'a"b\\c'),
        ("t\\xc3\\xa9st", "tést"),
        ("t\\xe9st", "tést"),
        ("\\x00\\x1f\\n\\t", "\x00\x1f\n\t"),
        ("no escapes", "no escapes"),
        ("\\q stays", "\\q stays"),
        ("\\x4", "\\x4"),
        ("trailing \\", "trailing \\"),
    ],
)
def test_unescape_backslash(text: str, plain: str) -> None:
    assert unescape_backslash(text) == plain


@pytest.mark.parametrize(
    ("text", "plain"),
    [('a\\"b', 'a"b'), ("\\u00e9\\t", "é\t"), ("lone \\", "lone \\")],
)
def test_unescape_json(text: str, plain: str) -> None:
    assert unescape_json(text) == plain


def test_build_extra_skips_nulls_and_keeps_key_order() -> None:
    extra = build_extra(
        ["a", "b", "c"],
        [
            pl.Series([None, "x", None, "y"], dtype=pl.String),
            pl.Series([1, None, None, 2]),
            pl.Series([None, None, None, None], dtype=pl.String),
        ],
    )
    assert extra.dtype == EXTRA_TYPE
    assert extra.to_list() == [
        [{"key": "b", "value": "1"}],
        [{"key": "a", "value": "x"}],
        [],
        [{"key": "a", "value": "y"}, {"key": "b", "value": "2"}],
    ]


def test_build_extra_of_nothing() -> None:
    assert build_extra([], []).to_list() == []
    empty = build_extra(["a"], [pl.Series([], dtype=pl.String)])
    assert empty.to_list() == [] and empty.dtype == EXTRA_TYPE
