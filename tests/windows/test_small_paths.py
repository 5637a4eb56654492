"""The small-batch roads of the windows equal the large-batch ones.

Follow mode counts a few thousand events at a time and forms one open window
many times a second, so counting (``windows.batch``, ``windows.state``) and
forming (``windows.emit``, ``tables``, ``topk``) take NumPy and plain-Python
roads below size thresholds, and Polars queries above them. Both roads must
give the same rows: here every threshold is set to 0 (always the large road)
and compared, peek by peek and at the end, with the defaults (which these
small batches keep on the small road).
"""

from __future__ import annotations

import io

import polars as pl
import pytest

from logweir.formats.base import ParseOptions
from logweir.formats.registry import compile_format
from logweir.gen import generate
from logweir.schema import LineBatch
from logweir.windows import WindowAggregator, batch, emit, state, tables, topk

#: (module, threshold) pairs that choose between the two roads.
THRESHOLDS = [
    (batch, "_SMALL_BATCH"),
    (batch, "_SMALL_LOOKUP"),
    (state, "_FEW_NAMES"),
    (state, "_FEW_PAIRS"),
    (emit, "SMALL_TOP_ROWS"),
    (tables, "SMALL_SPLIT_ROWS"),
    (topk, "SMALL_TRUNCATE_ROWS"),
]


def _batches() -> list[pl.DataFrame]:
    buffer = io.BytesIO()
    # some lines out of order, a few without a duration or a client
    generate(12_000, buffer, seed=11, malformed_share=0.0, disorder_share=0.05)
    lines = buffer.getvalue().decode().splitlines()
    parser = compile_format("combined", ParseOptions(timezone="UTC"))
    events = parser.parse(LineBatch.from_strings("test", lines)).events
    assert events.height > 11_000
    return [events.slice(start, 1_500) for start in range(0, events.height, 1_500)]


def _rows(dimensions: tuple[str, ...]) -> list[pl.DataFrame]:
    # small summaries, so that they are cut (the cut has two roads too)
    aggregator = WindowAggregator(
        "1m,5m",
        dimensions,
        lateness_s=3_600,
        top_n=5,
        top_capacity=8,
        heavy_capacity=16,
    )
    out = []
    for events in _batches():
        aggregator.update(events)
        out.append(aggregator.peek(60))
    out.append(aggregator.peek())
    out.append(aggregator.finish())
    return out


@pytest.mark.parametrize(
    "dimensions", [("status_class",), ("status_class", "path", "client_ip")]
)
def test_small_and_large_roads_give_the_same_rows(
    monkeypatch: pytest.MonkeyPatch, dimensions: tuple[str, ...]
) -> None:
    small = _rows(dimensions)
    for module, name in THRESHOLDS:
        assert hasattr(module, name), f"{module.__name__}.{name} is gone"
        monkeypatch.setattr(module, name, 0)
    large = _rows(dimensions)
    assert len(small) == len(large)
    assert sum(rows.height for rows in small) > 0
    for number, (fast, slow) in enumerate(zip(small, large, strict=True)):
        assert fast.equals(slow), f"call {number}: the two roads differ"
