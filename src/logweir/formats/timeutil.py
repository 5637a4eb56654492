"""Vectorized timestamp helpers shared by the formats.

Every function takes and returns Polars expressions, so a whole column is
converted in one pass. Results are ``Datetime("us", "UTC")``; a value that
does not parse becomes null, and the caller turns that null into a reject
with a reason.
"""

from __future__ import annotations

import re
from datetime import UTC, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from logweir.errors import ConfigError
from logweir.schema import TS_TYPE

_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


def check_timezone(name: str) -> str:
    """Return ``name`` if it is an IANA zone, ``UTC`` or a ``+HH:MM`` offset.

    Raises :class:`ConfigError` naming the zone otherwise.
    """
    if name.upper() in ("UTC", "Z"):
        return "UTC"
    if _OFFSET.match(name):
        return name
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ConfigError(
            f"unknown time zone {name!r}: give an IANA name such as "
            "'Europe/Berlin', 'UTC', or an offset such as '+02:00'"
        ) from error
    return name


def localize(naive: pl.Expr, zone: str) -> pl.Expr:
    """Read naive datetimes as wall-clock time in ``zone``; return UTC.

    Ambiguous wall times (the hour repeated when clocks go back) take the
    earlier instant; non-existent ones (skipped when clocks go forward) are
    null, so they are rejected rather than silently shifted.
    """
    zone = check_timezone(zone)
    match = _OFFSET.match(zone)
    if zone == "UTC":
        return naive.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if match:
        sign, hours, minutes = match.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes))
        offset = -delta if sign == "+" else delta
        return (naive.cast(pl.Datetime("us")) + offset).dt.replace_time_zone("UTC")
    return (
        naive.cast(pl.Datetime("us"))
        .dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone("UTC")
    )


def from_epoch(value: pl.Expr, unit: str) -> pl.Expr:
    """Epoch numbers (``s``, ``ms``, ``us``, ``ns``; may be fractional) to UTC."""
    factor = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 0.001}[unit]
    micros = (value.cast(pl.Float64) * factor).round(0).cast(pl.Int64)
    return micros.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def utc_offset(zone: str) -> timezone | ZoneInfo:
    """A tzinfo for ``zone`` (for the per-line fallback paths)."""
    zone = check_timezone(zone)
    match = _OFFSET.match(zone)
    if zone == "UTC":
        return UTC
    if match:
        sign, hours, minutes = match.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes))
        return timezone(-delta if sign == "-" else delta)
    return ZoneInfo(zone)


__all__ = ["TS_TYPE", "check_timezone", "from_epoch", "localize", "utc_offset"]
