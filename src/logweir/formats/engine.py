"""The parser both server-format compilers build: parts in, events out.

:class:`FormatParser` takes a compiled format (a sequence of
:class:`~logweir.formats.fields.Literal`, ``Field`` and ``DashGroup``
parts) and parses a batch like this:

1. **Match and convert, vectorized.** One regex with named groups, built
   from the parts' fast fragments, runs over the batch with Polars'
   ``str.extract_groups``, one chunk per thread, and in the same query one
   set of expressions turns the captured texts into typed canonical
   columns. The regex is kept one-pass and under :data:`FAST_GROUP_LIMIT`
   groups where it can be, which is what makes Rust's ``regex`` fast here.
   Its cost is per byte read, so a format that ends with a quoted free-text
   field (``combined``'s ``"%{User-Agent}i"``) takes the **tail road**
   (:class:`_TailRoad`): the field is cut off at its separator with a byte
   search and only the rest goes through the regex. The road takes only
   the lines where that gives exactly what the whole regex gives, and
   leaves the others (a backslash, a quote in the last field) to the
   regex.
2. **Unescape.** Only the lines that hold a backslash are looked at.
3. **Fallback.** The lines the fast road refused are matched again with
   the fast regex and, where it still fails, the lenient regex (still
   Rust, so linear in the line: no crafted line can stall it), their
   request lines split in Python, converted with the same expressions and
   put back in place, chunk by chunk. A line that still fails is a reject
   whose reason names the field and character where it failed.
4. **Check.** A value that matched but did not convert (a 31st of
   February, a byte count past 2**64) rejects its line, with a reason.

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
#: Chunks of a batch are at least this many lines.
MIN_CHUNK_LINES = 20_000

_MARKER = "_matched"
_ESCAPED = "_escaped"
_FAILED = "_failed"
_HIT = "_hit"

_MODIFIER_RANK = {"": 0, ">": 1, "<": 2}

#: How to compile a parser again: a module-level function and its arguments.
Recipe = tuple[Callable[..., "FormatParser"], tuple[Any, ...]]
_NAMED_GROUP = re.compile(r"\(\?P<(\w+)>")


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
        if (
            isinstance(part, F.Field)
            and part.spec.kind.mandatory
            and (not part.dashable or _dash_ok(part.spec.kind))
        ):
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
    return text.str.strptime(pl.Datetime("us"), layout + " %H %M %S", strict=False)


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
    """A field whose text can match yet fail to convert.

    ``flag`` reads the typed canonical column when the field fills one on
    its own (so the conversion is not run twice); ``probe`` converts the
    field's text itself, for one-row frames when a reason is written.
    """

    field: F.Field
    flag: pl.Expr
    probe: pl.Expr


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
        #: Field group -> the canonical column that holds its value unchanged.
        self.direct: dict[str, str] = {}
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
            if len(chosen) == 1 and chosen[0].field.spec.column == column:
                self.direct[chosen[0].field.group] = column
        return winners

    def _time(self, fields: Sequence[F.Field], zone: str) -> None:
        groups: dict[str, list[F.Field]] = {}
        for fld in fields:
            if fld.spec.column == "ts":
                groups.setdefault(fld.time_group, []).append(fld)
        stamps: list[tuple[str, pl.Expr, list[F.Field]]] = []
        for name, members in groups.items():
            stamp = assemble_time([self.outputs[f.group] for f in members], zone)
            if stamp is not None:
                stamps.append((name, stamp, members))
        # The time the request began is the event time; an end time (Apache
        # ``%{end:...}t``) is used only when there is no begin time.
        stamps.sort(key=lambda item: item[0] != "begin")
        for rank, (name, stamp, members) in enumerate(stamps):
            present = pl.any_horizontal([not_blank(f) for f in members])
            if rank == 0:
                self.columns["ts"] = stamp
                self.time_checks.append((members, present & pl.col("ts").is_null()))
            else:
                self.time_checks.append((members, present & stamp.is_null()))
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
            # Text cannot fail; times are checked as whole stamps.
            if fld.spec.kind.dtype == pl.String() or fld.spec.column == "ts":
                continue
            value = self.outputs[fld.group][""]
            column = self.direct.get(fld.group)
            typed = value if column is None else pl.col(column)
            self.checks.append(
                _Check(
                    fld,
                    not_blank(fld) & typed.is_null(),
                    not_blank(fld) & value.is_null(),
                )
            )

    def failure_flag(self) -> pl.Expr | None:
        """True for rows whose text matched but did not convert.

        Evaluated on the captured texts *with* the canonical columns added.
        """
        flags = [c.flag for c in self.checks] + [f for _, f in self.time_checks]
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


@dataclass(frozen=True)
class _Lines:
    """The lines of a batch worth parsing: ``\\r`` stripped, empty ones out."""

    lines: pl.Series
    #: Batch row of each line (None: the same as the line's index).
    rows: pl.Series | None
    skipped: int

    def batch_rows(self, indices: Sequence[int]) -> list[int]:
        if self.rows is None:
            return list(indices)
        return [int(self.rows[i]) for i in indices]


@dataclass(frozen=True)
class _Typed:
    """Typed columns of every line; ``failed`` maps line index → reason."""

    frame: pl.DataFrame
    failed: dict[int, str]


@dataclass(frozen=True)
class _TailRoad:
    """The fast road for formats that end with a quoted free-text field.

    Such a field (``"%{User-Agent}i"`` at the end of ``combined``) is
    often the longest text of the line, and the capture regex costs about
    the same for each byte it reads. So the line is cut where the last
    field begins, at the first ``separator`` (the literal before the field,
    ``" "`` in ``combined``), with a byte search; the regex of the parts
    before it captures the head, and the field is the rest of the line
    without its closing quote.

    A line is taken only when this cut gives exactly what the whole fast
    regex would: no backslash in the line, and exactly one quote after
    the cut, the last character. Then the separator, which ends with a
    quote, ends at the last quote but one, where the whole regex must end
    it too, so the head regex (the very fragments of the whole regex,
    anchored at the cut) captures what the whole regex captures. Every
    other line is left all null, to be matched again by the regex road.
    """

    separator: str
    regex: str
    group: str
    marker: str

    @staticmethod
    def plan(parts: Sequence[F.Part], marker: str) -> _TailRoad | None:
        """The road for ``parts``, or None when the format does not end
        with ``<separator ending with a quote><free text>"``."""
        if len(parts) < 4:
            return None
        last, field, separator = parts[-1], parts[-2], parts[-3]
        if not (
            isinstance(last, F.Literal)
            and last.text == '"'
            and isinstance(field, F.Field)
            and field.spec.kind.fast is F.TEXT.fast
            and field.spec.kind.subgroups == ("",)
            and not (field.dashable and not _dash_ok(field.spec.kind))
            and isinstance(separator, F.Literal)
            and len(separator.text) >= 2
            and separator.text.endswith('"')
        ):
            return None
        head = parts[:-3]
        # A separator written earlier in the format would be found first
        # on nearly every line: the road would then take none.
        if any(isinstance(p, F.Literal) and separator.text in p.text for p in head):
            return None
        fragments = render(parts, lenient=False)[:-3]
        regex = "".join(fragments)
        if marker == _MARKER:
            regex = f"(?P<{_MARKER}>)" + regex
        elif marker not in _NAMED_GROUP.findall(regex):
            return None
        try:
            # The regex is written for both Rust and Python (``fields``).
            empty = re.match(f"^{regex}$", "") is not None
        except re.error:
            return None
        if empty:
            return None
        return _TailRoad(separator.text, f"^{regex}$", field.group, marker)

    def texts(self, chunk: pl.LazyFrame) -> pl.LazyFrame:
        """Captured texts of the lines of ``chunk`` (column ``line``), the
        ones this road does not take all null, and ``_escaped``."""
        line = pl.col("line")
        raw, cut, rest = pl.col("_raw"), pl.col("_cut"), pl.col("_rest")
        # ``find`` counts bytes: the cut is sliced as bytes. It falls
        # between characters (the separator is found whole), so both sides
        # are text again; the cast checks it, for all values at once.
        after = raw.bin.slice(cut + len(self.separator.encode())).cast(pl.String)
        # Exactly one quote after the cut, the last character.
        taken = (
            ~pl.col(_ESCAPED)
            & (rest.str.find('"', literal=True) == rest.str.len_bytes() - 1)
        ).fill_null(False)
        # Lines not taken get an empty head, which the regex refuses (see
        # plan), rather than a null: a column with nulls sends Polars'
        # ``extract_groups`` down a path several times slower.
        head = raw.bin.slice(0, pl.when(taken).then(cut).otherwise(0)).cast(pl.String)
        captured = head.str.extract_groups(self.regex).struct.unnest()
        return (
            chunk.select(
                line.cast(pl.Binary).alias("_raw"),
                line.str.find(self.separator, literal=True).alias("_cut"),
                line.str.contains("\\", literal=True).alias(_ESCAPED),
            )
            .with_columns(after.alias("_rest"))
            .select(captured, rest, _ESCAPED)
            .select(
                pl.exclude("_rest"),
                pl.when(pl.col(self.marker).is_not_null())
                .then(rest.str.head(-1))
                .alias(self.group),
            )
        )


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
            c
            for f in self.fields
            if f.spec.kind.text
            for c in f.spec.kind.columns(f.group)
        ]
        self._plan: _Plan | None = None
        fast_groups = _NAMED_GROUP.findall(self.fast_regex)
        # Texts only the fallback fills (a request line's whole text).
        self._missing = [c for c in self._columns if c not in fast_groups]
        self._tail = _TailRoad.plan(self.parts, marker)
        groups = len(fast_groups)
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
        prepared = self._prepare(batch)
        plan = self.plan
        exprs = [
            expr.cast(EVENT_SCHEMA[name]).alias(name)
            for name, expr in plan.columns.items()
        ]
        exprs += [expr.alias(f"__extra{i}") for i, (_, expr) in enumerate(plan.extra)]
        typed = self._typed(prepared.lines, exprs, plan.failure_flag())
        failed = typed.failed
        events = self._events(batch, prepared, typed.frame)
        if failed:
            keep = pl.Series([True] * typed.frame.height)
            keep.scatter(sorted(failed), False)
            events = events.filter(keep)
        rejects = self._rejects(batch, prepared, failed)
        return ParseResult(events=events, rejects=rejects, skipped=prepared.skipped)

    def parse_fields(self, batch: LineBatch) -> pl.DataFrame:
        """Each field's own typed value, one column per token as written.

        One row per non-empty line of ``batch``; rows of lines that do not
        match are all null. A token written twice gets ``#2`` after its
        second column name. Used by conformance tests and ``logweir detect``.
        """
        prepared = self._prepare(batch)
        exprs: list[pl.Expr] = []
        seen: dict[str, int] = {}
        for fld in self.fields:
            seen[fld.token] = seen.get(fld.token, 0) + 1
            name = (
                fld.token if seen[fld.token] == 1 else f"{fld.token}#{seen[fld.token]}"
            )
            exprs.append(self.plan.outputs[fld.group][""].alias(name))
        typed = self._typed(prepared.lines, exprs, None)
        frame = typed.frame.select(e.meta.output_name() for e in exprs)
        if typed.failed:
            nulls = pl.Series([False] * frame.height).scatter(
                sorted(typed.failed), True
            )
            frame = frame.select(pl.when(~nulls).then(pl.all()).name.keep())
        return frame

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

    # -- the fast road -------------------------------------------------

    def _prepare(self, batch: LineBatch) -> _Lines:
        lines = batch.lines.fill_null("")
        if lines.len() and lines.str.ends_with("\r").any():
            lines = lines.str.strip_suffix("\r")
        empty = lines.str.len_bytes() == 0
        skipped = int(empty.sum())
        if not skipped:
            return _Lines(lines, None, 0)
        return _Lines(lines.filter(~empty), (~empty).arg_true(), skipped)

    def _chunks(
        self,
        lines: pl.Series,
        finish: Callable[[pl.LazyFrame], pl.LazyFrame],
        tail: bool = False,
    ) -> list[tuple[int, pl.DataFrame]]:
        """Match ``lines`` with the fast regex, one chunk per thread, and
        run ``finish`` on each chunk's captured texts in the same query.
        Returns each chunk's first line and its frame.

        With ``tail``, the format's :class:`_TailRoad` is taken where it has
        one; the lines it leaves are all null, as the regex leaves a line
        it refuses."""
        # One piece of memory, and Polars' in-memory engine: then each
        # chunk's frame is one piece too (the streaming engine cuts it into
        # morsels), so putting lines back (``_mend``) copies no column
        # whole. Measured a little faster as well.
        frame = lines.rechunk().alias("line").to_frame()
        # One chunk per thread: measured faster than several per thread,
        # even on a machine busy with other work.
        chunks = max(1, min(pl.thread_pool_size(), lines.len() // MIN_CHUNK_LINES))
        step = max(1, -(-lines.len() // chunks))
        missing = [pl.lit(None, pl.String).alias(c) for c in self._missing]
        plans = []
        starts = range(0, max(lines.len(), 1), step)
        for start in starts:
            chunk = frame.slice(start, step).lazy()
            if tail and self._tail is not None:
                texts = self._tail.texts(chunk)
            else:
                texts = chunk.select(
                    pl.col("line").str.extract_groups(self.fast_regex).struct.unnest(),
                    pl.col("line").str.contains("\\", literal=True).alias(_ESCAPED),
                )
            plans.append(finish(texts.with_columns(missing)))
        if len(plans) == 1:
            return [(0, plans[0].collect(engine="in-memory"))]
        frames = pl.collect_all(plans, engine="in-memory")
        return list(zip(starts, frames, strict=True))

    def _typed(
        self, lines: pl.Series, exprs: Sequence[pl.Expr], flag: pl.Expr | None
    ) -> _Typed:
        """``exprs`` (and the failure ``flag``) over the captured texts of
        every line, fused with the match; then the few lines the fast road
        refused or that hold escapes are done again apart and put back.

        The lines are put back chunk by chunk, before the chunks are joined:
        a scatter into a column of one chunk costs a third of one into a
        column of several (which is copied whole first)."""
        names = [e.meta.output_name() for e in exprs]
        keep = [*names, _ESCAPED, pl.col(self.marker).is_not_null().alias(_HIT)]
        if flag is not None:
            keep.append(pl.col(_FAILED))

        def finish(texts: pl.LazyFrame) -> pl.LazyFrame:
            typed = texts.with_columns(exprs)
            if flag is not None:
                typed = typed.with_columns(flag.alias(_FAILED))
            return typed.select(keep)

        frames: list[pl.DataFrame] = []
        failed: dict[int, str] = {}
        for start, frame in self._chunks(lines, finish, tail=True):
            part = lines.slice(start, frame.height)
            frame, failed_here = self._mend(frame, part, finish, flag is not None)
            frames.append(frame)
            failed.update((start + row, why) for row, why in failed_here.items())
        # Joined into one piece here, where only typed columns are copied:
        # measured 0.08 s per million lines cheaper than leaving it to
        # ``conform_events``, whose frame also holds ``extra``.
        frame = frames[0] if len(frames) == 1 else pl.concat(frames, rechunk=True)
        return _Typed(frame, failed)

    def _mend(
        self,
        frame: pl.DataFrame,
        lines: pl.Series,
        finish: Callable[[pl.LazyFrame], pl.LazyFrame],
        flagged: bool,
    ) -> tuple[pl.DataFrame, dict[int, str]]:
        """Undo escapes in, and redo apart, the lines of one chunk that
        need it; the reasons of its lines that fail (by index)."""
        hit = frame.get_column(_HIT)
        frame = self._unescape_hits(frame)
        failed: dict[int, str] = {}
        if not hit.all():
            frame, failed = self._redo(frame, lines, (~hit).arg_true(), finish)
        if flagged:
            flags = frame.get_column(_FAILED).fill_null(False)
            if flags.any():
                rows = [r for r in flags.arg_true().to_list() if r not in failed]
                reasons = self._conversion_reasons(lines, rows)
                failed.update(zip(rows, reasons, strict=True))
        return frame, failed

    def _redo(
        self,
        frame: pl.DataFrame,
        lines: pl.Series,
        rows: pl.Series,
        finish: Callable[[pl.LazyFrame], pl.LazyFrame],
    ) -> tuple[pl.DataFrame, dict[int, str]]:
        """Redo the lines at ``rows`` through :meth:`texts` and put their
        typed values back in place."""
        # Converted first and unescaped after, as the fast road does: a
        # conversion looks at the text as the server wrote it (``""`` is an
        # empty user, ``"\"`` is not).
        texts, failed_here = self.texts(lines.gather(rows), unescape=False)
        redone = self._unescape_hits(finish(texts.lazy()).collect())
        index = rows.to_list()
        failed = {index[i]: reason for i, reason in failed_here.items()}
        ok = pl.Series([i not in failed_here for i in range(len(index))])
        positions = rows.filter(ok)
        redone = redone.filter(ok)
        # The fast pass left these rows all null (and flags false): only
        # columns where the redone rows hold something need the copy.
        updates = [
            frame.get_column(name).scatter(positions, values)
            for name, values in redone.to_dict().items()
            if name not in (_HIT, _ESCAPED)
            and values.null_count() < values.len()
            and not (values.dtype == pl.Boolean and not values.any())
        ]
        frame = frame.with_columns(updates)
        logger.debug("redone apart: %d lines, %d rejected", len(index), len(failed))
        return frame, failed

    def _unescape_hits(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` (typed, with ``_hit`` and ``_escaped``) with escapes
        undone in its matched lines that hold a backslash."""
        if self._unescape is None or not self._text_columns:
            return frame
        escaped = frame.get_column(_ESCAPED) & frame.get_column(_HIT)
        if not escaped.any():
            return frame
        return self._unescape_typed(frame, escaped.arg_true())

    def _unescape_typed(self, frame: pl.DataFrame, rows: pl.Series) -> pl.DataFrame:
        """Undo escapes in the typed text of the lines at ``rows``.

        The same as undoing them in the captured text before converting:
        servers escape only quotes, backslashes and unprintable bytes, never
        what conversions look at (``-``, ``?``, spaces, digits), so every
        text conversion commutes with unescaping. Only the columns that
        hold a backslash are touched.
        """
        unescape = self._unescape
        assert unescape is not None
        updates = []
        for name, dtype in frame.schema.items():
            if dtype != pl.String() or name in (_ESCAPED,):
                continue
            values = frame.get_column(name).gather(rows)
            if not values.str.contains("\\", literal=True).any():
                continue
            fixed = [
                v if v is None or "\\" not in v else unescape(v)
                for v in values.to_list()
            ]
            column = frame.get_column(name)
            updates.append(column.scatter(rows, pl.Series(fixed, dtype=pl.String)))
        return frame.with_columns(updates) if updates else frame

    # -- the slow road -------------------------------------------------

    def texts(
        self, lines: pl.Series, unescape: bool = True
    ) -> tuple[pl.DataFrame, dict[int, str]]:
        """Captured texts of ``lines``, unescaped unless ``unescape`` is
        false, and the reason for each line nothing matched (by index). For
        a few lines at a time."""
        parts = self._chunks(lines, lambda texts: texts)
        table = pl.concat([frame for _, frame in parts])
        unmatched = table.get_column(self.marker).is_null()
        failed: dict[int, str] = {}
        if unmatched.any():
            table, failed = self._fallback(table, lines, unmatched.arg_true())
        return (self._unescape_table(table) if unescape else table), failed

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
            table = table.with_columns(table.get_column(_MARKER).scatter(index, ""))
        return table, failed

    def _unescape_table(self, table: pl.DataFrame) -> pl.DataFrame:
        if self._unescape is None or not self._text_columns:
            return table
        escaped = table.get_column(_ESCAPED)
        if not escaped.any():
            return table
        index = escaped.arg_true()
        unescape = self._unescape
        updates = []
        for column in self._text_columns:
            values = table.get_column(column).gather(index).to_list()
            fixed = [None if v is None else unescape(v) for v in values]
            updates.append(
                table.get_column(column).scatter(
                    index, pl.Series(fixed, dtype=pl.String)
                )
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
            fragments = [
                *self.lenient_fragments[: matched - 1],
                self.strict_fragments[matched - 1],
            ]
            ends = _match_ends(lines, members, fragments)
            for j, stop in zip(members, ends, strict=True):
                if stop is not None:
                    end[j] = max(end[j], stop)

    def _reason_at(self, index: int, line: str, position: int) -> str:
        part = self.parts[index]
        got = (
            "end of line"
            if position >= len(line)
            else _quote(F.snippet(line[position:]))
        )
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

    def _conversion_reasons(self, lines: pl.Series, rows: Sequence[int]) -> list[str]:
        """Why each of these matched lines has a value that did not convert."""
        if not rows:
            return []
        subset = lines.gather(pl.Series(list(rows), dtype=pl.UInt32))
        table, _ = self.texts(subset)
        return [
            self._conversion_reason(line, values)
            for line, values in zip(
                subset.to_list(), table.iter_rows(named=True), strict=True
            )
        ]

    def _conversion_reason(self, line: str, values: Mapping[str, Any]) -> str:
        for check in self.plan.checks:
            fld = check.field
            value = values.get(fld.group)
            if value is None or value == "-":
                continue
            probe = pl.DataFrame({fld.group: [value]}, schema={fld.group: pl.String})
            if probe.select(check.probe).item():
                where = self._position_of(line, fld)
                return (
                    f"{fld.spec.key}: invalid {fld.spec.kind.name} at char {where}, "
                    f"got {_quote(value)}"
                )
        for members, _ in self.plan.time_checks:
            present = [values[f.group] for f in members if values.get(f.group)]
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
        self, batch: LineBatch, prepared: _Lines, typed: pl.DataFrame
    ) -> pl.DataFrame:
        plan = self.plan
        offsets = batch.offsets
        if prepared.rows is not None:
            offsets = offsets.gather(prepared.rows)
        keys = [key for key, _ in plan.extra]
        if keys:
            values = [typed.get_column(f"__extra{i}") for i in range(len(keys))]
            extra = F.build_extra(keys, values)
        else:
            extra = pl.repeat([], typed.height, dtype=EXTRA_TYPE, eager=True)
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
        self, batch: LineBatch, prepared: _Lines, failed: Mapping[int, str]
    ) -> pl.DataFrame:
        if not failed:
            return empty_rejects()
        rows = sorted(failed)
        return F.build_rejects(
            batch, prepared.batch_rows(rows), [failed[r] for r in rows]
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
        for hit, stop in zip(
            frame["hit"].to_list(), frame["end"].to_list(), strict=True
        )
    ]
