"""The parser both server-format compilers build: parts in, events out.

:class:`FormatParser` takes a compiled format (a sequence of
:class:`~logweir.formats.fields.Literal`, ``Field`` and ``DashGroup``
parts) and parses a batch in four steps:

1. **Match, vectorized.** One regex with named groups, built from the
   parts' fast fragments, runs over the batch with Polars'
   ``str.extract_groups``, split into one chunk per thread. The regex is
   kept one-pass and under :data:`FAST_GROUP_LIMIT` groups where it can be,
   which is what makes Rust's ``regex`` fast here.
2. **Fallback.** Lines the fast regex refuses are matched against the
   lenient regex (still Rust, so linear in the line: no crafted line can
   stall it), and request lines are split in Python, line by line; a line
   that still fails becomes a reject whose reason names the field and
   character where it failed.
3. **Unescape.** Only lines that contain a backslash are looked at.
4. **Convert, vectorized.** One ``select`` turns the captured texts into
   typed canonical columns; a value that does not convert (a 31st of
   February, a byte count past 2**64) rejects its line.

Known shortcoming: formats with more than :data:`FAST_GROUP_LIMIT`
captured groups still work, but the vectorized match runs about half as
fast.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from logweir.formats import fields as F
from logweir.formats.base import ParseOptions, Parser
from logweir.formats.timeutil import check_timezone, localize
from logweir.schema import (
    EVENT_SCHEMA,
    EXTRA_TYPE,
    TS_TYPE,
    LineBatch,
    ParseResult,
    conform_events,
    empty_rejects,
)

logger = logging.getLogger(__name__)

#: The Rust engine keeps its fastest (one-pass) strategy up to 16 groups.
FAST_GROUP_LIMIT = 16
#: Below this many lines a batch is matched in one piece.
MIN_CHUNK_LINES = 20_000

_MARKER = "_matched"

_MODIFIER_RANK = {"": 0, ">": 1, "<": 2}

#: How to compile a parser again: a module-level function and its arguments.
Recipe = tuple[Callable[..., "FormatParser"], tuple[Any, ...]]
_NAMED_GROUP = re.compile(r"\(\?P<")


# ------------------------------------------------------------ regex building


def _stop_after(parts: Sequence[F.Part], index: int, outer: F.Stop) -> F.Stop:
    """Characters that may follow ``parts[index]`` (see :data:`fields.Stop`)."""
    if index + 1 >= len(parts):
        return outer
    following = parts[index + 1]
    if isinstance(following, F.Literal):
        return following.text[0]
    if isinstance(following, F.Field) and following.spec.kind.lead is not None:
        # The next field may be empty (``%q``), so this one may also stop
        # at whatever follows that one.
        rest = _stop_after(parts, index + 1, outer)
        return None if rest is None else following.spec.kind.lead + rest
    return None


def _is_quoted(parts: Sequence[F.Part], index: int) -> bool:
    before = parts[index - 1] if index > 0 else None
    after = parts[index + 1] if index + 1 < len(parts) else None
    return (
        isinstance(before, F.Literal)
        and before.text.endswith('"')
        and isinstance(after, F.Literal)
        and after.text.startswith('"')
    )


def _dash_ok(kind: F.Kind) -> bool:
    """Whether a kind's own fragments already accept ``-``."""
    return re.match(kind.fast("g", " ") + r"\Z", "-") is not None


def render(parts: Sequence[F.Part], lenient: bool, outer: F.Stop = "") -> list[str]:
    """One regex fragment per part (fast or lenient flavour)."""
    fragments: list[str] = []
    for index, part in enumerate(parts):
        stop = _stop_after(parts, index, outer)
        if isinstance(part, F.Literal):
            fragments.append(F.regex_literal(part.text))
        elif isinstance(part, F.DashGroup):
            inner = "".join(render(part.parts, lenient, stop))
            fragments.append(f"(?:-|{inner})")
        else:
            kind = part.spec.kind
            if lenient:
                fragment = kind.lenient(part.group, stop, _is_quoted(parts, index))
            else:
                fragment = kind.fast(part.group, stop)
            if part.dashable and not _dash_ok(kind):
                fragment = f"(?:-|{fragment})"
            fragments.append(fragment)
    return fragments


