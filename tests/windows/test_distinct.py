"""Unique-client estimates must not depend on how the clients were split."""

from __future__ import annotations

import random

import pytest

from logweir.windows import distinct


def _union_of(values: list[int]) -> distinct.HllUnion:
    union = distinct.new_union()
    distinct.add_sketch(union, distinct.sketch_of(values))
    return union


@pytest.mark.parametrize("clients", [50, 737, 5_000])
def test_estimate_does_not_depend_on_split_or_order(clients: int) -> None:
    # 737 clients in two small parts: the merged union turns from coupons
    # into registers while merging, where the HIP estimator used to leak
    # the order of the coupons into the estimate.
    values = list(range(1, clients + 1))
    estimates = set()
    rng = random.Random(7)
    for _ in range(20):
        rng.shuffle(values)
        cut = rng.randint(1, clients - 1)
        parts = [_union_of(values[:cut]), _union_of(values[cut:])]
        estimates.add(distinct.estimate(parts))
        estimates.add(distinct.estimate(parts[::-1]))
    estimates.add(distinct.estimate([_union_of(values)]))
    assert len(estimates) == 1
    (estimate,) = estimates
    assert abs(estimate - clients) <= distinct.relative_error(3) * clients
