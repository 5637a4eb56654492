"""logfmt: pairs, quoting, standalone keys, the shared key table, rejects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logweir.formats import ParseOptions, logfmt
from logweir.formats.logfmt import LogfmtParser
from logweir.schema import LineBatch


def parse(lines: list[str], **options: Any) -> Any:
    return LogfmtParser(ParseOptions(**options)).parse(
        LineBatch.from_strings("app", lines)
    )


def row(line: str, **options: Any) -> dict[str, Any]:
    result = parse([line], **options)
    assert result.rejects.height == 0, result.rejects.to_dicts()
    found: dict[str, Any] = result.events.row(0, named=True)
    return {
        k: v
        for k, v in found.items()
        if v is not None and k not in ("source", "offset")
    }


def test_go_service_line_fills_columns_and_keeps_the_rest() -> None:
    line = (
        'time="2021-09-15T21:17:10.220731Z" level=error msg="pod is not found: '
        'PodNotFound" namespace=ns-2 status=404 duration=12ms'
    )
    assert row(line) == {
        "ts": datetime(2021, 9, 15, 21, 17, 10, 220731, tzinfo=UTC),
        "level": "error",
        "message": "pod is not found: PodNotFound",
        "status": 404,
        "duration_ms": 12.0,
        "extra": [{"key": "namespace", "value": "ns-2"}],
    }


@pytest.mark.parametrize(
    ("line", "extra"),
    [
        ("zork=zook zonk=nork", [("zork", "zook"), ("zonk", "nork")]),
        (
            "zork=zook plonk zonk=nork",
            [("zork", "zook"), ("plonk", "true"), ("zonk", "nork")],
        ),
        ('a="x \\"y\\" \\\\ z\\n"', [("a", 'x "y" \\ z\n')]),
        ('"quoted key"=v empty=', [("quoted key", "v"), ("empty", "")]),
        ("u=/a?b=c&d=e", [("u", "/a?b=c&d=e")]),
        ("x=1 x=2", [("x", "1")]),
    ],
)
def test_pairs_quotes_and_standalone_keys(
    line: str, extra: list[tuple[str, str]]
) -> None:
    found = row(line)
    pairs = [(item["key"], item["value"]) for item in found["extra"]]
    assert sorted(pairs) == sorted(extra)


def test_url_fills_path_and_query() -> None:
    found = row("method=GET url=/a?b=c status=200")
    assert (found["method"], found["path"], found["query"], found["status"]) == (
        "GET",
        "/a",
        "b=c",
        200,
    )


def test_kubernetes_status_is_not_an_http_status_and_is_kept() -> None:
    found = row("level=info status=Pending pod=web-1")
    assert "status" not in found
    # appended after the fields that were never candidates
    assert found["extra"] == [
        {"key": "pod", "value": "web-1"},
        {"key": "status", "value": "Pending"},
    ]


def test_explicit_mapping_applies_to_logfmt_too() -> None:
    found = row(
        "lat=250 who=me", json_mapping={"duration_ms": "lat", "client_ip": "who"}
    )
    assert (found["duration_ms"], found["client_ip"]) == (250.0, "me")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('a="unclosed', "not logfmt: unclosed quote at column 3"),
        ("just some words", "not logfmt: no key=value pair"),
        ('a=1 "b', "not logfmt: unclosed quote at column 5"),
        ('a=1 b"c=2', "not logfmt: unclosed quote at column 6"),
        ("a=1 =x", "not logfmt: unexpected '=' at column 5"),
    ],
)
def test_lines_that_are_not_pairs_are_rejected(line: str, reason: str) -> None:
    result = parse(["ok=1", line])
    assert result.events.height == 1
    assert result.rejects.select("line_number", "reason").rows() == [(2, reason)]


def test_many_lines_with_different_keys() -> None:
    lines = [f"i={index} k{index % 3}=v level=info" for index in range(300)]
    result = parse(lines)
    assert result.events.height == 300
    assert result.events.get_column("level").unique().to_list() == ["info"]
    assert result.events.get_column("extra").to_list()[4] == [
        {"key": "i", "value": "4"},
        {"key": "k1", "value": "v"},
    ]


# --- the shape road and the pair road give the same events --------------------

TRICKY = [
    'time=2024-03-01T12:00:00Z level=info msg="a b" status=200 duration=12ms',
    "time=2024-03-01T12:00:01Z level=warn msg=plain status=404 duration=1.5s",
    'time=2024-03-01T12:00:02Z level= msg="esc \\" \\\\ \\n x" status=- duration=3',
    "  time=2024-03-01T12:00:03Z level=info msg=a=b status=200 duration=1m30s  ",
    'time=2024-03-01T12:00:04Z level=info msg=x"y status=200 duration=""',
    "time=2024-03-01T12:00:05Z\tlevel=info msg=tab status=200 duration=1",
    'time=2024-03-01T12:00:06Z level=info msg="x"status=200 duration=1',
    "time=2024-03-01T12:00:07Z level=info msg=nb\u00a0sp status=200 duration=1",
    "time=2024-03-01T12:00:08Z level=info msg=dup msg=again status=200 duration=1",
    'time=2024-03-01T12:00:09Z level=info msg="unclosed status=200 duration=1',
    "time=2024-03-01T12:00:10Z level=info debug status=200 duration=1",
    '"time"=2024-03-01T12:00:11Z level=info msg=q status=200 duration=1',
]


def test_pairs_read_the_same_on_both_roads(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = TRICKY * 3
    fast = parse(lines)
    monkeypatch.setattr(logfmt, "MAX_SHAPES", 0)
    slow = parse(lines)
    assert fast.events.equals(slow.events)
    assert fast.rejects.equals(slow.rejects)
    assert fast.events.get_column("message").to_list()[:5] == [
        "a b",
        "plain",
        'esc " \\ \n x',
        "a=b",
        'x"y',
    ]
    assert fast.rejects.select("line_number", "reason").rows()[0] == (
        10,
        "not logfmt: unclosed quote at column 42",
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(
        st.lists(
            st.one_of(
                st.text(st.characters(blacklist_categories=["Cs"]), max_size=8),
                st.sampled_from(["", "-", "200", "12ms", '"', "a b", "x=y", "é"]),
            ),
            min_size=3,
            max_size=3,
        ),
        min_size=1,
        max_size=6,
    ),
    quote=st.booleans(),
)
def test_random_values_read_the_same_on_both_roads(
    values: list[list[str]], quote: bool
) -> None:
    def written(value: str) -> str:
        if quote or not value or any(char in value for char in ' "=\\'):
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            return f'"{escaped}"'
        return value

    lines = [
        " ".join(
            f"{key}={written(value)}"
            for key, value in zip(("status", "msg", "other"), row, strict=True)
        )
        for row in values
    ]
    fast = parse(lines)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(logfmt, "MAX_SHAPES", 0)
        slow = parse(lines)
    assert fast.events.equals(slow.events)
    assert fast.rejects.equals(slow.rejects)


def test_a_big_batch_in_parallel_chunks_equals_small_batches() -> None:
    rows = 110_000
    index = pl.int_range(rows, eager=True)
    lines = (
        pl.lit("ts=")
        + (1709294400 + index).cast(pl.String)
        + pl.lit(' level=info msg="req ')
        + (index % 11).cast(pl.String)
        + pl.lit('" path=/p/')
        + (index % 97).cast(pl.String)
        + pl.lit(" duration=")
        + (index % 40).cast(pl.String)
        + pl.lit("ms id=")
        + index.cast(pl.String)
    )
    texts = pl.select(lines).to_series().to_list()
    parser = LogfmtParser()
    whole = parser.parse(LineBatch.from_strings("big", texts))
    pieces = [
        parser.parse(LineBatch.from_strings("big", texts[start : start + 10_000]))
        for start in range(0, rows, 10_000)
    ]
    events = pl.concat([piece.events for piece in pieces])
    columns = [name for name in whole.events.columns if name != "offset"]
    assert whole.events.select(columns).equals(events.select(columns))
    assert whole.events.row(rows - 1, named=True)["duration_ms"] == 39.0
