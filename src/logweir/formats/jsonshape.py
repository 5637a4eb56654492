"""The fast road for JSON lines: one regex per shape of line, whole batch at once.

Most JSON logs come from one serializer with one field list (nginx's
``log_format … escape=json``, a logging library's JSON formatter): every
line holds the same keys in the same order and only the values change.
For such lines a regex built from the keys of a sample line checks each
line and captures every value in one vectorized pass of Rust's ``regex``
(:func:`learn_shape`, :meth:`Shape.match`; the rounds over a batch are
:func:`logweir.formats.lineprep.shape_road`'s), which is several times
faster than a JSON parser that must build a tree for each line.

A line matches only when it is, character for character, a JSON object
with exactly the shape's keys in the shape's order, each holding a string,
number, boolean or null of the kinds seen in the sample (spaces are allowed
between tokens). Such a line is valid JSON, and the captures are what a
JSON parser would give: strings are decoded here, numbers and booleans keep
their text as written. What does not match (another shape, a nested object
or array, a key given twice, a control character, broken JSON, an escaped
surrogate) is left to the general road in :mod:`logweir.formats.jsonl`.

Known shortcoming: values that are objects or arrays are not captured, so
nested logs (ECS, Caddy) take the general road, about four times slower.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import polars as pl

from logweir.formats.fields import regex_literal
from logweir.formats.lineprep import Matched, capture

#: A shape is tried only if at least this share of the sampled objects has it.
MIN_SHARE = 0.25

_Key = TypeVar("_Key", bound=Hashable)

_SPACE = "[ ]*"
# JSON strings hold no raw control character; an escape is checked when it
# is decoded (:func:`_unescape`).
_STRING = r'(?:[^"\\\x00-\x1f]|\\.)*'
_NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_SCALAR = f"{_NUMBER}|true|false"
# An escaped UTF-16 surrogate: Python's json keeps a lone one as is, which
# no Polars string can hold, so such lines take the general road.
_SURROGATE = r"\\u[dD][89a-fA-F]"
#: Value groups per regex pass: 15 groups with the marker (see
#: :meth:`Shape.passes`).
_GROUPS_PER_PASS = 14
_MAX_PASSES = 2


@dataclass(frozen=True)
class Shape:
    """The keys of one shape of line, in order, and what each may hold.

    ``kinds[i]`` is ``"string"``, ``"scalar"`` (number or boolean) or
    ``"any"`` (both were seen); null is always allowed.
    """

    keys: tuple[str, ...]
    kinds: tuple[str, ...]

    def regex(self, captured: Sequence[int]) -> str:
        """The regex of this shape, capturing the values of the keys at
        ``captured`` (the others are matched but not captured)."""
        parts = [f"^(?P<m>){_SPACE}\\{{{_SPACE}"]
        for index, (key, kind) in enumerate(zip(self.keys, self.kinds, strict=True)):
            if index:
                parts.append(f",{_SPACE}")
            literal = regex_literal(json.dumps(key, ensure_ascii=False))
            parts.append(f"{literal}{_SPACE}:{_SPACE}")
            keep = index in captured
            text = f'"(?P<s{index}>{_STRING})"' if keep else f'"{_STRING}"'
            scalar = f"(?P<v{index}>{_SCALAR})" if keep else f"(?:{_SCALAR})"
            choices = {"string": [text], "scalar": [scalar]}.get(kind, [text, scalar])
            parts.append(f"(?:{'|'.join([*choices, 'null'])}){_SPACE}")
        parts.append(f"\\}}{_SPACE}$")
        return "".join(parts)

    def passes(self) -> list[list[int]]:
        """Which keys each regex pass captures.

        Rust's regex captures with its one-pass engine only up to 15 groups
        (the marker included); past that it is about three times slower. A
        shape of up to twice that many values is matched in two passes,
        each capturing half: each reads the whole line, which is still
        cheaper. A wider shape makes a regex too big for that engine
        anyway, and is matched in one pass.
        """
        passes: list[list[int]] = [[]]
        used = 0
        for index, kind in enumerate(self.kinds):
            groups = 2 if kind == "any" else 1
            if used + groups > _GROUPS_PER_PASS:
                passes.append([])
                used = 0
            passes[-1].append(index)
            used += groups
        if len(passes) > _MAX_PASSES:
            return [list(range(len(self.keys)))]
        return passes

    def value(self, index: int) -> pl.Expr:
        """The text of the ``index``-th key's value from the captures."""
        groups = pl.col("␟groups").struct
        kind = self.kinds[index]
        if kind == "string":
            return groups.field(f"s{index}")
        if kind == "scalar":
            return groups.field(f"v{index}")
        return pl.coalesce(groups.field(f"s{index}"), groups.field(f"v{index}"))

    def match(self, lines: pl.Series) -> Matched:
        """Capture the values of the lines of this shape.

        One vectorized pass (:func:`~logweir.formats.lineprep.capture`) per
        entry of :meth:`passes`, which keeps the lines that match; escaped
        strings are decoded afterwards, for the few lines that have a
        backslash.
        """
        names = [f"␟{index}" for index in range(len(self.keys))]
        hit = pl.col("␟groups").struct.field("m").is_not_null()
        found: list[pl.DataFrame] = []
        for number, captured in enumerate(self.passes()):
            outputs = [self.value(index).alias(names[index]) for index in captured]
            if number == 0:
                escaped = pl.col("line").str.contains("\\", literal=True)
                outputs.append(escaped.alias("␟escaped"))
            part = capture(lines, self.regex(captured), outputs, keep=hit)
            found.append(part if number == 0 else part.drop("␟index"))
        frame = pl.concat(found, how="horizontal")
        index = frame.get_column("␟index")
        values = frame.select(names)
        rows = frame.get_column("␟escaped").arg_true()
        if rows.len():
            values, failed = _unescape(values, rows, self.kinds)
            if failed.len():
                keep = pl.Series(np.ones(values.height, dtype=bool)).scatter(
                    failed, False
                )
                index, values = index.filter(keep), values.filter(keep)
        values.columns = list(self.keys)
        return Matched(index, values)


