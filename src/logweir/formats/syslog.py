"""Syslog: RFC 5424 and RFC 3164 (BSD) lines, told apart line by line.

>>> from logweir.formats import compile_format
>>> parser = compile_format("syslog")

RFC 5424 (``<165>1 2003-10-11T22:14:15.003Z host app 1234 ID47 [sd] msg``)
is recognised by its version digit after the PRI; everything else is read
as RFC 3164, which covers what syslog daemons write to files in practice:

* the PRI is optional (files rarely keep it), and so is the host name
  (``Mar  1 12:00:00 kernel: …``);
* the timestamp is ``Mmm dd hh:mm:ss`` (no year: see
  :mod:`logweir.formats.flextime` for how the year is chosen, and
  ``ParseOptions.reference_year`` to fix it), or an RFC 3339 timestamp
  as rsyslog writes with its high-precision template; month names may be
  English, French, German or Spanish;
* the tag is ``name[pid]:`` or ``name:``; a line with none keeps all its
  text as the message (``--- last message repeated 2 times ---``).

Columns: ``ts``, ``host``, ``service`` (APP-NAME or tag), ``level`` (the
severity's keyword: emerg, alert, crit, err, warning, notice, info,
debug; null without a PRI) and ``message``. ``extra`` holds ``facility``
(its keyword), ``pid``, ``msgid`` and each structured-data parameter as
``<SD-ID>.<name>``. The NILVALUE ``-`` is null.

A line that starts with a space or tab and follows a syslog line in the
same batch continues that line's message (macOS and Java write multi-line
messages so); it is counted in ``ParseResult.skipped``, not as an event.
A continuation line at the very start of a batch has nothing to continue
and is rejected.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

import polars as pl

from logweir.formats.base import ParseOptions, Parser
from logweir.formats.flextime import TimeContext, parse_flexible
from logweir.formats.keymap import extra_from_entries
from logweir.formats.lineprep import Prepared, assemble, diagnosed, prepare
from logweir.formats.timeutil import check_timezone, utc_offset
from logweir.schema import LineBatch, ParseResult

#: Severity keywords, by code.
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")

#: Facility keywords, by code.
FACILITIES = (
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    *(f"local{number}" for number in range(8)),
)

_SD_ELEMENT = r'\[(?:[^\]"\\]|\\.|"(?:[^"\\]|\\.)*")*\]'
_RFC5424 = (
    r"^(?P<_m>)<(?P<pri>\d{1,3})>(?P<version>\d{1,2}) (?P<ts>\S+) (?P<host>\S+) "
    r"(?P<app>\S+) (?P<procid>\S+) (?P<msgid>\S+) "
    rf"(?P<sd>-|(?:{_SD_ELEMENT})+)(?: (?P<msg>.*))?$"
)
_HOST = r"[\p{L}\p{N}_][^\s\[\]]*[^\s\[\]:]|[\p{L}\p{N}_]"
_RFC3164 = (
    r"^(?P<_m>)(?:<(?P<pri>\d{1,3})>)?"
    r"(?P<ts>\d{4}-\d{2}-\d{2}T\S+|\p{L}{3,9}\.? +\d{1,2}(?: \d{4})? "
    r"\d{1,2}:\d{2}:\d{2}(?:\.\d+)?)"
    rf"(?: (?P<host>{_HOST}))?"
    r"(?: (?P<tag>[^\s\[\]:]+)(?:\[(?P<pid>[^\]]*)\])?:)?"
    r" ?(?P<msg>.*)$"
)
_SD_PARAM = r'([^\s=\]"]+)\s*=\s*"((?:[^"\\]|\\.)*)"'

#: Maximum PRI value: facility 23, severity 7.
_MAX_PRI = 191


def _now(zone: str) -> datetime:
    return datetime.now(utc_offset(zone))


class SyslogParser(Parser):
    """RFC 5424 and RFC 3164 lines to canonical events.

    ``clock`` gives the current time for year inference (RFC 3164 has no
    year); tests pass a fixed one. It must be a module-level function for
    the parser to stay picklable.
    """

    name = "syslog"

    def __init__(
        self,
        options: ParseOptions | None = None,
        *,
        clock: Callable[[str], datetime] = _now,
    ) -> None:
        self.options = options or ParseOptions()
        check_timezone(self.options.timezone)
        self.clock = clock

    def parse(self, batch: LineBatch) -> ParseResult:
        prepared = prepare(batch)
        ctx = TimeContext(
            self.options.timezone,
            self.options.reference_year,
            self.clock(self.options.timezone),
        )
        fields = _match(prepared)
        parsed, rejects = _continue_messages(prepared, fields)
        events = _to_events(parsed, ctx)
        return assemble(batch, prepared, pl.concat([events, rejects], how="diagonal"))


def _match(prepared: Prepared) -> pl.DataFrame:
    """One row per kept line: the fields of whichever RFC it matches."""
    lines = prepared.lines
    modern = lines.str.extract_groups(_RFC5424).struct.unnest()
    is_modern = modern.get_column("_m").is_not_null()
    legacy_index = (~is_modern).arg_true()
    legacy = lines.gather(legacy_index).str.extract_groups(_RFC3164).struct.unnest()
    nil = ["host", "app", "procid", "msgid", "sd", "ts"]
    modern = (
        modern.filter(is_modern)
        .with_columns(
            *[
                pl.when(pl.col(name) == "-")
                .then(None)
                .otherwise(pl.col(name))
                .alias(name)
                for name in nil
            ],
            pl.col("msg").str.strip_prefix("\ufeff"),
        )
        .with_columns(pl.col("app").alias("service"), pl.col("procid").alias("pid"))
    )
    legacy = legacy.with_columns(
        pl.col("tag").alias("service"),
        pl.lit(None, pl.String).alias("msgid"),
        pl.lit(None, pl.String).alias("sd"),
    )
    columns = ["_m", "pri", "ts", "host", "service", "pid", "msgid", "sd", "msg"]
    rows = prepared.rows
    return (
        pl.concat(
            [
                modern.select(columns).with_columns(
                    rows.filter(is_modern).alias("row")
                ),
                legacy.select(columns).with_columns(
                    rows.gather(legacy_index).alias("row")
                ),
            ]
        )
        .sort("row")
        .with_columns(prepared.lines.alias("line"))
    )


def _continue_messages(
    prepared: Prepared, fields: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Fold continuation lines into the message before them; reject the rest.

    Returns the matched lines (messages extended) and the rejects.
    """
    matched = pl.col("_m").is_not_null()
    indented = pl.col("line").str.contains(r"^[ \t]")
    # Each line that is not an indented leftover starts a group; indented
    # leftovers continue their group's first line if that one matched.
    starts = matched | ~indented
    fields = fields.with_columns(
        starts.cum_sum().alias("_group"),
    ).with_columns(
        matched.any().over("_group").alias("_group_matched"),
    )
    unmatched = fields.filter(~matched)
    follows = indented & pl.col("_group_matched")
    continuation = unmatched.filter(follows)
    orphans = unmatched.filter(~follows)
    rejects = diagnosed(
        orphans.get_column("row"), orphans.get_column("line"), _diagnose
    )
    events = fields.filter(matched)
    if continuation.height:
        tails = continuation.group_by("_group").agg(
            pl.col("line").str.join("\n").alias("_tail")
        )
        events = events.join(tails, on="_group", how="left").with_columns(
            pl.when(pl.col("_tail").is_not_null())
            .then(
                pl.when(pl.col("msg").is_null())
                .then(pl.col("_tail"))
                .otherwise(pl.concat_str(pl.col("msg"), pl.lit("\n"), pl.col("_tail")))
            )
            .otherwise(pl.col("msg"))
            .alias("msg")
        )
    return events, rejects