def _mandatory_group(parts: Sequence[F.Part]) -> str | None:
    """A group that takes part in every match, to tell matches apart."""
    for part in parts:
        if isinstance(part, F.Field) and part.spec.kind.mandatory:
            if not part.dashable or _dash_ok(part.spec.kind):
                return part.group
    return None


# ------------------------------------------------------------ time assembly


def _year(parts: Mapping[str, pl.Expr]) -> pl.Expr | None:
    candidates = []
    if "year" in parts:
        candidates.append(parts["year"])
    if "year2" in parts:
        two = parts["year2"]
        if "century" in parts:
            candidates.append(parts["century"] * 100 + two)
        # POSIX strptime: 69-99 are 1969-1999, 00-68 are 2000-2068.
        candidates.append(pl.when(two >= 69).then(two + 1900).otherwise(two + 2000))
    return pl.coalesce(candidates) if candidates else None


def _hour(parts: Mapping[str, pl.Expr]) -> pl.Expr:
    candidates = []
    if "hour" in parts:
        candidates.append(parts["hour"])
    if "hour12" in parts:
        twelve = parts["hour12"] % 12
        if "pm" in parts:
            twelve = twelve + pl.when(parts["pm"]).then(12).otherwise(0)
        candidates.append(twelve)
    return pl.coalesce(candidates) if candidates else pl.lit(0)


def _naive_from_parts(parts: Mapping[str, pl.Expr]) -> pl.Expr | None:
    """A naive datetime from strftime parts, or None without a date and hour.

    The parts are put back into text and read with chrono so that an
    impossible date (31 February) gives null rather than an error.
    """
    year = _year(parts)
    if year is None or ("hour" not in parts and "hour12" not in parts):
        # A date alone, or a clock alone, is not an event time.
        return None
    clock = [
        _hour(parts),
        parts.get("minute", pl.lit(0)),
        parts.get("second", pl.lit(0)),
    ]
    if "month" in parts and "day" in parts:
        date, layout = [year, parts["month"], parts["day"]], "%Y %m %d"
    elif "yday" in parts:
        date, layout = [year, parts["yday"]], "%Y %j"
    else:
        return None
    text = pl.concat_str([e.cast(pl.String) for e in date + clock], separator=" ")
    return text.str.strptime(
        pl.Datetime("us"), layout + " %H %M %S", strict=False
    )


def assemble_time(outputs: Sequence[F.Outputs], zone: str) -> pl.Expr | None:
    """One UTC timestamp from the ``time:*`` outputs of a group of fields.

    A full datetime (``%t``, ``%{sec}t``, ``$time_iso8601``) wins; else the
    strftime parts are put together. A fraction (``%{msec_frac}t``) is
    added either way. Without an offset (``%z``) the wall time is read in
    ``zone``, except that a ``%Z`` of UTC or GMT means UTC. Returns None when
    the group cannot say which day it is.
    """
    parts: dict[str, list[pl.Expr]] = {}
    for output in outputs:
        for name, expr in output.items():
            if name.startswith("time:"):
                parts.setdefault(name[5:], []).append(expr)
    first = {name: pl.coalesce(exprs) for name, exprs in parts.items()}
    frac = first.get("frac_us")
    if "datetime" in first:
        stamp = first["datetime"]
    else:
        naive = _naive_from_parts(first)
        if naive is None:
            return None
        if "offset_s" in first:
            stamp = naive.dt.replace_time_zone("UTC") - pl.duration(
                seconds=first["offset_s"]
            )
        elif "zone" in first:
            is_utc = first["zone"].str.to_uppercase().is_in(["UTC", "GMT", "UT", "Z"])
            stamp = (
                pl.when(is_utc)
                .then(naive.dt.replace_time_zone("UTC"))
                .otherwise(localize(naive, zone))
            )
        else:
            stamp = localize(naive, zone)
    if frac is not None:
        stamp = stamp + pl.duration(microseconds=frac.fill_null(0))
    return stamp.cast(TS_TYPE)


# ------------------------------------------------------------------- plans


