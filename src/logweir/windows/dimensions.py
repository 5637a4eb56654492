"""The dimensions a window can be broken down by, and how each is derived.

Every window has one overall row (``dimension == "all"``, ``key == ""``)
and one row per value of each chosen dimension. Dimensions come in two
kinds, because their cardinality decides how they can be kept:

* **small** dimensions (``status_class``, ``host``, ``method``,
  ``service``, ``level``) have a handful of values. Every value gets a full
  row: exact counts and all the sketch columns.
* **heavy** dimensions (``path``, ``client_ip``, ``user_agent``) can have
  millions of values. Only their heaviest keys get rows: each pane keeps at
  most ``heavy_capacity`` keys (the ones with most requests), and a window
  emits its ``top_n`` keys. Their rows carry the counting columns
  (requests, bytes, status classes, error rate); the percentile,
  unique-client and top-N columns are null, since keeping sketches per
  path or per client would cost memory in proportion to the keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from logweir.errors import ConfigError

#: Overall row of every window.
ALL = "all"

#: What ``logweir run`` breaks windows down by when not told otherwise.
#: ``host`` is null (and so gives no rows) for formats without a vhost.
DEFAULT_DIMENSIONS: tuple[str, ...] = ("status_class", "host", "method")

SMALL_DIMENSIONS: tuple[str, ...] = (
    "status_class",
    "host",
    "method",
    "service",
    "level",
)
HEAVY_DIMENSIONS: tuple[str, ...] = ("path", "client_ip", "user_agent")

#: Status classes that get their own ``status_Nxx`` column, in order.
STATUS_CLASSES: tuple[int, ...] = (1, 2, 3, 4, 5)


def status_class_expr() -> pl.Expr:
    """``"2xx"`` for statuses 200-299 and so on; null outside 100-599.

    A status outside 100-599 (0 from a dropped connection, 999 from a
    misbehaving proxy) still counts as a request but in no status class.
    """
    status = pl.col("status")
    return (
        pl.when((status >= 100) & (status < 600))
        .then((status // 100).cast(pl.String) + pl.lit("xx"))
        .otherwise(None)
        .alias("status_class")
    )


def dimension_expr(name: str) -> pl.Expr:
    """The expression giving dimension ``name`` from an events frame."""
    if name == "status_class":
        return status_class_expr()
    return pl.col(name)


def split_dimensions(names: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Check ``names`` and split them into (small, heavy), keeping order.

    Raises :class:`ConfigError` naming an unknown dimension.
    """
    small: list[str] = []
    heavy: list[str] = []
    for name in names:
        if name in SMALL_DIMENSIONS:
            target = small
        elif name in HEAVY_DIMENSIONS:
            target = heavy
        else:
            known = ", ".join(SMALL_DIMENSIONS + HEAVY_DIMENSIONS)
            raise ConfigError(f"unknown window dimension {name!r}; known: {known}")
        if name not in target:
            target.append(name)
    return tuple(small), tuple(heavy)
