"""logfmt: ``key=value key2="quoted value"`` lines.

>>> from logweir.formats import compile_format
>>> parser = compile_format("logfmt")

Keys and values may be wrapped in double quotes, inside which ``\\"``,
``\\\\``, ``\\n``, ``\\t`` and ``\\r`` are escapes. A key standing alone
(``debug``) has the value ``true``. Keys map onto the schema through the
same table as JSON keys (:mod:`logweir.formats.keymap`), so ``ts``,
``level``, ``msg``, ``status``, ``duration`` … land in their columns and
the rest in ``extra``. When a key repeats on one line, the first value is
used and the others are dropped.

A line whose text is not all pairs (an unclosed quote, a stray ``"``), or
that has no ``key=value`` pair at all, is rejected with the column where
the pairs stop.
"""

from __future__ import annotations

import re

import polars as pl

from logweir.formats.base import ParseOptions, Parser
from logweir.formats.flextime import TimeContext
from logweir.formats.keymap import KeyTable, convert, resolve
from logweir.formats.lineprep import assemble, prepare
from logweir.formats.timeutil import check_timezone
from logweir.schema import LineBatch, ParseResult

_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PAIR = rf'(?:{_QUOTED}|[^\s="]+)(?:=(?:{_QUOTED}|[^\s"]\S*)?)?'
_SPLIT = rf'^(?P<key>{_QUOTED}|[^\s="]+)(?P<eq>=?)(?P<value>.*)$'
_ESCAPE = re.compile(r"\\(.)")
_ESCAPED = {"n": "\n", "t": "\t", "r": "\r"}
_PAIR_PYTHON = re.compile(_PAIR)


class LogfmtParser(Parser):
    """logfmt lines to canonical events; see the module docstring."""

    name = "logfmt"

    def __init__(self, options: ParseOptions | None = None) -> None:
        self.options = options or ParseOptions()
        check_timezone(self.options.timezone)
        self.table = KeyTable.build(self.options.json_mapping)

    def parse(self, batch: LineBatch) -> ParseResult:
        prepared = prepare(batch)
        ctx = TimeContext.current(self.options.timezone, self.options.reference_year)
        lines = prepared.frame.with_columns(
            pl.col("line").str.extract_all(_PAIR).alias("pairs"),
        )
        # The pairs cover the line when no other visible character is left:
        # count the visible characters of both (cheaper than a second pass
        # of the pair regex).
        covered = pl.col("pairs").list.join("").str.count_matches(r"\S") == pl.col(
            "line"
        ).str.count_matches(r"\S")
        good = (
            covered
            & pl.col("pairs")
            .list.eval(pl.element().str.contains("=", literal=True))
            .list.any()
        )
        bad = lines.filter(~good)
        rejects = pl.DataFrame(
            {
                "row": bad.get_column("row"),
                "_reason": pl.Series(
                    [_diagnose(line) for line in bad.get_column("line").to_list()],
                    dtype=pl.String,
                ),
            }
        )
        ok = lines.filter(good)
        fields = _pairs_to_fields(ok)
        picked = resolve(ok.get_column("row"), fields, self.table)
        parsed = convert(picked, ctx, guessed=self.table.guessed)
        return assemble(batch, prepared, pl.concat([parsed, rejects], how="diagonal"))


def _pairs_to_fields(lines: pl.DataFrame) -> pl.DataFrame:
    """One string column per key, one row per line of ``lines``."""
    pairs = lines.select(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("␟row"), "pairs"
    ).explode("pairs")
    if pairs.height == 0:
        return pl.DataFrame()
    # Most keys are bare words: split them at the first "="; only quoted
    # keys (rare) need the regex, on just those pairs.
    plain = pairs.get_column("pairs").str.splitn("=", 2).struct.unnest()
    pairs = pairs.with_columns(
        plain.get_column("field_0").alias("raw_key"),
        plain.get_column("field_1").alias("raw_value"),
    )
    quoted_key = pairs.get_column("pairs").str.starts_with('"').fill_null(False)
    if quoted_key.any():
        index = quoted_key.arg_true()
        split = pairs.get_column("pairs").gather(index).str.extract_groups(_SPLIT)
        parts = split.struct.unnest().with_columns(
            pl.when(pl.col("eq") == "=").then(pl.col("value")).alias("value")
        )
        pairs = pairs.with_columns(
            pairs.get_column("raw_key").scatter(index, parts.get_column("key")),
            pairs.get_column("raw_value").scatter(index, parts.get_column("value")),
        )
    pairs = pairs.with_columns(
        _unquote(pl.col("raw_key")).alias("key"),
        pl.when(pl.col("raw_value").is_null())
        .then(pl.lit("true"))
        .otherwise(_unquote(pl.col("raw_value")))
        .alias("value"),
    )
    pairs = _unescape(pairs)
    wide = pairs.pivot(
        on="key", index="␟row", values="value", aggregate_function="first"
    )
    full = pl.DataFrame(
        {"␟row": pl.int_range(lines.height, dtype=pl.UInt32, eager=True)}
    )
    return full.join(wide, on="␟row", how="left").drop("␟row")


def _unquote(text: pl.Expr) -> pl.Expr:
    quoted = (
        text.str.starts_with('"')
        & text.str.ends_with('"')
        & (text.str.len_chars() >= 2)
    )
    return (
        pl.when(quoted)
        .then(text.str.slice(1, text.str.len_chars() - 2))
        .otherwise(text)
    )


def _unescape(pairs: pl.DataFrame) -> pl.DataFrame:
    """Resolve backslash escapes in quoted keys and values (rare: per value)."""
    for name in ("key", "value"):
        raw = pl.col(f"raw_{name}")
        needs = raw.str.starts_with('"') & raw.str.contains("\\", literal=True)
        index = pairs.select(needs.fill_null(False)).to_series().arg_true()
        if index.len():
            fixed = [
                _ESCAPE.sub(lambda match: _ESCAPED.get(match[1], match[1]), text)
                for text in pairs.get_column(name).gather(index).to_list()
            ]
            pairs = pairs.with_columns(
                pairs.get_column(name).scatter(index, pl.Series(fixed, dtype=pl.String))
            )
    return pairs


def _diagnose(line: str) -> str:
    """Where the pairs stop (slow path, for rejected lines only)."""
    position = 0
    seen_pair = False
    while position < len(line):
        if line[position].isspace():
            position += 1
            continue
        match = _PAIR_PYTHON.match(line, position)
        if match is None or match.end() == position:
            if line[position] == '"':
                return f"not logfmt: unclosed quote at column {position + 1}"
            return f"not logfmt: unexpected {line[position]!r} at column {position + 1}"
        seen_pair = seen_pair or "=" in match.group()
        position = match.end()
    return "not logfmt: no key=value pair"


__all__ = ["LogfmtParser"]
