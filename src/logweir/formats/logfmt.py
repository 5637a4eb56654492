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

How, in two roads, like JSON lines (:mod:`logweir.formats.jsonl`):

1. **Shapes**: a logger writes the same keys in the same order on every
   line. The keys of the most common line of a sample make one regex
   (``^time=(…)\\s+level=(…)…$``) that checks and captures a whole line of
   that shape in one vectorized pass; up to :data:`MAX_SHAPES` shapes are
   tried, each on the lines the one before left.
2. **Pairs**: the lines left are cut into pairs by a pair regex
   (``str.extract_all``) and the pairs turned into columns with a pivot,
   which costs about ten times more per line.

The shape regex accepts a line only where the pair regex would read the
same pairs (same value syntax, pairs separated by whitespace), so both
roads give the same fields; a line with a key twice, a quoted key or two
pairs written together (``a="x"b=1``) takes the second road.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from logweir.formats.base import ParseOptions, Parser
from logweir.formats.fields import regex_literal
from logweir.formats.flextime import TimeContext
from logweir.formats.jsonshape import common_shape
from logweir.formats.keymap import (
    FieldsPart,
    KeyTable,
    merge_parts,
    resolve_and_convert,
)
from logweir.formats.lineprep import (
    Matched,
    assemble,
    capture,
    diagnosed,
    prepare,
    shape_road,
)
from logweir.formats.timeutil import check_timezone
from logweir.schema import LineBatch, ParseResult

#: Shapes of line tried on the fast road before the rest is cut into pairs.
MAX_SHAPES = 4

_QUOTED = r'"(?:[^"\\]|\\.)*"'
_VALUE = rf'(?:{_QUOTED}|[^\s"]\S*)'
_PAIR = rf'(?:{_QUOTED}|[^\s="]+)(?:={_VALUE}?)?'
_SPLIT = rf'^(?P<key>{_QUOTED}|[^\s="]+)(?P<eq>=?)(?P<value>.*)$'
_ESCAPE = re.compile(r"\\(.)")
_ESCAPED = {"n": "\n", "t": "\t", "r": "\r"}
_PAIR_PYTHON = re.compile(_PAIR)
_BARE_KEY = re.compile(r'[^\s="]+')


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
        rows = prepared.rows.cast(pl.UInt32)
        lines = prepared.lines
        parts, left = shape_road(rows, lines, learn_shape, shapes=MAX_SHAPES)
        pairs, rejects = _pair_road(rows.gather(left), lines.gather(left))
        if pairs.rows.len() or not parts:
            parts.append(pairs)
        merged = merge_parts(parts)
        parsed = resolve_and_convert(merged.rows, merged.fields, self.table, ctx)
        return assemble(batch, prepared, parsed, rejected=rejects)


