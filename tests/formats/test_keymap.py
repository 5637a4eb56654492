"""Helpers of the key table: distinct values, extra lists, dashes, chunks."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from logweir.formats.flextime import TimeContext
from logweir.formats.keymap import (
    KeyTable,
    build_extra,
    by_distinct,
    convert,
    resolve,
    resolve_and_convert,
)


def test_by_distinct_equals_deriving_every_row() -> None:
    values = pl.Series(["b", None, "a", "b", "", "a", "b", "b"])

    def derive(texts: pl.Series) -> pl.DataFrame:
        return pl.DataFrame({"upper": texts.str.to_uppercase(), "size": texts.len()})

    spread = by_distinct(values, derive)
    assert spread.get_column("upper").to_list() == [
        "B", None, "A", "B", "", "A", "B", "B",
    ]  # fmt: skip
    # Derived once, on the three distinct values.
    assert spread.get_column("size").to_list() == [3, None, 3, 3, 3, 3, 3, 3]
    assert by_distinct(pl.Series([None, None], dtype=pl.String), derive).height == 2


@pytest.mark.parametrize(
    "values",
    [
        [["1", "2", "3"], ["x", "y", "z"]],
        [["1", None, "3"], [None, None, "z"]],
        [["only"] * 3],
    ],
)
def test_extra_lists_leave_out_nulls_and_keep_key_order(
    values: list[list[str | None]],
) -> None:
    keys = [f"k{index}" for index in range(len(values))]
    columns = [pl.Series(column, dtype=pl.String) for column in values]
    expected = [
        [
            {"key": key, "value": column[row]}
            for key, column in zip(keys, values, strict=True)
            if column[row] is not None
        ]
        for row in range(3)
    ]
    assert build_extra(keys, columns, 3).to_list() == expected


@pytest.mark.parametrize(
    ("text", "dash"),
    [
        ("-", True),
        ("", True),
        (" - ", True),
        ("\u3000-\t", True),
        ("\u00a0", True),
        ("--", False),
        ("- -", False),
        ("a", False),
        ("-a", False),
    ],
)
def test_a_dash_or_nothing_is_null_in_http_columns(text: str, dash: bool) -> None:
    raw = pl.DataFrame(
        {
            "row": pl.Series([0], dtype=pl.UInt32),
            "client_ip": [text],
            "status": [text],
            "request": [text],
        }
    )
    ctx = TimeContext("UTC", 2024, datetime(2024, 6, 1, tzinfo=UTC))
    converted = convert(raw, ctx, guessed=("client_ip", "status", "request"))
    row = converted.row(0, named=True)
    assert (row["client_ip"] is None) == dash
    assert row["status"] is None
    assert (row["extra"] == []) == dash


def test_chunks_in_threads_equal_one_piece() -> None:
    rows = 120_000
    index = pl.int_range(rows)
    fields = pl.select(
        (200 + index % 5).cast(pl.String).alias("status"),
        (pl.lit("GET /a/") + (index % 300).cast(pl.String)).alias("request"),
        ((index % 9).cast(pl.String) + pl.lit("ms")).alias("latency"),
        pl.when(index % 3 == 0).then(pl.lit("x")).alias("odd"),
    )
    table = KeyTable.build()
    ctx = TimeContext("UTC", 2024, datetime(2024, 6, 1, tzinfo=UTC))
    row_ids = pl.int_range(rows, dtype=pl.UInt32, eager=True)
    chunked = resolve_and_convert(row_ids, fields, table, ctx)
    whole = convert(resolve(row_ids, fields, table), ctx, guessed=table.guessed)
    assert chunked.equals(whole)