@dataclass(frozen=True)
class _Candidate:
    priority: int
    order: int
    field: F.Field
    expr: pl.Expr


@dataclass(frozen=True)
class _Check:
    """A field whose text can match yet fail to convert."""

    field: F.Field
    failed: pl.Expr


def _as_text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype == TS_TYPE:
        return expr.dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ")
    return expr.cast(pl.String)


class _Plan:
    """What one compiled format computes, as Polars expressions."""

    def __init__(self, fields: Sequence[F.Field], zone: str) -> None:
        self.outputs = {f.group: _convert(f) for f in fields}
        self.columns: dict[str, pl.Expr] = {}
        self.extra: list[tuple[str, pl.Expr]] = []
        self.checks: list[_Check] = []
        self.time_checks: list[tuple[list[F.Field], pl.Expr]] = []
        winners = self._canonical(fields)
        self._time(fields, zone)
        self._extra(fields, winners)
        self._checks(fields)

    def _canonical(self, fields: Sequence[F.Field]) -> set[str]:
        candidates: dict[str, list[_Candidate]] = {}
        for order, fld in enumerate(fields):
            outputs = self.outputs[fld.group]
            targets = {
                name: expr for name, expr in outputs.items() if name in EVENT_SCHEMA
            }
            if fld.spec.column is not None and fld.spec.column != "ts":
                targets[fld.spec.column] = outputs[""]
            for column, expr in targets.items():
                candidates.setdefault(column, []).append(
                    _Candidate(fld.spec.priority, order, fld, expr)
                )
        winners: set[str] = set()
        for column, options in candidates.items():
            best = min(c.priority for c in options)
            # Among equals, the plain directive first (what httpd logs by
            # default), then the final request's, then the original's.
            chosen = sorted(
                (c for c in options if c.priority == best),
                key=lambda c: (_MODIFIER_RANK[c.field.modifier], c.order),
            )
            exprs = [c.expr for c in chosen]
            self.columns[column] = exprs[0] if len(exprs) == 1 else pl.coalesce(exprs)
            winners.update(c.field.group for c in chosen)
        return winners

    def _time(self, fields: Sequence[F.Field], zone: str) -> None:
        groups: dict[str, list[F.Field]] = {}
        for fld in fields:
            if fld.spec.column == "ts":
                groups.setdefault(fld.time_group, []).append(fld)
        stamps: list[tuple[str, pl.Expr]] = []
        for name, members in groups.items():
            stamp = assemble_time([self.outputs[f.group] for f in members], zone)
            if stamp is None:
                continue
            stamps.append((name, stamp))
            present = pl.any_horizontal([not_blank(f) for f in members])
            self.time_checks.append((members, present & stamp.is_null()))
        # The time the request began is the event time; an end time (Apache
        # ``%{end:...}t``) is used only when there is no begin time.
        stamps.sort(key=lambda item: item[0] != "begin")
        if stamps:
            self.columns["ts"] = stamps[0][1]
        for name, stamp in stamps[1:]:
            self.extra.append((f"time_{name}", _as_text(stamp, TS_TYPE)))

    def _extra(self, fields: Sequence[F.Field], winners: set[str]) -> None:
        entries: dict[str, list[pl.Expr]] = {}
        for key, expr in self.extra:
            entries.setdefault(key, []).append(expr)
        for fld in fields:
            outputs = self.outputs[fld.group]
            for name, expr in outputs.items():
                if name.startswith("extra:"):
                    entries.setdefault(name[6:], []).append(expr)
            if fld.group in winners or fld.spec.column == "ts":
                continue
            text = _as_text(outputs[""], fld.spec.kind.dtype)
            entries.setdefault(fld.spec.key, []).append(text)
        # A key named twice (``%<{X}i`` and ``%>{X}i``) keeps its first value.
        self.extra = [
            (key, exprs[0] if len(exprs) == 1 else pl.coalesce(exprs))
            for key, exprs in entries.items()
        ]

    def _checks(self, fields: Sequence[F.Field]) -> None:
        for fld in fields:
            kind = fld.spec.kind
            if kind.dtype == pl.String():
                continue
            self.checks.append(
                _Check(fld, not_blank(fld) & self.outputs[fld.group][""].is_null())
            )

    def failure_flag(self) -> pl.Expr | None:
        flags = [c.failed for c in self.checks] + [f for _, f in self.time_checks]
        return pl.any_horizontal(flags) if flags else None