# --- the shape road ---------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """The keys of one shape of logfmt line, in order, and how each value is
    written: ``"bare"`` (``k=v``, ``k=``), ``"quoted"`` (``k="v"``),
    ``"either"`` (both were seen) or ``"alone"`` (``k``, which means true).
    """

    keys: tuple[str, ...]
    kinds: tuple[str, ...]

    @property
    def regex(self) -> str:
        # Pairs apart by spaces only: with Unicode's \s between them, Rust's
        # regex gives up its one-pass capture engine (2.5 times slower). A
        # line with a tab or another space between pairs takes the pair road.
        parts = ["^(?P<m>)[ ]*"]
        for index, (key, kind) in enumerate(zip(self.keys, self.kinds, strict=True)):
            if index:
                parts.append("[ ]+")
            parts.append(regex_literal(key))
            if kind == "bare":
                parts.append(rf'=(?P<v{index}>(?:[^\s"]\S*)?)')
            elif kind == "quoted":
                parts.append(rf'="(?P<v{index}>(?:[^"\\]|\\.)*)"')
            elif kind == "either":
                parts.append(f"=(?P<v{index}>{_VALUE}?)")
        parts.append("[ ]*$")
        return "".join(parts)

    def match(self, lines: pl.Series) -> Matched:
        """The lines of this shape and their values, unquoted and unescaped."""
        names = [f"␟{index}" for index in range(len(self.keys))]
        groups = pl.col("␟groups").struct
        values = [
            (pl.lit("true") if kind == "alone" else groups.field(f"v{index}")).alias(
                name
            )
            for index, (name, kind) in enumerate(zip(names, self.kinds, strict=True))
        ]
        found = capture(lines, self.regex, values, keep=groups.field("m").is_not_null())
        columns = [
            _finish(found.get_column(name), kind)
            for name, kind in zip(names, self.kinds, strict=True)
        ]
        texts = pl.DataFrame(columns, schema=dict.fromkeys(names, pl.String))
        texts.columns = list(self.keys)
        return Matched(found.get_column("␟index"), texts)


def _finish(values: pl.Series, kind: str) -> pl.Series:
    """Captured values of one kind to text: quotes off, escapes resolved
    (looked at only where a value is quoted)."""
    if kind == "quoted":
        quoted = values.is_not_null()
    elif kind == "either":
        quoted = values.str.starts_with('"').fill_null(False)
    else:
        return values
    if kind == "either" and quoted.any():
        index = quoted.arg_true()
        inner = values.gather(index).str.slice(1).str.head(-1)
        values = values.scatter(index, inner)
    escaped = (quoted & values.str.contains("\\", literal=True)).fill_null(False)
    if escaped.any():
        index = escaped.arg_true()
        values = values.scatter(index, _unescape_texts(values.gather(index)))
    return values


def learn_shape(texts: Sequence[str]) -> Shape | None:
    """The most common shape among ``texts`` (a sample of lines), if common.

    Lines whose pairs do not cover them, with a quoted key, a key given
    twice or no ``key=value`` pair are left out; ``None`` when no shape
    reaches :data:`~logweir.formats.jsonshape.MIN_SHARE` of the rest.
    """
    counts: Counter[tuple[tuple[str, bool], ...]] = Counter()
    kinds: dict[tuple[tuple[str, bool], ...], list[set[str]]] = {}
    for text in texts:
        pairs = _pairs_of(text)
        if pairs is None:
            continue
        keys = tuple((key, kind != "alone") for key, kind in pairs)
        counts[keys] += 1
        for found, (_, kind) in zip(
            kinds.setdefault(keys, [set() for _ in keys]), pairs, strict=True
        ):
            found.add(kind)
    common = common_shape(counts)
    if common is None:
        return None
    return Shape(
        tuple(key for key, _ in common),
        tuple(
            next(iter(seen)) if len(seen) == 1 else "either" for seen in kinds[common]
        ),
    )


def _pairs_of(text: str) -> list[tuple[str, str]] | None:
    """(key, kind) of each pair of a line, if it is all pairs apart by
    whitespace, with bare keys, none twice and one with a value at least."""
    pairs: list[tuple[str, str]] = []
    position = 0
    for match in _PAIR_PYTHON.finditer(text):
        if match.start() == position and position:
            return None  # two pairs written together
        if text[position : match.start()].strip():
            return None  # not all pairs
        key, eq, value = match.group().partition("=")
        if not _BARE_KEY.fullmatch(key):
            return None
        kind = "alone" if not eq else "quoted" if value.startswith('"') else "bare"
        pairs.append((key, kind))
        position = match.end()
    keys = [key for key, _ in pairs]
    if text[position:].strip() or len(set(keys)) != len(keys):
        return None
    if all(kind == "alone" for _, kind in pairs):
        return None
    return pairs


# --- the pair road ----------------------------------------------------------------


def _pair_road(rows: pl.Series, texts: pl.Series) -> tuple[FieldsPart, pl.DataFrame]:
    """Fields of the lines left, cut into pairs; rejects for lines that are
    not all pairs."""
    lines = pl.DataFrame({"row": rows, "line": texts}).with_columns(
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
    rejects = diagnosed(bad.get_column("row"), bad.get_column("line"), _diagnose)
    ok = lines.filter(good)
    fields, first_seen = _pairs_to_fields(ok)
    return FieldsPart(ok.get_column("row"), fields, first_seen), rejects


def _pairs_to_fields(
    lines: pl.DataFrame,
) -> tuple[pl.DataFrame, dict[str, tuple[int, int]]]:
    """One string column per key, one row per line of ``lines``; and where
    each key was first seen (batch row, position in the line)."""
    pairs = (
        lines.select(
            pl.int_range(pl.len(), dtype=pl.UInt32).alias("␟row"), "row", "pairs"
        )
        .explode("pairs")
        .with_columns(pl.int_range(pl.len()).over("␟row").alias("␟position"))
    )
    if lines.height == 0:
        return pl.DataFrame(), {}
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
    seen = pairs.group_by("key", maintain_order=True).agg(
        pl.col("row").first(), pl.col("␟position").first()
    )
    first_seen = {
        key: (int(row), int(position)) for key, row, position in seen.iter_rows()
    }
    wide = pairs.pivot(
        on="key", index="␟row", values="value", aggregate_function="first"
    )
    full = pl.DataFrame(
        {"␟row": pl.int_range(lines.height, dtype=pl.UInt32, eager=True)}
    )
    return full.join(wide, on="␟row", how="left").drop("␟row"), first_seen


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
            pairs = pairs.with_columns(
                pairs.get_column(name).scatter(
                    index, _unescape_texts(pairs.get_column(name).gather(index))
                )
            )
    return pairs


def _unescape_texts(texts: pl.Series) -> pl.Series:
    fixed = [
        _ESCAPE.sub(lambda match: _ESCAPED.get(match[1], match[1]), text)
        for text in texts.to_list()
    ]
    return pl.Series(fixed, dtype=pl.String)


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


__all__ = ["MAX_SHAPES", "LogfmtParser", "Shape", "learn_shape"]
