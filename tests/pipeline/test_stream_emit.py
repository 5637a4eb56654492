"""Follow mode's fast path for the top lists of the open windows.

``windows.emit`` forms the ``top_*`` columns of few item rows (the open
windows that follow mode publishes several times a second) with NumPy and
Python instead of one Polars query; both must give the same text.
"""

from __future__ import annotations

import io

import polars as pl
import pytest

from logweir.formats.base import ParseOptions
from logweir.formats.registry import compile_format
from logweir.gen import generate
from logweir.schema import LineBatch
from logweir.windows import WindowAggregator, emit

#: Paths and agents a JSON writer must escape, or that sort oddly.
ODD = [
    '/q?a="b"',
    "/back\\slash",
    "/tab\there",
    "/ctl\x01\x1f",
    "/üñí/😀",
    "/\u2028",
    "/a",
    "/B",
]


def _events(seconds: int) -> pl.DataFrame:
    buffer = io.BytesIO()
    generate(4_000, buffer, seed=7, malformed_share=0.0, disorder_share=0.0)
    lines = buffer.getvalue().decode().splitlines()
    stamp = "[10/Oct/2026:13:55:{:02d} +0000]"
    for number, path in enumerate(ODD * 3):
        agent = path.replace("/", "agent ")
        quoted = path.replace("\\", "\\\\").replace('"', '\\"')
        when = stamp.format(number % seconds)
        lines.append(
            f'10.0.0.{number} - - {when} "GET {quoted} HTTP/1.1" 200 {number} '
            f'"-" "{agent}"'
        )
    parser = compile_format("combined", ParseOptions(timezone="UTC"))
    result = parser.parse(LineBatch.from_strings("test", lines))
    return result.events


@pytest.mark.parametrize("top_n", [1, 3, 10])
def test_small_top_lists_equal_the_query(
    monkeypatch: pytest.MonkeyPatch, top_n: int
) -> None:
    events = _events(60)
    assert events.height > 4_000

    def rows(small: int, peek: bool) -> pl.DataFrame:
        monkeypatch.setattr(emit, "SMALL_TOP_ROWS", small)
        aggregator = WindowAggregator("1m,5m", top_n=top_n, lateness_s=60)
        aggregator.update(events)
        return aggregator.peek() if peek else aggregator.finish()

    for peek in (True, False):
        fast, query = rows(1 << 30, peek), rows(0, peek)
        assert fast.height == query.height > 0
        assert fast.equals(query), "the two ways of forming top lists differ"
        tops = fast.select(pl.col("^top_.*$")).to_series(0).drop_nulls()
        assert tops.len() > 0
    # the odd texts made it into some list, escaped as JSON
    texts = " ".join(
        fast.select(pl.concat_str(pl.col("^top_.*$"), ignore_nulls=True))
        .to_series()
        .to_list()
    )
    assert '\\"b\\"' in texts or top_n < 3
