"""The JSON shape road: learning shapes, and captures checked against json."""

from __future__ import annotations

import json
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logweir.formats.jsonshape import Shape, learn_shape
from logweir.formats.lineprep import sample


def test_the_most_common_flat_shape_is_learned_with_the_kinds_seen() -> None:
    lines = [
        '{"a": "x", "b": 1, "c": null}',
        '{"a": "y", "b": "two", "c": true}',
        '{"z": 1}',
        '{"nested": {"a": 1}}',
        "not json",
        "[1, 2]",
    ]
    shape = learn_shape(lines)
    assert shape == Shape(("a", "b", "c"), ("string", "any", "scalar"))


def test_no_shape_when_none_is_common_enough() -> None:
    lines = [json.dumps({f"k{index}": index}) for index in range(5)]
    assert learn_shape(lines) is None
    assert learn_shape(['{"a": {"b": 1}}', "{}", "x"]) is None


def test_sample_takes_the_head_and_a_spread_of_the_rest() -> None:
    lines = pl.Series([str(index) for index in range(1000)])
    taken = sample(lines)
    assert len(taken) == 64
    assert taken[:32] == [str(index) for index in range(32)]
    assert taken[-1] == "999"


def test_wide_shapes_are_matched_in_two_passes_at_most() -> None:
    assert Shape(("a",) * 14, ("string",) * 14).passes() == [list(range(14))]
    assert [len(part) for part in Shape(("a",) * 20, ("any",) * 20).passes()] == [20]
    assert [len(part) for part in Shape(("a",) * 20, ("string",) * 20).passes()] == [
        14,
        6,
    ]


SCALARS = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    keys=st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=5, unique=True),
    rows=st.lists(st.lists(SCALARS, min_size=5, max_size=5), min_size=1, max_size=8),
    spaced=st.booleans(),
    ascii_only=st.booleans(),
)
def test_captures_are_what_json_reads(
    keys: list[str], rows: list[list[Any]], spaced: bool, ascii_only: bool
) -> None:
    separators = (", ", ": ") if spaced else (",", ":")
    objects = [dict(zip(keys, values, strict=False)) for values in rows]
    lines = [
        json.dumps(item, separators=separators, ensure_ascii=ascii_only)
        for item in objects
    ]
    kinds = tuple(
        "scalar"
        if all(not isinstance(item[key], str) for item in objects)
        else "string"
        if all(isinstance(item[key], str | None) for item in objects)
        else "any"
        for key in keys
    )
    matched = Shape(tuple(keys), kinds).match(pl.Series(lines, dtype=pl.String))
    position = {row: at for at, row in enumerate(matched.index.to_list())}
    for row, item in enumerate(objects):
        if row not in position:
            # Left to the general road only: an escaped surrogate (a lone one,
            # or a pair, as ASCII-only JSON writes characters past U+FFFF),
            # or a key written with other escapes than the shape's.
            written = [json.dumps(key, ensure_ascii=False) for key in keys]
            assert "\\ud" in lines[row].lower() or not all(
                key in lines[row] for key in written
            )
            continue
        for key, value in item.items():
            text = matched.values.get_column(key)[position[row]]
            if value is None:
                assert text is None
            elif isinstance(value, str):
                assert text == value
            else:
                assert json.loads(text) == value


@pytest.mark.parametrize(
    "line",
    [
        '{"a":"x","a":"y"}',
        '{"a":"x\tb"}',
        '{"a":"\\q"}',
        '{"a":"x"} trailing',
        '{"a":"x"}{"a":"y"}',
        '{"a":01}',
        '{"a":1.}',
        '{"a":.5}',
        '{"a":+1}',
        '{"a":NaN}',
        '{"a":tru}',
        "{'a':'x'}",
        '{"a":"x",}',
        '{"a":["x"]}',
    ],
)
def test_lines_that_are_not_exactly_the_shape_do_not_match(line: str) -> None:
    shape = Shape(("a",), ("any",))
    assert shape.match(pl.Series(['{"a":"x"}', line])).index.to_list() == [0]