def _to_events(fields: pl.DataFrame, ctx: TimeContext) -> pl.DataFrame:
    pri = fields.get_column("pri").cast(pl.Int64, strict=False)
    bad_pri = pri > _MAX_PRI
    ts = parse_flexible(fields.get_column("ts"), ctx)
    bad_ts = fields.get_column("ts").is_not_null() & ts.is_null()
    good_pri = pl.select(pl.when(~bad_pri).then(pri)).to_series()
    frame = fields.with_columns(
        ts.alias("ts"),
        good_pri.alias("_pri"),
        (good_pri % 8)
        .replace_strict(
            dict(enumerate(SEVERITIES)), default=None, return_dtype=pl.String
        )
        .alias("level"),
        (good_pri // 8)
        .replace_strict(
            dict(enumerate(FACILITIES)), default=None, return_dtype=pl.String
        )
        .alias("facility"),
        pl.col("msg").alias("message"),
    )
    reason = pl.select(
        pl.when(pl.lit(bad_pri))
        .then(pl.lit("pri: ") + pl.lit(pri.cast(pl.String)) + pl.lit(" is over 191"))
        .when(pl.lit(bad_ts))
        .then(
            pl.lit("ts: field 'timestamp' has '")
            + pl.lit(fields.get_column("ts"))
            + pl.lit("', not a timestamp")
        )
    ).to_series()
    return frame.with_columns(
        reason.alias("_reason"), _extra(frame).alias("extra")
    ).select("row", "ts", "host", "service", "level", "message", "extra", "_reason")


def _extra(frame: pl.DataFrame) -> pl.Series:
    """facility, pid, msgid and structured-data parameters, per line."""
    indexed = frame.with_row_index("_index")
    fixed = indexed.select(
        pl.col("_index").alias("row"), "facility", "pid", "msgid"
    ).unpivot(index="row", variable_name="key", value_name="value")
    entries = [fixed.with_columns(pl.lit(0).alias("_order"))]
    with_sd = indexed.filter(pl.col("sd").is_not_null())
    if with_sd.height:
        entries.append(_sd_entries(with_sd).with_columns(pl.lit(1).alias("_order")))
    long = pl.concat(entries, how="vertical_relaxed").sort(
        "row", "_order", maintain_order=True
    )
    return extra_from_entries(long.drop("_order"), frame.height)


def _sd_entries(frame: pl.DataFrame) -> pl.DataFrame:
    """``<SD-ID>.<name>`` entries of each line's structured data."""
    elements = (
        frame.select(
            pl.col("_index").alias("row"), pl.col("sd").str.extract_all(_SD_ELEMENT)
        )
        .explode("sd")
        .with_columns(
            pl.col("sd").str.extract(r"^\[([^\s\]]+)", 1).alias("id"),
            pl.col("sd").str.extract_all(_SD_PARAM).alias("param"),
        )
        .explode("param")
        .filter(pl.col("param").is_not_null())
    )
    pairs = elements.with_columns(
        pl.col("param").str.extract(_SD_PARAM, 1).alias("name"),
        pl.col("param").str.extract(_SD_PARAM, 2).alias("raw"),
    )
    return pairs.select(
        pl.col("row").cast(pl.UInt32),
        (pl.col("id") + "." + pl.col("name")).alias("key"),
        pl.col("raw").str.replace_all(r"\\([\\\]\"])", "$1").alias("value"),
    )


_PRI = re.compile(r"<(\d{1,3})>")


def _diagnose(line: str) -> str:
    """Why a line is no syslog line, naming the column that failed (slow path)."""
    column = 1
    if line.startswith("<"):
        pri = _PRI.match(line)
        if pri is None:
            return "not syslog: malformed PRI at column 1"
        column = pri.end() + 1
        rest = line[pri.end() :]
        if rest[:1].isdigit():
            return _diagnose_5424(line, column)
    if line[:1] in (" ", "\t"):
        return "not syslog: an indented line that continues no syslog line"
    return f"not syslog: no timestamp at column {column}"


def _diagnose_5424(line: str, column: int) -> str:
    """Name the first RFC 5424 header field missing, or the bad SD."""
    rest = line[column - 1 :]
    names = ("timestamp", "hostname", "app-name", "procid", "msgid", "structured data")
    for name in names:
        space = rest.find(" ")
        if space < 0:
            end = column + len(rest)
            return f"not syslog: RFC 5424 line ends before its {name} (column {end})"
        column += space + 1
        rest = rest[space + 1 :]
    return f"not syslog: malformed RFC 5424 structured data at column {column}"


__all__ = ["FACILITIES", "SEVERITIES", "SyslogParser"]