def not_blank(fld: F.Field) -> pl.Expr:
    """The field's own text was captured and is not the ``-`` placeholder."""
    text = pl.col(fld.group)
    return text.is_not_null() & (text != "-")


def _convert(fld: F.Field) -> F.Outputs:
    kind = fld.spec.kind
    texts = {suffix: pl.col(fld.group + suffix) for suffix in kind.subgroups}
    return kind.convert(texts)


# ------------------------------------------------------------------ parser


@dataclass
class _Matched:
    """Captured texts of a batch, before conversion."""

    table: pl.DataFrame
    #: Batch row of each table row (None: table rows are batch rows).
    rows: pl.Series | None
    #: Table row -> reason, for lines nothing matched.
    failed: dict[int, str]
    skipped: int
    lines: pl.Series

    def batch_row(self, table_row: int) -> int:
        return table_row if self.rows is None else int(self.rows[table_row])


class FormatParser(Parser):
    """A server log format compiled into one regex and one conversion plan.

    Built by :func:`logweir.formats.apache.compile_apache` and
    :func:`logweir.formats.nginx.compile_nginx`; picklable, and stateless
    between batches.
    """

    def __init__(
        self,
        name: str,
        format_text: str,
        parts: Sequence[F.Part],
        options: ParseOptions,
        escape: F.Escape = "backslash",
        recipe: Recipe | None = None,
    ) -> None:
        self.name = name
        self.recipe = recipe
        self.format_text = format_text
        self.parts = tuple(parts)
        self.options = options
        self.zone = check_timezone(options.timezone)
        self.fields = F.flat_fields(self.parts)
        self._unescape = F.UNESCAPERS[escape]
        marker = _mandatory_group(self.parts)
        fast = "".join(render(self.parts, lenient=False))
        if marker is None:
            marker, fast = _MARKER, f"(?P<{_MARKER}>)" + fast
        self.marker = marker
        self.fast_regex = f"^{fast}$"
        self.lenient_fragments = render(self.parts, lenient=True)
        self.strict_fragments = render(self.parts, lenient=False)
        self.lenient_regex = f"^(?P<{_MARKER}>)" + "".join(self.lenient_fragments) + "$"
        self._columns = [c for f in self.fields for c in f.spec.kind.columns(f.group)]
        self._text_columns = [
            c for f in self.fields if f.spec.kind.text for c in f.spec.kind.columns(f.group)
        ]
        self._plan: _Plan | None = None
        groups = len(_NAMED_GROUP.findall(self.fast_regex))
        if groups > FAST_GROUP_LIMIT:
            logger.debug(
                "format %r captures %d groups (> %d): slower vectorized match",
                name,
                groups,
                FAST_GROUP_LIMIT,
            )

    # -- public --------------------------------------------------------

    def parse(self, batch: LineBatch) -> ParseResult:
        """Parse ``batch`` into canonical events and rejects; never raises."""
        matched = self._match(batch)
        plan = self.plan
        exprs = [
            expr.cast(EVENT_SCHEMA[name]).alias(name)
            for name, expr in plan.columns.items()
        ]
        exprs += [expr.alias(f"__extra{i}") for i, (_, expr) in enumerate(plan.extra)]
        flag = plan.failure_flag()
        if flag is not None:
            exprs.append(flag.alias("__failed"))
        typed = matched.table.lazy().select(exprs).collect()
        failed = dict(matched.failed)
        if flag is not None:
            failures = typed.get_column("__failed").fill_null(False)
            if failures.any():
                for row in failures.arg_true().to_list():
                    if row not in failed:
                        failed[row] = self._conversion_reason(matched, row)
        events = self._events(batch, matched, typed)
        if failed:
            keep = pl.Series([True] * typed.height)
            keep.scatter(sorted(failed), False)
            events = events.filter(keep)
        rejects = self._rejects(batch, matched, failed)
        return ParseResult(events=events, rejects=rejects, skipped=matched.skipped)

    def parse_fields(self, batch: LineBatch) -> pl.DataFrame:
        """Each field's own typed value, one column per token as written.

        One row per non-empty line of ``batch``; rows of lines that do not
        match are all null. A token written twice gets ``#2`` after its
        second column name. Used by conformance tests and ``logweir detect``.
        """
        matched = self._match(batch)
        exprs: list[pl.Expr] = []
        seen: dict[str, int] = {}
        for fld in self.fields:
            seen[fld.token] = seen.get(fld.token, 0) + 1
            name = fld.token if seen[fld.token] == 1 else f"{fld.token}#{seen[fld.token]}"
            exprs.append(self.plan.outputs[fld.group][""].alias(name))
        return matched.table.lazy().select(exprs).collect()

    @property
    def plan(self) -> _Plan:
        # Built on first use: Polars expressions are cheap to rebuild after
        # unpickling, and this keeps compile errors at compile time only.
        if self._plan is None:
            self._plan = _Plan(self.fields, self.zone)
        return self._plan

    def __reduce__(self) -> tuple[Any, ...]:
        # Kinds hold closures, which do not pickle: a parser travels to
        # worker processes as the call that compiles it again.
        if self.recipe is None:
            raise TypeError(f"parser {self.name!r} was built without a recipe")
        return self.recipe

    # -- matching ------------------------------------------------------

    def _match(self, batch: LineBatch) -> _Matched:
        lines = batch.lines
        if lines.len() and lines.str.ends_with("\r").any():
            lines = lines.str.strip_suffix("\r")
        empty = lines.str.len_bytes() == 0
        skipped = int(empty.sum())
        rows: pl.Series | None = None
        if skipped:
            rows = (~empty).arg_true()
            lines = lines.filter(~empty)
        table = self._extract(lines)
        unmatched = table.get_column(self.marker).is_null()
        failed: dict[int, str] = {}
        if unmatched.any():
            table, failed = self._fallback(table, lines, unmatched.arg_true())
        table = self._unescape_table(table, lines)
        return _Matched(table, rows, failed, skipped, lines)

    def _extract(self, lines: pl.Series) -> pl.DataFrame:
        frame = lines.alias("line").to_frame()
        threads = pl.thread_pool_size()
        chunks = max(1, min(threads, lines.len() // MIN_CHUNK_LINES))
        step = -(-lines.len() // chunks) if lines.len() else 0
        plans = [
            frame.slice(start, step)
            .lazy()
            .select(pl.col("line").str.extract_groups(self.fast_regex).struct.unnest())
            for start in range(0, max(lines.len(), 1), max(step, 1))
        ]
        table = pl.concat(pl.collect_all(plans)) if len(plans) > 1 else plans[0].collect()
        missing = [c for c in self._columns if c not in table.columns]
        if missing:
            table = table.with_columns(pl.lit(None, pl.String).alias(c) for c in missing)
        return table

    def _fallback(
        self, table: pl.DataFrame, lines: pl.Series, rows: pl.Series
    ) -> tuple[pl.DataFrame, dict[int, str]]:
        """Match the lines at ``rows`` with the lenient regex; explain the
        lines that still fail."""
        subset = lines.gather(rows)
        lenient = subset.str.extract_groups(self.lenient_regex).struct.unnest()
        ok = lenient.get_column(_MARKER).is_not_null()
        failed: dict[int, str] = {}
        if not ok.all():
            bad_rows = rows.filter(~ok).to_list()
            reasons = self.diagnose_many(subset.filter(~ok))
            failed = dict(zip(bad_rows, reasons, strict=True))
        logger.debug(
            "fallback: %d lines matched leniently, %d rejected",
            int(ok.sum()),
            len(failed),
        )
        if not ok.any():
            return table, failed
        found = lenient.filter(ok)
        updates = {c: found.get_column(c) for c in found.columns if c in table.columns}
        for fld in self.fields:
            post = fld.spec.kind.post
            if post is None:
                continue
            split = [post(text) for text in found.get_column(fld.group).to_list()]
            for suffix in fld.spec.kind.subgroups[1:]:
                values = [parts[suffix] for parts in split]
                updates[fld.group + suffix] = pl.Series(values, dtype=pl.String)
        index = rows.filter(ok)
        table = table.with_columns(
            table.get_column(name).scatter(index, values.cast(pl.String))
            for name, values in updates.items()
        )
        if self.marker == _MARKER:
            table = table.with_columns(
                table.get_column(_MARKER).scatter(index, "")
            )
        return table, failed

    def _unescape_table(self, table: pl.DataFrame, lines: pl.Series) -> pl.DataFrame:
        if self._unescape is None or not self._text_columns:
            return table
        escaped = lines.str.contains("\\", literal=True)
        if not escaped.any():
            return table
        index = escaped.arg_true()
        unescape = self._unescape
        updates = []
        for column in self._text_columns:
            values = table.get_column(column).gather(index).to_list()
            fixed = [None if v is None else unescape(v) for v in values]
            updates.append(
                table.get_column(column).scatter(index, pl.Series(fixed, dtype=pl.String))
            )
        return table.with_columns(updates)

    # -- reasons -------------------------------------------------------

    def diagnose(self, line: str) -> str:
        """Why ``line`` does not match: the field or text that failed, where."""
        return self.diagnose_many(pl.Series([line], dtype=pl.String))[0]

    def diagnose_many(self, lines: pl.Series) -> list[str]:
        """:meth:`diagnose` for many lines, a few vectorized passes in all.

        Matching a prefix of the parts is monotone in the prefix length, so
        each line binary-searches the longest prefix of parts that matches;
        all lines probing the same prefix share one regex pass.
        """
        texts = lines.to_list()
        count = len(texts)
        low, high, end = [0] * count, [len(self.parts)] * count, [0] * count
        while True:
            probes: dict[int, list[int]] = {}
            for j in range(count):
                if low[j] < high[j]:
                    probes.setdefault((low[j] + high[j] + 1) // 2, []).append(j)
            if not probes:
                break
            for middle, members in probes.items():
                ends = _match_ends(lines, members, self.lenient_fragments[:middle])
                for j, stop in zip(members, ends, strict=True):
                    if stop is None:
                        high[j] = middle - 1
                    else:
                        low[j], end[j] = middle, stop
        self._refine_ends(lines, low, end)
        reasons = []
        for j, line in enumerate(texts):
            if low[j] == len(self.parts):
                reasons.append(
                    f"line does not match format at char {end[j]} (unexpected text "
                    f"after {self._token_before(low[j])}: "
                    f"{_quote(F.snippet(line[end[j] :]))})"
                )
            else:
                reasons.append(self._reason_at(low[j], line, end[j]))
        return reasons

    def _refine_ends(self, lines: pl.Series, low: list[int], end: list[int]) -> None:
        """Push each end past its last field as far as the strict fragment
        reaches: a lazy lenient field stops as early as it can."""
        by_prefix: dict[int, list[int]] = {}
        for j, matched in enumerate(low):
            if matched > 0:
                by_prefix.setdefault(matched, []).append(j)
        for matched, members in by_prefix.items():
            fragments = self.lenient_fragments[: matched - 1] + [
                self.strict_fragments[matched - 1]
            ]
            ends = _match_ends(lines, members, fragments)
            for j, stop in zip(members, ends, strict=True):
                if stop is not None:
                    end[j] = max(end[j], stop)

    def _reason_at(self, index: int, line: str, position: int) -> str:
        part = self.parts[index]
        got = "end of line" if position >= len(line) else _quote(F.snippet(line[position:]))
        if isinstance(part, F.Field):
            return (
                f"{part.spec.key}: expected {part.spec.kind.expected} at char "
                f"{position}, got {got}"
            )
        if isinstance(part, F.DashGroup):
            return f"{part.token}: expected a time or '-' at char {position}, got {got}"
        nxt = self._token_after(index)
        context = f"before {nxt}" if nxt else f"after {self._token_before(index)}"
        return (
            f"line does not match format at char {position} "
            f"(expected {part.text!r} {context}, got {got})"
        )

    def _token_after(self, index: int) -> str | None:
        for part in self.parts[index + 1 :]:
            if isinstance(part, F.Field | F.DashGroup):
                return part.token
        return None

    def _token_before(self, index: int) -> str:
        for part in reversed(self.parts[:index]):
            if isinstance(part, F.Field | F.DashGroup):
                return part.token
        return "the start"

    def _conversion_reason(self, matched: _Matched, row: int) -> str:
        line: str = matched.lines[row]
        for check in self.plan.checks:
            fld = check.field
            value = matched.table.get_column(fld.group)[row]
            if value is None or value == "-":
                continue
            probe = pl.DataFrame({fld.group: [value]}, schema={fld.group: pl.String})
            if probe.select(check.failed).item():
                where = self._position_of(line, fld)
                return (
                    f"{fld.spec.key}: invalid {fld.spec.kind.name} at char {where}, "
                    f"got {_quote(value)}"
                )
        for members, _ in self.plan.time_checks:
            values = [matched.table.get_column(f.group)[row] for f in members]
            present = [v for v in values if v is not None]
            if present:
                where = self._position_of(line, members[0])
                text = " ".join(present)
                return f"time: invalid date or time at char {where}, got {_quote(text)}"
        return "a value did not convert"

    def _position_of(self, line: str, fld: F.Field) -> int:
        """Where ``fld``'s text starts in a line that matched (for reasons)."""
        index = next(
            i
            for i, part in enumerate(self.parts)
            if part is fld or (isinstance(part, F.DashGroup) and fld in part.parts)
        )
        series = pl.Series([line], dtype=pl.String)
        for fragments in (self.strict_fragments, self.lenient_fragments):
            stop = _match_ends(series, [0], fragments[:index])[0]
            if stop is not None:
                return stop
        return 0

    # -- output --------------------------------------------------------

    def _events(
        self, batch: LineBatch, matched: _Matched, typed: pl.DataFrame
    ) -> pl.DataFrame:
        plan = self.plan
        offsets = batch.offsets
        if matched.rows is not None:
            offsets = offsets.gather(matched.rows)
        keys = [key for key, _ in plan.extra]
        extra = F.build_extra(
            keys, [typed.get_column(f"__extra{i}") for i in range(len(keys))]
        ) if keys else pl.repeat([], typed.height, dtype=EXTRA_TYPE, eager=True)
        columns: list[pl.Expr | pl.Series] = []
        for name, dtype in EVENT_SCHEMA.items():
            if name in plan.columns:
                columns.append(pl.col(name))
            elif name == "source":
                columns.append(pl.lit(batch.source, pl.String).alias(name))
            elif name == "offset":
                columns.append(offsets.alias(name))
            elif name == "extra":
                columns.append(extra.alias(name))
            else:
                columns.append(pl.lit(None, dtype).alias(name))
        # Every column already has its canonical type, so this only checks.
        return conform_events(typed.select(columns))

    def _rejects(
        self, batch: LineBatch, matched: _Matched, failed: Mapping[int, str]
    ) -> pl.DataFrame:
        if not failed:
            return empty_rejects()
        rows = sorted(failed)
        return F.build_rejects(
            batch, [matched.batch_row(r) for r in rows], [failed[r] for r in rows]
        )


def _quote(text: str) -> str:
    return '"' + text + '"'


def _match_ends(
    lines: pl.Series, members: Sequence[int], fragments: Sequence[str]
) -> list[int | None]:
    """Where the regex made of ``fragments`` stops matching each chosen line
    from its start (in characters), or None where it does not match.

    Measured as how much a replace of the match shortens the line: a plain
    replace only has to find the match, not its groups, so it runs on the
    DFA, fast and in linear time even on megabyte lines.
    """
    chosen = lines.gather(pl.Series(list(members), dtype=pl.UInt32))
    if not fragments:
        return [0] * len(members)
    pattern = "^(?:" + "".join(fragments) + ")"
    frame = pl.DataFrame({"line": chosen}).select(
        pl.col("line").str.contains(pattern).alias("hit"),
        (
            pl.col("line").str.len_chars()
            - pl.col("line").str.replace(pattern, "").str.len_chars()
        ).alias("end"),
    )
    return [
        int(stop) if hit else None
        for hit, stop in zip(frame["hit"].to_list(), frame["end"].to_list(), strict=True)
    ]


