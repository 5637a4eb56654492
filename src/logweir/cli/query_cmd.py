"""``logweir query``: SQL over the lake (``events``) and the aggregate tables.

Examples::

    logweir query "SELECT status, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC"
    logweir query "SELECT * FROM windows WHERE dimension = 'all' LIMIT 5" --out out
    logweir query "SELECT path, count(*) n FROM events WHERE date = '2019-01-22'
                   GROUP BY path ORDER BY n DESC LIMIT 10" --format csv

``events`` has the canonical event columns plus ``date`` and ``hour`` (the
partition folders; filtering on them skips whole files). ``windows``,
``alerts`` and ``runs`` are the tables of ``OUT/logweir.duckdb``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from logweir.cli import plain_doc
from logweir.pipeline import DEFAULT_OUT


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "query",
        help="run SQL over the lake and the aggregate store",
        description=plain_doc(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sql", metavar="SQL", help="a DuckDB SQL statement")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output folder of logweir run"
    )
    parser.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        help="how to print the result (default: table)",
    )
    parser.set_defaults(handler=handle)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def _print_table(frame: pl.DataFrame) -> None:
    table = Table(box=box.SIMPLE_HEAD)
    for name, dtype in frame.schema.items():
        # fold, not cut: a query result must show every character it holds
        table.add_column(
            Text(name),
            justify="right" if dtype.is_numeric() else "left",
            overflow="fold",
            min_width=min(len(name), 12),
        )
    for row in frame.iter_rows():
        # Text: values come from logs, and "[/b]" in them is not rich markup
        table.add_row(*(Text(_cell(value)) for value in row))
    console = Console()
    console.print(table)
    rows = frame.height
    console.print(f"{rows} row{'s' if rows != 1 else ''}", style="dim")


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return _cell(value) if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, Decimal):
        # DuckDB's sum() of integers is DECIMAL or HUGEINT: keep whole
        # numbers exact as JSON integers, others as their decimal text.
        return int(value) if value == value.to_integral_value() else str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _printable(frame: pl.DataFrame) -> pl.DataFrame:
    """Nested columns (``extra``, lists) as JSON text, which CSV can hold."""
    nested = [
        name
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.List | pl.Struct | pl.Array)
    ]
    if not nested:
        return frame
    return frame.with_columns(
        pl.Series(name, [json.dumps(v, default=_json_value) for v in frame[name]])
        for name in nested
    )


def handle(args: argparse.Namespace) -> int:
    from logweir.pipeline.query import run_query

    frame = run_query(args.out, args.sql)
    if args.format == "json":
        json.dump(frame.to_dicts(), sys.stdout, default=_json_value, indent=None)
        sys.stdout.write("\n")
    elif args.format == "csv":
        sys.stdout.write(_printable(frame).write_csv())
    else:
        _print_table(_printable(frame))
    return 0
