"""HyperLogLog registers: split-independent, accurate, and kept per key."""

from __future__ import annotations

import math
import random

import numpy as np
import polars as pl
import pytest

from logweir.windows import distinct


def _registers(values: list[str]) -> tuple[np.ndarray, np.ndarray]:
    hashes = pl.DataFrame({"h": pl.Series(values, dtype=pl.String).hash(104)})
    parts = hashes.select(
        distinct.register_expr(pl.col("h")).alias("register"),
        distinct.rank_expr(pl.col("h")).alias("rank"),
    )
    return parts["register"].to_numpy(), parts["rank"].to_numpy()


def _row_of(values: list[str], key: tuple[int, int] = (1, 7)) -> np.ndarray:
    store = distinct.Registers()
    rows = store.rows_of(np.array([key[0]]), np.array([key[1]], dtype=np.uint64))
    register, rank = _registers(values)
    store.add(np.repeat(rows, len(register)), register, rank)
    return store.rows[rows[0]].copy()


def _slow_estimate(row: np.ndarray) -> float:
    """Ertl's improved raw estimator written out as in the paper, with the
    histogram and both series summed term by term."""
    m = distinct.REGISTERS
    q = 64 - distinct.LG_K
    counts = [int((row == k).sum()) for k in range(q + 2)]
    if counts[0] == m:
        return 0.0

    def sigma(x: float) -> float:
        y, z = 1.0, x
        while True:
            x *= x
            previous = z
            z += x * y
            y *= 2
            if z == previous:
                return z

    def tau(x: float) -> float:
        if x in (0.0, 1.0):
            return 0.0
        y, z = 1.0, 1.0 - x
        while True:
            x = math.sqrt(x)
            previous = z
            y *= 0.5
            z -= (1 - x) ** 2 * y
            if z == previous:
                return z / 3

    z = m * tau(1 - counts[q + 1] / m)
    for k in range(q, 0, -1):
        z = 0.5 * (z + counts[k])
    z += m * sigma(counts[0] / m)
    return m * m / (2 * math.log(2)) / z


@pytest.mark.parametrize("clients", [1, 50, 737, 5_000, 60_000])
def test_estimate_does_not_depend_on_split_or_order(clients: int) -> None:
    values = [f"198.51.{i // 256}.{i % 256}" for i in range(clients)]
    whole = distinct.estimate(_row_of(values)[None, :])[0]
    rng = random.Random(7)
    for _ in range(10):
        rng.shuffle(values)
        cut = rng.randint(0, clients)
        halves = np.maximum(_row_of(values[:cut]), _row_of(values[cut:]))
        assert distinct.estimate(halves[None, :])[0] == whole
    assert abs(whole - clients) <= max(1.0, distinct.relative_error(3) * clients)


@pytest.mark.parametrize("clients", [0, 3, 200, 3_000, 20_000, 250_000])
def test_the_vectorized_estimate_equals_the_paper_algorithm(clients: int) -> None:
    row = _row_of([f"c{i}" for i in range(clients)])
    fast = distinct.estimate(row[None, :])[0]
    assert fast == pytest.approx(_slow_estimate(row), rel=1e-12, abs=1e-9)


def test_small_sets_are_counted_exactly_after_rounding() -> None:
    for clients in (1, 2, 10, 40):
        row = _row_of([f"10.1.0.{i}" for i in range(clients)])
        assert round(distinct.estimate(row[None, :])[0]) == clients


def test_a_key_named_twice_in_one_call_gets_one_row() -> None:
    store = distinct.Registers()
    rows = store.rows_of(
        np.array([5, 5, 6, 5]), np.array([1, 1, 1, 2], dtype=np.uint64)
    )
    assert rows[0] == rows[1]
    assert len({int(rows[0]), int(rows[2]), int(rows[3])}) == 3
    assert len(store) == 3


def test_registers_survive_a_round_trip_and_dropped_panes_go() -> None:
    store = distinct.Registers()
    for pane in range(300):
        rows = store.rows_of(np.array([pane]), np.array([9], dtype=np.uint64))
        register, rank = _registers([f"{pane}-{i}" for i in range(20)])
        store.add(np.repeat(rows, len(register)), register, rank)
    frame, data = store.to_parts()
    copy = distinct.Registers.from_parts(frame, data)
    _, _, kept = copy.select(np.arange(300))
    _, _, mine = store.select(np.arange(300))
    assert np.array_equal(copy.rows[kept], store.rows[mine])
    _, _, last = store.select(np.arange(290, 300))
    before = sorted(distinct.estimate(store.rows[last]).tolist())
    store.drop_panes(set(range(290)))
    assert len(store) == 10
    assert len(store.rows) < 300  # the array shrank
    panes, _, rows = store.select(np.arange(300))
    assert sorted(panes.tolist()) == list(range(290, 300))
    assert sorted(distinct.estimate(store.rows[rows]).tolist()) == before
    assert all(abs(value - 20) <= 1 for value in before)


def test_a_truncated_register_blob_is_refused() -> None:
    store = distinct.Registers()
    store.rows_of(np.array([1, 2]), np.array([3, 3], dtype=np.uint64))
    frame, data = store.to_parts()
    with pytest.raises(ValueError, match="2 register keys but 1 rows"):
        distinct.Registers.from_parts(frame, data[: distinct.REGISTERS])
