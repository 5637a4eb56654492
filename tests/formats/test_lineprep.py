"""Preparing lines (CRs, blank lines), scanning bytes, assembling results."""

from __future__ import annotations

import polars as pl
import pytest

from logweir.formats.lineprep import assemble, capture, prepare, scan
from logweir.schema import LineBatch

ODD_LINES = [
    "",
    "a",
    "-" * 12,
    "x" * 13,
    "é" * 7,
    "\u3000 \t",
    "  leading",
    "trailing\r",
    "\r",
    "😀" * 4,
]


@pytest.mark.parametrize(
    "lines",
    [
        pl.Series(ODD_LINES),
        pl.Series(ODD_LINES * 3).filter(pl.Series([True, False, True] * 10)),
        pl.Series(ODD_LINES * 3).slice(5, 17),
        pl.concat([pl.Series(ODD_LINES), pl.Series(ODD_LINES)], rechunk=False),
        pl.Series([], dtype=pl.String),
    ],
)
def test_scan_reads_lengths_and_first_bytes_from_the_views(lines: pl.Series) -> None:
    found = scan(lines)
    encoded = [text.encode() for text in lines.to_list()]
    assert found.length.tolist() == [len(text) for text in encoded]
    assert found.first.tolist() == [text[0] if text else 0 for text in encoded]


def test_prepare_strips_crs_and_leaves_out_blank_lines() -> None:
    batch = LineBatch.from_strings("s", ["a\r", "", " \t ", "\u3000", "\u00a0b", "c"])
    prepared = prepare(batch)
    assert prepared.rows.to_list() == [0, 4, 5]
    assert prepared.lines.to_list() == ["a", "\u00a0b", "c"]
    assert prepared.skipped == 3


def test_assemble_keeps_rejected_lines_apart_and_in_order() -> None:
    batch = LineBatch.from_strings("s", ["one", "two\r", "three", "four"])
    prepared = prepare(batch)
    parsed = pl.DataFrame(
        {
            "row": pl.Series([0, 3], dtype=pl.UInt32),
            "message": ["one", "four"],
            "_reason": pl.Series([None, "bad four"], dtype=pl.String),
        }
    )
    rejected = pl.DataFrame(
        {"row": pl.Series([2, 1], dtype=pl.UInt32), "_reason": ["bad 3", "bad 2"]}
    )
    result = assemble(batch, prepared, parsed, rejected=rejected)
    assert result.events.select("message", "offset").rows() == [("one", 0)]
    assert result.rejects.select("line_number", "offset", "raw", "reason").rows() == [
        (2, 4, "two", "bad 2"),
        (3, 9, "three", "bad 3"),
        (4, 15, "four", "bad four"),
    ]
    assert result.skipped == 0


def test_capture_runs_in_chunks_and_keeps_the_order() -> None:
    lines = pl.Series([f"k={index}" for index in range(45_000)])
    found = capture(
        lines,
        r"^k=(?P<n>\d+)$",
        [pl.col("␟groups").struct.field("n").cast(pl.Int64).alias("n")],
    )
    assert found.get_column("n").to_list() == list(range(45_000))