def _unescape(
    values: pl.DataFrame, rows: pl.Series, kinds: Sequence[str]
) -> tuple[pl.DataFrame, pl.Series]:
    """Decode the escapes of string values at ``rows``; rows whose escapes
    are no valid JSON (or an escaped surrogate) are returned as failed."""
    columns = values.get_columns()
    failed = np.zeros(rows.len(), dtype=bool)
    for index, kind in enumerate(kinds):
        if kind == "scalar":
            continue
        texts = columns[index].gather(rows)
        escaped = texts.str.contains("\\", literal=True).fill_null(False)
        if not escaped.any():
            continue
        where = escaped.arg_true()
        inner = texts.gather(where)
        bad = inner.str.contains(_SURROGATE).to_numpy()
        decoded, invalid = _decode(inner)
        failed[where.to_numpy()[bad | invalid]] = True
        columns[index] = columns[index].scatter(rows.gather(where), decoded)
    return pl.DataFrame(columns), rows.filter(pl.Series(failed))


def _decode(inner: pl.Series) -> tuple[pl.Series, np.ndarray]:
    """JSON string contents (without quotes) to text; which were invalid."""
    quoted = ('"' + inner + '"').rename("text")
    try:
        return quoted.str.json_decode(pl.String), np.zeros(inner.len(), dtype=bool)
    except pl.exceptions.ComputeError:
        pass
    # One bad escape fails Polars' whole call: find it line by line.
    texts: list[str | None] = []
    for text in quoted.to_list():
        try:
            texts.append(json.loads(text))
        except ValueError:
            texts.append(None)
    invalid = np.array([text is None for text in texts], dtype=bool)
    return pl.Series(texts, dtype=pl.String), invalid


def learn_shape(texts: Sequence[str]) -> Shape | None:
    """The most common shape among ``texts`` (a sample of lines), if common.

    Only flat objects count: lines that are no JSON object, or that hold an
    object or array, are left out. ``None`` when no shape reaches
    :data:`MIN_SHARE` of the objects seen.
    """
    counts: Counter[tuple[str, ...]] = Counter()
    seen: dict[tuple[str, ...], list[set[str]]] = {}
    for text in texts:
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            continue
        if not isinstance(value, dict) or not value:
            continue
        kinds = [_kind(item) for item in value.values()]
        if "nested" in kinds:
            continue
        keys = tuple(value)
        counts[keys] += 1
        slots = seen.setdefault(keys, [set() for _ in keys])
        for found, kind in zip(slots, kinds, strict=True):
            found.add(kind)
    common = common_shape(counts)
    if common is None:
        return None
    return Shape(
        common,
        tuple(
            next(iter(found - {"null"})) if len(found - {"null"}) == 1 else "any"
            for found in seen[common]
        ),
    )


def common_shape(counts: Counter[_Key]) -> _Key | None:
    """The most common of ``counts`` (shapes seen in a sample), or ``None``
    when there are none or it has less than :data:`MIN_SHARE` of them."""
    if not counts:
        return None
    keys, count = counts.most_common(1)[0]
    if count < MIN_SHARE * sum(counts.values()):
        return None
    return keys


def _kind(value: object) -> str:
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    if isinstance(value, dict | list):
        return "nested"
    return "scalar"


__all__ = [
    "MIN_SHARE",
    "Shape",
    "common_shape",
    "learn_shape",
]
