"""Timestamps in whatever shape a log wrote them, parsed a column at a time.

Used by the JSON, logfmt, syslog, regex and grok parsers, whose timestamps
come in many shapes. :func:`parse_flexible` takes a column of strings and
recognises, per value:

========================  =============================================
shape                     example
========================  =============================================
ISO 8601 / RFC 3339       ``2024-03-01T12:00:00.123+02:00``, ``2024-03-01 12:00:00,123``
epoch number              ``1709294400`` (s), ``1709294400123`` (ms), … (see below)
Common Log Format         ``01/Mar/2024:12:00:00 +0200``
syslog / ctime / date     ``Mar  1 12:00:00``, ``Fri Mar 01 12:00:00 2024``,
                          ``Fri Mar  1 12:00:00 EST 2024``
RFC 2822                  ``Fri, 01 Mar 2024 12:00:00 +0000``
========================  =============================================

Epoch numbers carry no unit, so the unit is decided by magnitude:
below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds,
nanoseconds above. (1e11 seconds is the year 5138, and 1e11 milliseconds is
March 1973, so a millisecond timestamp older than that would be misread.)

Values without an offset are wall-clock time in the configured zone. Values
without a year (syslog's ``Mar  1 12:00:00``) get the reference year, or,
with none configured, the current year, unless that puts them more than
:data:`FUTURE_TOLERANCE` ahead of now, in which case they belong to the
previous year (a December line read in January). Month names are English,
French, German or Spanish, abbreviated or in full; zone abbreviations are
the few in :data:`ZONE_ABBREVIATIONS` (``CST`` is US Central).

A value that fits no shape, or names a day that does not exist, is null:
the caller turns that into a reject naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from logweir.formats.timeutil import check_timezone, localize, utc_offset
from logweir.schema import TS_TYPE

#: How far ahead of now a year-less date may be before it is taken as last year.
FUTURE_TOLERANCE = timedelta(days=31)

_MONTHS: dict[str, int] = {}
for _number, _names in enumerate(
    [
        "jan january janv janvier ene enero januar jän",
        "feb february févr fév fevr février februar febrero",
        "mar march mars märz mär mrz marzo",
        "apr april avr avril abr abril",
        "may mai mayo",
        "jun june juin juni junio",
        "jul july juil juillet juli julio",
        "aug august août aout ago agosto",
        "sep sept september septembre septiembre set",
        "oct october octobre okt oktober octubre",
        "nov november novembre noviembre",
        "dec december déc decembre décembre dez dezember dic diciembre",
    ],
    start=1,
):
    for _name in _names.split():
        _MONTHS[_name] = _number

#: Zone abbreviations understood in ``date``-style timestamps, as ``+HHMM``.
ZONE_ABBREVIATIONS: dict[str, str] = {
    "UTC": "+0000",
    "UT": "+0000",
    "GMT": "+0000",
    "Z": "+0000",
    "EST": "-0500",
    "EDT": "-0400",
    "CST": "-0600",
    "CDT": "-0500",
    "MST": "-0700",
    "MDT": "-0600",
    "PST": "-0800",
    "PDT": "-0700",
    "CET": "+0100",
    "CEST": "+0200",
    "EET": "+0200",
    "EEST": "+0300",
    "JST": "+0900",
}

_AWARE_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%z"
_NAIVE_FORMAT = "%Y-%m-%dT%H:%M:%S%.f"


@dataclass(frozen=True)
class TimeContext:
    """What a batch needs to read timestamps that lack a zone or a year.

    Build one per batch with :meth:`current`, so that a parser that runs for
    months infers years against the date of each batch, not of its start.
    """

    zone: str = "UTC"
    reference_year: int | None = None
    now: datetime | None = None

    @classmethod
    def current(cls, zone: str, reference_year: int | None) -> TimeContext:
        zone = check_timezone(zone)
        return cls(zone, reference_year, datetime.now(utc_offset(zone)))


def month_number(names: pl.Expr) -> pl.Expr:
    """Month names (any case, trailing dot allowed) to 1-12, else null."""
    key = names.str.to_lowercase().str.strip_chars_end(".")
    return key.replace_strict(_MONTHS, default=None, return_dtype=pl.Int8)


# --- the shapes ----------------------------------------------------------------

_ISO = (
    r"^(?P<Y>\d{4})[-/](?P<m>\d{1,2})[-/](?P<d>\d{1,2})"
    r"(?:(?:[Tt]|\s+)(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?"
    r"(?:[.,](?P<f>\d{1,9}))?)?"
    r"\s*(?P<z>[Zz]|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?$"
)
_EPOCH = r"^[+-]?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?$"
_CLF = (
    r"^\[?(?P<d>\d{1,2})/(?P<b>\p{L}{3,4})/(?P<Y>\d{4}):(?P<H>\d{2}):(?P<M>\d{2})"
    r":(?P<S>\d{2})(?:[.,](?P<f>\d{1,9}))?(?:\s+(?P<z>[+-]\d{2}:?\d{2}))?\]?$"
)
_CTIME = (
    r"^(?:\p{L}{3,9}\.?,?\s+)?(?P<b>\p{L}{3,9})\.?\s+(?P<d>\d{1,2}),?"
    r"(?:\s+(?P<Y1>\d{4}))?\s+(?P<H>\d{1,2}):(?P<M>\d{2}):(?P<S>\d{2})"
    r"(?:[.,](?P<f>\d{1,9}))?(?:\s+(?P<z>[A-Z]{1,4}|[+-]\d{2}:?\d{2}))?"
    r"(?:\s+(?P<Y2>\d{4}))?$"
)
_RFC2822 = (
    r"^(?:\p{L}{3,9},?\s+)?(?P<d>\d{1,2})\s+(?P<b>\p{L}{3,9})\.?\s+(?P<Y>\d{4})"
    r"\s+(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?(?:[.,](?P<f>\d{1,9}))?"
    r"(?:\s+(?P<z>[A-Z]{1,4}|[+-]\d{2}:?\d{2}))?$"
)


def _python_pattern(pattern: str) -> re.Pattern[str]:
    # Python's re has no \p{L}; the shapes only use it for month names, for
    # which "letters" is close enough when picking the order to try shapes.
    return re.compile(pattern.replace(r"\p{L}", r"[^\W\d_]"))


def _offset(zone: pl.Expr) -> pl.Expr:
    """``Z``, ``+02``, ``+02:00``, ``EST``… to ``+HHMM``; null stays null."""
    text = zone.str.to_uppercase()
    named = text.replace_strict(
        ZONE_ABBREVIATIONS, default=None, return_dtype=pl.String
    )
    numeric = text.str.replace(":", "", literal=True)
    numeric = (
        pl.when(numeric.str.len_chars() == 3).then(numeric + "00").otherwise(numeric)
    )
    return pl.when(text.str.contains(r"^[+-]\d")).then(numeric).otherwise(named)


def _assemble(parts: pl.DataFrame, ctx: TimeContext) -> pl.Series:
    """Columns Y, m, d, H, M, S, f, z (strings; m may be a month number) to UTC.

    Rows whose ``Y`` is null get a year inferred from ``ctx``. A zone that is
    given but not understood makes the value null.
    """
    frame = parts.with_columns(
        pl.col("m").cast(pl.Int64, strict=False),
        pl.col("d").cast(pl.Int64, strict=False),
        pl.col("H").fill_null("0").cast(pl.Int64, strict=False),
        pl.col("M").fill_null("0"),
        pl.col("S").fill_null("00"),
        (pl.col("f").fill_null("") + "000000").str.slice(0, 6).alias("f"),
        _offset(pl.col("z")).alias("offset"),
    )
    year = pl.col("Y").cast(pl.Int64, strict=False)
    if ctx.reference_year is not None:
        year = year.fill_null(ctx.reference_year)
    elif ctx.now is not None:
        year = year.fill_null(ctx.now.year)
    frame = frame.with_columns(
        year.alias("year"), pl.col("Y").is_null().alias("guessed")
    )
    result = _combine(frame, ctx.zone)
    if ctx.reference_year is None and ctx.now is not None:
        result = _roll_back_future(frame, result, ctx)
    return result


def _combine(frame: pl.DataFrame, zone: str) -> pl.Series:
    def pad(expr: pl.Expr) -> pl.Expr:
        return expr.cast(pl.String).str.zfill(2)

    text = pl.concat_str(
        pad(pl.col("year")).str.zfill(4),
        pl.lit("-"),
        pad(pl.col("m")),
        pl.lit("-"),
        pad(pl.col("d")),
        pl.lit("T"),
        pad(pl.col("H")),
        pl.lit(":"),
        pad(pl.col("M")),
        pl.lit(":"),
        pad(pl.col("S")),
        pl.lit("."),
        pl.col("f"),
    )
    aware = (text + pl.col("offset")).str.to_datetime(
        _AWARE_FORMAT, strict=False, time_unit="us", time_zone="UTC"
    )
    naive = localize(
        text.str.to_datetime(_NAIVE_FORMAT, strict=False, time_unit="us"), zone
    )
    # A zone that was written but not understood must not fall back to the
    # configured one: that would shift the event silently.
    value = (
        pl.when(pl.col("z").is_not_null())
        .then(aware)
        .otherwise(naive)
        .cast(TS_TYPE)
        .alias("ts")
    )
    return frame.select(value).to_series()


def _roll_back_future(
    frame: pl.DataFrame, result: pl.Series, ctx: TimeContext
) -> pl.Series:
    assert ctx.now is not None
    limit = _as_ts(ctx.now + FUTURE_TOLERANCE)
    too_late = (frame.get_column("guessed") & (result > limit)).fill_null(False)
    if not too_late.any():
        return result
    earlier = frame.filter(too_late).with_columns(pl.col("year") - 1)
    return result.scatter(too_late.arg_true(), _combine(earlier, ctx.zone))


def _as_ts(moment: datetime) -> datetime:
    """``moment`` as the naive-free UTC value a TS_TYPE column compares with."""
    value: datetime = pl.Series([moment]).cast(TS_TYPE)[0]
    return value


def _with_month(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(month_number(pl.col("b")).alias("m"))


def _iso(values: pl.Series, ctx: TimeContext) -> pl.Series:
    parts = values.str.extract_groups(_ISO).struct.unnest()
    # A date alone is midnight; a value with no date part is no timestamp.
    return _assemble(parts, ctx)


def _clf(values: pl.Series, ctx: TimeContext) -> pl.Series:
    parts = _with_month(values.str.extract_groups(_CLF).struct.unnest())
    return _assemble(parts, ctx)


def _ctime(values: pl.Series, ctx: TimeContext) -> pl.Series:
    parts = values.str.extract_groups(_CTIME).struct.unnest()
    parts = _with_month(parts).with_columns(pl.coalesce("Y1", "Y2").alias("Y"))
    return _assemble(parts, ctx)


def _rfc2822(values: pl.Series, ctx: TimeContext) -> pl.Series:
    parts = _with_month(values.str.extract_groups(_RFC2822).struct.unnest())
    return _assemble(parts, ctx)


def _epoch(values: pl.Series, ctx: TimeContext) -> pl.Series:
    del ctx  # epoch numbers are UTC by definition
    frame = pl.DataFrame({"v": values}).with_columns(
        pl.when(pl.col("v").str.contains(_EPOCH)).then(pl.col("v")).alias("v")
    )
    return frame.select(epoch_expr(pl.col("v")).alias("ts")).to_series()


def epoch_expr(value: pl.Expr) -> pl.Expr:
    """Epoch numbers (strings or numbers), unit chosen by magnitude, to UTC.

    Integers are scaled exactly; decimals go through float, which keeps
    microseconds for any date before the year 2255.
    """
    as_int = value.cast(pl.Int64, strict=False)
    as_float = value.cast(pl.Float64, strict=False)
    size = as_float.abs()
    int_micros = (
        pl.when(size < 1e11)
        .then(as_int * 1_000_000)
        .when(size < 1e14)
        .then(as_int * 1_000)
        .when(size < 1e17)
        .then(as_int)
        .otherwise(as_int // 1_000)
    )
    float_micros = (
        pl.when(size < 1e11)
        .then(as_float * 1e6)
        .when(size < 1e14)
        .then(as_float * 1e3)
        .when(size < 1e17)
        .then(as_float)
        .otherwise(as_float / 1e3)
        .round(0)
    )
    # Past the year 9999 the value is surely not a timestamp.
    in_range = float_micros.abs() < 253_402_300_800 * 1_000_000
    micros = pl.coalesce(int_micros, float_micros.cast(pl.Int64, strict=False))
    return (
        pl.when(in_range)
        .then(micros)
        .cast(pl.Datetime("us"))
        .dt.replace_time_zone("UTC")
    )


def _chrono(fmt: str, *, aware: bool) -> _Shape:
    """A shape read by Polars' own parser: the fast road for common shapes.

    The regex shapes behind it catch what it refuses (a space for ``T``,
    a zone abbreviation, a missing year).
    """

    def shape(values: pl.Series, ctx: TimeContext) -> pl.Series:
        if aware:
            return values.str.to_datetime(
                fmt, strict=False, time_unit="us", time_zone="UTC"
            ).cast(TS_TYPE)
        naive = values.str.to_datetime(fmt, strict=False, time_unit="us")
        return pl.select(localize(pl.lit(naive), ctx.zone)).to_series().cast(TS_TYPE)

    return shape


_Shape = Callable[[pl.Series, TimeContext], pl.Series]
#: Families of shapes: a Python pattern that recognises the family from one
#: value, and the shapes to try for it, fastest first.
_SHAPES: tuple[tuple[re.Pattern[str], tuple[_Shape, ...]], ...] = (
    (
        _python_pattern(_ISO),
        (
            _chrono("%Y-%m-%dT%H:%M:%S%.f%#z", aware=True),
            _chrono("%Y-%m-%dT%H:%M:%S%.f", aware=False),
            _iso,
        ),
    ),
    (re.compile(_EPOCH), (_epoch,)),
    (
        _python_pattern(_CLF),
        (_chrono("%d/%b/%Y:%H:%M:%S %z", aware=True), _clf),
    ),
    (_python_pattern(_CTIME), (_ctime,)),
    (_python_pattern(_RFC2822), (_rfc2822,)),
)


def parse_flexible(values: pl.Series, ctx: TimeContext) -> pl.Series:
    """Parse a column of timestamps of any supported shape to UTC.

    The shape that fits the first value is tried on the whole column; only
    the values it leaves null are tried against the other shapes, so a
    column of one shape costs one pass.
    """
    text = values.cast(pl.String).str.strip_chars()
    pending = (text.str.len_bytes() > 0).fill_null(False)
    result = pl.repeat(None, len(text), dtype=TS_TYPE, eager=True).alias("ts")
    if not pending.any():
        return result
    first = text[int(pending.arg_max() or 0)]
    for shape in _shape_order(first):
        if pending.all():
            # Nothing parsed yet: no gather and scatter needed.
            result = shape(text, ctx).alias("ts")
        else:
            index = pending.arg_true()
            result = result.scatter(index, shape(text.gather(index), ctx))
        pending = pending & result.is_null()
        if not pending.any():
            break
    return result


def _shape_order(first: str) -> list[_Shape]:
    """All shapes, the family of ``first`` (a value of the column) first."""
    families = list(_SHAPES)
    for family in _SHAPES:
        if family[0].match(first):
            families.remove(family)
            families.insert(0, family)
            break
    return [shape for _, shapes in families for shape in shapes]


def parse_with_format(values: pl.Series, fmt: str, ctx: TimeContext) -> pl.Series:
    """Parse with a strftime ``fmt``; a format without a year gets one inferred.

    Formats with ``%z`` are read with their offset; others are wall-clock
    time in ``ctx.zone``.
    """
    text = values.cast(pl.String).str.strip_chars()
    yearless = not any(
        code in fmt for code in ("%Y", "%y", "%G", "%s", "%c", "%D", "%F")
    )
    if yearless:
        return _parse_yearless(text, fmt, ctx)
    frame = pl.DataFrame({"v": text})
    if "%z" in fmt or "%Z" in fmt or "%:z" in fmt:
        expr = pl.col("v").str.to_datetime(
            fmt, strict=False, time_unit="us", time_zone="UTC"
        )
    else:
        expr = localize(
            pl.col("v").str.to_datetime(fmt, strict=False, time_unit="us"), ctx.zone
        )
    return frame.select(expr.cast(TS_TYPE).alias("ts")).to_series()


def _parse_yearless(text: pl.Series, fmt: str, ctx: TimeContext) -> pl.Series:
    # chrono needs a year to build a date: parse with the first guess, then
    # move values that land too far in the future back one year, as the
    # flexible shapes do.
    guess = ctx.reference_year or (ctx.now.year if ctx.now else 1970)
    aware = "%z" in fmt or "%:z" in fmt or "%Z" in fmt
    frame = pl.DataFrame({"v": text})

    def attempt(year: int) -> pl.Series:
        stamped = pl.lit(f"{year} ") + pl.col("v")
        if aware:
            expr = stamped.str.to_datetime(
                "%Y " + fmt, strict=False, time_unit="us", time_zone="UTC"
            )
        else:
            naive = stamped.str.to_datetime("%Y " + fmt, strict=False, time_unit="us")
            expr = localize(naive, ctx.zone)
        return frame.select(expr.cast(TS_TYPE).alias("ts")).to_series()

    result = attempt(guess)
    if ctx.reference_year is None and ctx.now is not None:
        limit = _as_ts(ctx.now + FUTURE_TOLERANCE)
        too_late = (result > limit).fill_null(False)
        if too_late.any():
            index = too_late.arg_true()
            result = result.scatter(index, attempt(guess - 1).gather(index))
    return result


__all__ = [
    "FUTURE_TOLERANCE",
    "ZONE_ABBREVIATIONS",
    "TimeContext",
    "epoch_expr",
    "month_number",
    "parse_flexible",
    "parse_with_format",
]
