"""Which field of a structured line fills which canonical column, and how.

JSON lines, logfmt and grok captures name their fields freely; this module
holds the one table that says which names mean which column of the schema
(:data:`DEFAULT_KEYS`), and the vectorized steps that every such format
shares:

0. :func:`merge_parts` stacks the fields that a parser's roads (a fast one
   for lines of a known shape, a general one for the rest) found, one
   column per key, in the order the batch first shows the keys.
1. :func:`resolve` takes the fields — one row per line, one column per
   key — and picks, for each line and each column, the first key of the
   table that the line has. Keys match without regard to case; a dotted key
   (``http.request.method``) matches a nested object path or a literal key
   with dots in it. Keys that fill no column go to ``extra``.
2. :func:`convert` turns the chosen text into typed columns (status to
   uint16, timestamps to UTC …) and names the first field that fails in a
   ``_reason`` column, so the caller can reject that line. Request lines
   and URLs are split once per distinct value (:func:`by_distinct`).

:func:`resolve_and_convert` runs 1 and 2 on chunks of a big batch in
parallel threads.

Some keys fill more than one column: ``request`` holds a whole request line
(``GET /a?b=1 HTTP/1.1``) and is split into method, path, query and
protocol; ``url`` is split into path and query; ``http_version`` (``1.1``)
becomes the protocol ``HTTP/1.1``. A column given directly wins over one
split out of such a field.

Durations take the unit the key implies (see :data:`DEFAULT_KEYS`), unless
the value carries its own (``"12ms"``, ``"1.5s"``, ``"1m30s"``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa

from logweir.errors import ConfigError
from logweir.formats.flextime import TimeContext, parse_flexible, parse_with_format
from logweir.schema import EXTRA_TYPE, arrow_array

#: Column -> keys that fill it, first match wins. Durations carry the unit
#: their key implies as a factor to milliseconds, after a ``:``.
DEFAULT_KEYS: dict[str, tuple[str, ...]] = {
    "ts": (
        "@timestamp",
        "timestamp",
        "time",
        "ts",
        "date",
        "datetime",
        "@t",
        "time_iso8601",
        "time_local",
        "msec",
        "timemillis",
        "__realtime_timestamp",
        "created_at",
        "started_at",
    ),
    "client_ip": (
        "remote_addr",
        "client_ip",
        "clientip",
        "remote_ip",
        "ip",
        "client_addr",
        "client.ip",
        "client.address",
        "source.ip",
        "source.address",
    ),
    "method": (
        "method",
        "request_method",
        "verb",
        "http_method",
        "http.request.method",
        "request.method",
    ),
    "path": ("path", "request_path", "url.path"),
    "query": ("query", "query_string", "args", "url.query"),
    "url": (
        "url",
        "uri",
        "request_uri",
        "url.original",
        "request.uri",
        "request.url",
    ),
    "request": ("request", "request_line"),
    "protocol": ("protocol", "server_protocol", "http_protocol"),
    "http_version": ("http_version", "httpversion", "http.version"),
    "status": (
        "status",
        "status_code",
        "statuscode",
        "response",
        "http_status",
        "response_status",
        "http.response.status_code",
        "response.status",
        "response.status_code",
    ),
    "bytes": (
        "bytes",
        "body_bytes_sent",
        "size",
        "bytes_sent",
        "response_size",
        "response_bytes",
        "http.response.body.bytes",
        "http.response.bytes",
        "response.size",
        "response.bytes",
    ),
    "duration_ms": (
        "duration_ms:1",
        "latency_ms:1",
        "elapsed_ms:1",
        "response_time_ms:1",
        "request_time:1000",
        "duration:1000",
        "duration_s:1000",
        "latency:1",
        "response_time:1",
        "elapsed:1",
        "duration_us:0.001",
        "duration_ns:0.000001",
        "event.duration:0.000001",
    ),
    "level": (
        "level",
        "severity",
        "lvl",
        "loglevel",
        "log_level",
        "levelname",
        "@l",
        "log.level",
    ),
    "message": ("msg", "message", "@m", "log"),
    "service": (
        "service",
        "app",
        "application",
        "service_name",
        "logger",
        "logger_name",
        "component",
        "program",
        "syslog_identifier",
        "service.name",
        "log.logger",
    ),
    "host": (
        "host",
        "hostname",
        "server_name",
        "_hostname",
        "logsource",
        "host.name",
        "host.hostname",
    ),
    "user_agent": (
        "user_agent",
        "http_user_agent",
        "agent",
        "useragent",
        "user_agent.original",
    ),
    "referer": (
        "referer",
        "referrer",
        "http_referer",
        "http_referrer",
        "http.request.referrer",
    ),
}

#: Names a mapping may target: the canonical columns a line can fill, plus
#: the fields that are split into several columns.
TARGETS: tuple[str, ...] = tuple(DEFAULT_KEYS)

#: Columns where ``-`` means "absent", as web servers write it.
_DASH_IS_NULL = (
    "client_ip",
    "method",
    "path",
    "query",
    "protocol",
    "referer",
    "user_agent",
    "host",
    "status",
    "bytes",
    "duration_ms",
    "request",
    "url",
    "http_version",
)

_STRING_COLUMNS = (
    "client_ip",
    "method",
    "path",
    "query",
    "protocol",
    "referer",
    "user_agent",
    "host",
    "level",
    "message",
    "service",
)

#: Longest field value quoted in a reject reason.
_QUOTE_CHARS = 40


@dataclass(frozen=True)
class KeyTable:
    """A compiled key table: which lower-cased key fills which target.

    Build it with :meth:`build`; it is cheap to keep in a parser and
    picklable.
    """

    rows: tuple[tuple[str, str, int, float], ...]  # key, target, priority, unit
    explicit: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls,
        overrides: Mapping[str, str] | None = None,
        defaults: Mapping[str, Iterable[str]] | None = None,
    ) -> KeyTable:
        """Defaults, with each column named in ``overrides`` mapped only to
        the key given there (a dotted path for nested objects).

        Raises :class:`ConfigError` for a column that is not a target.
        """
        overrides = dict(overrides or {})
        for column in overrides:
            if column not in TARGETS:
                names = ", ".join(TARGETS)
                raise ConfigError(
                    f"cannot map a field to {column!r}: the targets are {names}"
                )
        rows: list[tuple[str, str, int, float]] = []
        for target, keys in (defaults or DEFAULT_KEYS).items():
            chosen = [overrides[target]] if target in overrides else list(keys)
            for priority, spec in enumerate(chosen):
                key, unit = _split_unit(spec, target)
                rows.append((key.lower(), target, priority, unit))
        return cls(tuple(rows), frozenset(overrides))

    @property
    def guessed(self) -> frozenset[str]:
        """Targets filled from the default table rather than a user mapping."""
        return frozenset(target for _, target, _, _ in self.rows) - self.explicit

    @property
    def prefixes(self) -> frozenset[str]:
        """Every dotted prefix of a nested key: the objects worth opening."""
        found: set[str] = set()
        for key, *_ in self.rows:
            parts = key.split(".")
            for end in range(1, len(parts)):
                found.add(".".join(parts[:end]))
        return frozenset(found)

    def by_target(self) -> dict[str, list[tuple[str, float]]]:
        """Target -> its (lower-cased key, unit) pairs, first choice first."""
        found: dict[str, list[tuple[str, float]]] = {}
        for key, target, _priority, unit in self.rows:
            found.setdefault(target, []).append((key, unit))
        return found


def _split_unit(spec: str, target: str) -> tuple[str, float]:
    if target != "duration_ms":
        return spec, 1.0
    key, _, unit = spec.rpartition(":")
    if not key:
        return spec, 1.0
    try:
        return key, float(unit)
    except ValueError:
        return spec, 1.0


# --- 0. fields from several roads ----------------------------------------------


@dataclass
class FieldsPart:
    """The fields one road of a parser found for some lines of a batch.

    ``rows`` are the batch rows of ``fields``' rows; ``first_seen`` says
    where each key was first seen, as (batch row, position in that line);
    ``structured`` and ``nested`` are as :func:`resolve` takes them.
    """

    rows: pl.Series
    fields: pl.DataFrame
    first_seen: dict[str, tuple[int, int]]
    structured: dict[str, pl.Series] = field(default_factory=dict)
    nested: tuple[str, ...] = ()


@dataclass(frozen=True)
class MergedFields:
    """:class:`FieldsPart` s stacked: what :func:`resolve` takes."""

    rows: pl.Series
    fields: pl.DataFrame
    structured: dict[str, pl.Series]
    nested: tuple[str, ...]


def merge_parts(parts: Sequence[FieldsPart]) -> MergedFields:
    """Stack the parts' rows, their columns in the order the batch first
    shows each key (the line where it first appears, then its place in
    that line), nested paths last. Rows stay in part order."""
    first_seen: dict[str, tuple[int, int]] = {}
    nested: list[str] = []
    for part in parts:
        nested.extend(part.nested)
        for key, seen in part.first_seen.items():
            if key not in first_seen or seen < first_seen[key]:
                first_seen[key] = seen
    order = sorted(first_seen, key=first_seen.__getitem__)
    order += [name for name in dict.fromkeys(nested) if name not in first_seen]
    if len(parts) == 1:
        fields, rows = parts[0].fields, parts[0].rows
    else:
        filled = [part.fields for part in parts if part.fields.width]
        fields = pl.concat(filled, how="diagonal_relaxed") if filled else pl.DataFrame()
        rows = pl.concat([part.rows for part in parts])
    if fields.width:
        fields = fields.select(order)
    return MergedFields(rows, fields, _stacked_masks(parts), tuple(nested))


def _stacked_masks(parts: Sequence[FieldsPart]) -> dict[str, pl.Series]:
    """Each part's object masks over the stacked rows (false elsewhere)."""
    height = sum(part.rows.len() for part in parts)
    masks: dict[str, pl.Series] = {}
    start = 0
    for part in parts:
        for name, mask in part.structured.items():
            full = masks.get(name, pl.repeat(False, height, eager=True))
            index = pl.int_range(start, start + mask.len(), eager=True)
            masks[name] = full.scatter(index, mask)
        start += part.rows.len()
    return masks


# --- 1. resolve ------------------------------------------------------------------


def resolve(
    rows: pl.Series,
    fields: pl.DataFrame,
    table: KeyTable,
    *,
    structured: Mapping[str, pl.Series] | None = None,
    nested: Collection[str] = (),
) -> pl.DataFrame:
    """Pick, for every line and target, the first field of the table it has.

    ``fields`` has one string column per field name found in the batch (null
    where a line lacks it), one row per entry of ``rows``. ``structured``
    maps a field to a boolean column, true where its value is a JSON object
    or array: such values fill no column but stay in ``extra``. Columns named
    in ``nested`` are paths inside objects, matched but never put in
    ``extra`` (their object is there already).

    The result has ``row``, a string column per target found, with
    ``<target>__key`` naming the field used, ``duration_ms__unit`` and
    ``extra``: the other fields, in the order of ``fields``' columns.
    """
    structured = structured or {}
    scalars = fields.with_columns(
        [
            pl.when(pl.lit(mask)).then(None).otherwise(pl.col(name)).alias(name)
            for name, mask in structured.items()
        ]
    )
    by_lower: dict[str, list[str]] = {}
    for name in fields.columns:
        by_lower.setdefault(name.lower(), []).append(name)
    picks: list[pl.Expr] = []
    candidates_of: dict[str, list[str]] = {}
    for target, keys in table.by_target().items():
        chosen = [(name, unit) for key, unit in keys for name in by_lower.get(key, [])]
        if chosen:
            candidates_of[target] = [name for name, _ in chosen]
            picks.extend(
                _pick(
                    target,
                    chosen,
                    maybe_object=any(name in structured for name, _ in chosen),
                )
            )
    picked = scalars.select(picks) if picks else pl.DataFrame()
    extra = _extra(fields, picked, nested, candidates_of, structured)
    return pl.DataFrame({"row": rows.cast(pl.UInt32)}).hstack(
        [*picked.get_columns(), extra]
    )


def _pick(
    target: str, chosen: list[tuple[str, float]], *, maybe_object: bool
) -> list[pl.Expr]:
    """The value, key name (and unit) of the first of ``chosen`` a row has.

    ``maybe_object``: whether some candidate holds an object somewhere (then
    nulled in the values, so the key must follow the value row by row).
    """

    def first(values: list[pl.Expr]) -> pl.Expr:
        return pl.coalesce(
            [
                pl.when(pl.col(name).is_not_null()).then(value)
                for (name, _), value in zip(chosen, values, strict=True)
            ]
        )

    if len(chosen) == 1 and not maybe_object:
        # One candidate: its name (and unit) is a constant, cheaper than a
        # column, and only read where its value is not null.
        ((name, unit),) = chosen
        exprs = [pl.col(name).alias(target), pl.lit(name).alias(f"{target}__key")]
        if target == "duration_ms":
            exprs.append(pl.lit(unit).alias("duration_ms__unit"))
        return exprs
    exprs = [
        pl.coalesce([pl.col(name) for name, _ in chosen]).alias(target),
        first([pl.lit(name) for name, _ in chosen]).alias(f"{target}__key"),
    ]
    if target == "duration_ms":
        exprs.append(
            first([pl.lit(unit) for _, unit in chosen]).alias("duration_ms__unit")
        )
    return exprs


def _extra(
    fields: pl.DataFrame,
    picked: pl.DataFrame,
    nested: Collection[str],
    candidates_of: dict[str, list[str]],
    structured: Mapping[str, pl.Series],
) -> pl.Series:
    """The fields that filled no column, as one ``extra`` list per row."""
    target_of = {
        name: target for target, names in candidates_of.items() for name in names
    }
    keys: list[str] = []
    values: list[pl.Series] = []
    for name in fields.columns:
        if name in nested:
            continue
        value = fields.get_column(name)
        target = target_of.get(name)
        if target is not None:
            # A field that is its column's only candidate and never an
            # object is always the one used: no need to test each row.
            if candidates_of[target] == [name] and name not in structured:
                continue
            used = picked.get_column(f"{target}__key").eq_missing(name)
            value = value.scatter(used.arg_true(), None)
        keys.append(name)
        values.append(value)
    return build_extra(keys, values, fields.height)


def build_extra(keys: list[str], values: list[pl.Series], height: int) -> pl.Series:
    """``extra`` lists from one value column per key, nulls left out.

    Built directly as Arrow arrays: Polars' ``concat_list`` of structs costs
    about 2 µs per cell here, which made it the slowest step of a parse.
    """
    if not keys or height == 0:
        return empty_extra(height)
    if not any(column.null_count() for column in values):
        return _full_extra(keys, values, height)
    valid = np.stack([column.is_not_null().to_numpy() for column in values], axis=1)
    offsets = np.zeros(height + 1, dtype=np.int64)
    np.cumsum(valid.sum(axis=1), out=offsets[1:])
    before = np.cumsum(valid, axis=1) - valid
    positions = [
        offsets[:-1][valid[:, index]] + before[valid[:, index], index]
        for index in range(len(keys))
    ]
    order = np.empty(int(offsets[-1]), dtype=np.int64)
    order[np.concatenate(positions)] = np.arange(int(offsets[-1]))
    flat_values = pa.concat_arrays(
        [
            column.rename("value").drop_nulls().to_arrow().cast(pa.large_string())
            for column in values
        ]
    ).take(arrow_array(order))
    key_index = np.concatenate(
        [
            np.full(len(where), index, dtype=np.int32)
            for index, where in enumerate(positions)
        ]
    )
    flat_keys = pa.array(keys, type=pa.large_string()).take(
        arrow_array(key_index[order])
    )
    items = pa.StructArray.from_arrays([flat_keys, flat_values], names=["key", "value"])
    lists = pa.LargeListArray.from_arrays(arrow_array(offsets), items)
    return pl.Series("extra", lists).cast(EXTRA_TYPE)


def _full_extra(keys: list[str], values: list[pl.Series], height: int) -> pl.Series:
    """:func:`build_extra` when every row has every key (a log of one
    shape): Polars builds fixed-size arrays of structs cheaply."""
    frame = pl.DataFrame(
        [
            column.cast(pl.String).alias(f"␟{index}")
            for index, column in enumerate(values)
        ]
    )
    items = [
        pl.struct(
            pl.lit(key, pl.String).alias("key"), pl.col(f"␟{index}").alias("value")
        )
        for index, key in enumerate(keys)
    ]
    if len(items) == 1:
        single = frame.select(items[0]).to_series()
        return single.reshape((height, 1)).cast(EXTRA_TYPE).alias("extra")
    return (
        frame.select(pl.concat_arr(items)).to_series().cast(EXTRA_TYPE).alias("extra")
    )


def empty_extra(height: int) -> pl.Series:
    """``height`` empty ``extra`` lists (built in Arrow: a Python list of
    empty lists costs a second per 50,000 rows)."""
    items = pa.StructArray.from_arrays(
        [pa.array([], pa.large_string()), pa.array([], pa.large_string())],
        names=["key", "value"],
    )
    offsets = arrow_array(np.zeros(height + 1, dtype=np.int64))
    return pl.Series("extra", pa.LargeListArray.from_arrays(offsets, items)).cast(
        EXTRA_TYPE
    )


def extra_from_entries(entries: pl.DataFrame, height: int) -> pl.Series:
    """``extra`` lists from long ``entries`` (``row``, ``key``, ``value``).

    ``row`` indexes the result (0 to ``height - 1``); entries keep their
    order within a row, and null values are left out.
    """
    entries = entries.filter(pl.col("value").is_not_null())
    rows = entries.get_column("row").cast(pl.Int64).to_numpy()
    order = np.argsort(rows, kind="stable")
    offsets = np.zeros(height + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=height), out=offsets[1:])
    take = arrow_array(order)
    items = pa.StructArray.from_arrays(
        [
            entries.get_column("key").to_arrow().cast(pa.large_string()).take(take),
            entries.get_column("value").to_arrow().cast(pa.large_string()).take(take),
        ],
        names=["key", "value"],
    )
    lists = pa.LargeListArray.from_arrays(arrow_array(offsets), items)
    return pl.Series("extra", lists).cast(EXTRA_TYPE)


# --- 1 and 2 together, in parallel -------------------------------------------------

#: Rows per chunk below which :func:`resolve_and_convert` runs in one piece.
MIN_CHUNK_ROWS = 50_000


def resolve_and_convert(
    rows: pl.Series,
    fields: pl.DataFrame,
    table: KeyTable,
    ctx: TimeContext,
    *,
    structured: Mapping[str, pl.Series] | None = None,
    nested: Collection[str] = (),
) -> pl.DataFrame:
    """:func:`resolve`, then :func:`convert` with ``table``'s guesses.

    Both work row by row, on many columns, mostly one Polars call per
    column: a big batch is cut into one chunk of rows per thread of Polars'
    pool, each done in its own Python thread (Polars lets go of the GIL
    while it computes), and the results put back in order.
    """
    height = fields.height

    def work(start: int, length: int) -> pl.DataFrame:
        picked = resolve(
            rows.slice(start, length),
            fields.slice(start, length),
            table,
            structured={
                name: mask.slice(start, length)
                for name, mask in (structured or {}).items()
            },
            nested=nested,
        )
        return convert(picked, ctx, guessed=table.guessed)

    chunks = max(1, min(pl.thread_pool_size(), height // MIN_CHUNK_ROWS))
    if chunks == 1:
        return work(0, height)
    step = -(-height // chunks)
    with ThreadPoolExecutor(max_workers=chunks) as pool:
        parts = list(pool.map(work, range(0, height, step), [step] * chunks))
    return pl.concat(parts, how="diagonal_relaxed")


# --- 2. convert ------------------------------------------------------------------

_REQUEST_LINE = (
    r"^(?P<method>[A-Za-z][A-Za-z0-9_-]*)\s+(?P<target>\S+)"
    r"(?:\s+(?P<protocol>[A-Za-z][A-Za-z0-9_-]*/[0-9][0-9.]*))?\s*$"
)
_ABSOLUTE_URL = r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*"
_BARE_TARGET = r"^(?:/|\*$|[A-Za-z][A-Za-z0-9+.-]*://)\S*$"
_NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
_DURATION_UNIT = {
    "ns": 1e-6,
    "us": 1e-3,
    "µs": 1e-3,
    "μs": 1e-3,
    "ms": 1.0,
    "msec": 1.0,
    "millis": 1.0,
    "s": 1000.0,
    "sec": 1000.0,
    "secs": 1000.0,
    "seconds": 1000.0,
    "m": 60_000.0,
    "min": 60_000.0,
    "h": 3_600_000.0,
}
_DURATION_PART = (
    r"(\d+(?:\.\d+)?|\.\d+)\s*(ns|us|µs|μs|ms|msec|millis|seconds|secs|sec|s|min|m|h)"
)


def _quoted(value: pl.Expr) -> pl.Expr:
    short = (
        pl.when(value.str.len_chars() > _QUOTE_CHARS)
        .then(value.str.slice(0, _QUOTE_CHARS) + pl.lit("…"))
        .otherwise(value)
    )
    return pl.lit("'") + short + pl.lit("'")


def by_distinct(
    values: pl.Series, derive: Callable[[pl.Series], pl.DataFrame]
) -> pl.DataFrame:
    """``derive`` of ``values``, computed once per distinct value.

    Access logs repeat their requests, URLs and timestamps many times in a
    batch; a regex over the few thousand distinct values, spread back by
    index, costs a fifth of one over every row. When most values are
    distinct, ``derive`` simply runs on all of them. ``derive`` must return
    one row per value it is given (null in, null out).
    """
    distinct = values.drop_nulls().unique()
    if distinct.len() == 0 or distinct.len() * 2 > values.len():
        return derive(values)
    derived = derive(distinct)
    codes = values.cast(pl.Enum(distinct)).to_physical()
    return pl.DataFrame([column.gather(codes) for column in derived.get_columns()])


def convert(
    raw: pl.DataFrame,
    ctx: TimeContext,
    *,
    ts_format: str | None = None,
    guessed: Collection[str] = (),
) -> pl.DataFrame:
    """Typed canonical columns from the text in ``raw``.

    ``raw`` has ``row``, any of the targets as strings (with optional
    ``<target>__key`` and ``duration_ms__unit``) and optionally ``extra``.
    The result has ``row``, every canonical column this module fills,
    ``extra`` and ``_reason``: null when the line is good, else the first
    field that failed, as ``<column>: field '<key>' has '<value>', <why>``.

    Columns named in ``guessed`` were filled by the default key table: a
    value that does not fit (``status=Pending`` in a Kubernetes log) means
    the guess was wrong, not the line, so the column stays null and the
    field goes to ``extra`` under its own key instead of a reject.
    """
    frame = _unquote_headers(raw)
    # Typed columns and the request find their dashes later, on the few
    # values that do not convert or on distinct values: cheaper.
    dashes = [
        pl.when(_is_dash(pl.col(name))).then(None).otherwise(pl.col(name)).alias(name)
        for name in _DASH_IS_NULL
        if name in frame.columns and name not in _DASH_LATER
    ]
    frame = frame.with_columns(dashes)
    if "extra" not in frame.columns:
        frame = frame.with_columns(empty_extra(frame.height))
    frame = _split_http(frame)
    reasons: list[pl.Series] = []
    typed: list[pl.Series] = []
    for name, reader, why in _TYPED:
        if name not in frame.columns:
            continue
        value = reader(frame, ctx, ts_format)
        typed.append(value.alias(name))
        failed = frame.get_column(name).is_not_null() & value.is_null()
        if not failed.any():
            continue
        if name in _DASH_IS_NULL:
            frame, failed = _null_dashes(frame, name, failed)
            if not failed.any():
                continue
        if name in guessed:
            frame = _move_to_extra(frame, name, failed.arg_true())
        else:
            reasons.append(_reasons(frame, name, failed, why))
    frame = frame.with_columns(typed)
    reason = (
        pl.select(pl.coalesce(reasons)).to_series()
        if reasons
        else pl.repeat(None, frame.height, dtype=pl.String, eager=True)
    )
    frame = frame.with_columns(reason.alias("_reason"))
    keep = ["row", "ts", *_STRING_COLUMNS, "status", "bytes", "duration_ms"]
    return frame.select(
        [name for name in keep if name in frame.columns] + ["extra", "_reason"]
    )


def _is_dash(text: pl.Expr) -> pl.Expr:
    # The same as text.str.strip_chars().is_in(["-", ""]) (both read
    # whitespace as Unicode's White_Space), in half the time.
    return text.str.contains(r"^\s*-?\s*$")


#: Columns of :data:`_DASH_IS_NULL` whose dashes :func:`convert` looks for
#: only where it needs to.
_DASH_LATER = ("status", "bytes", "duration_ms", "request")


def _null_dashes(
    frame: pl.DataFrame, name: str, failed: pl.Series
) -> tuple[pl.DataFrame, pl.Series]:
    """Null the failed values of ``name`` that are a dash: no failure."""
    index = failed.arg_true()
    text = frame.get_column(name)
    dash = text.gather(index).to_frame().select(_is_dash(pl.col(name))).to_series()
    if not dash.any():
        return frame, failed
    where = index.filter(dash)
    return frame.with_columns(text.scatter(where, None)), failed.scatter(where, False)


def _unquote_headers(frame: pl.DataFrame) -> pl.DataFrame:
    """Referer and user agent without the quotes grok's QS captures keep
    (``"Mozilla/5.0 …"`` is the header); looked at only where one starts
    with a quote."""
    for name in ("referer", "user_agent"):
        if name not in frame.columns:
            continue
        values = frame.get_column(name)
        quoted = values.str.starts_with('"').fill_null(False)
        if not quoted.any():
            continue
        index = quoted.arg_true()
        stripped = (
            values.gather(index)
            .to_frame("value")
            .select(
                pl.when(pl.col("value").str.contains(r'^"(?:[^"\\]|\\.)*"$'))
                .then(pl.col("value").str.slice(1, pl.col("value").str.len_chars() - 2))
                .otherwise(pl.col("value"))
            )
            .to_series()
        )
        frame = frame.with_columns(values.scatter(index, stripped))
    return frame


def _reasons(frame: pl.DataFrame, name: str, failed: pl.Series, why: str) -> pl.Series:
    """The reject reason of each failed row (null elsewhere)."""
    key = pl.col(f"{name}__key") if f"{name}__key" in frame.columns else pl.lit(name)
    text = pl.lit(f"{name}: field '") + key + pl.lit("' has ") + _quoted(pl.col(name))
    return frame.select(
        pl.when(pl.lit(failed)).then(text + pl.lit(f", {why}")).alias(name)
    ).to_series()


def _status(frame: pl.DataFrame, ctx: TimeContext, ts_format: str | None) -> pl.Series:
    number = _integral(frame.get_column("status"))
    in_range = pl.when(number.is_between(0, 999)).then(number)
    return pl.select(in_range).to_series().cast(pl.UInt16)


def _bytes(frame: pl.DataFrame, ctx: TimeContext, ts_format: str | None) -> pl.Series:
    number = _integral(frame.get_column("bytes"))
    return pl.select(pl.when(number >= 0).then(number)).to_series().cast(pl.UInt64)


def _integral(text: pl.Series) -> pl.Series:
    """Whole numbers, also when written as ``200.0``, ``2e2`` or with spaces
    around; else null. Only values that are no plain integer are looked at
    twice."""
    exact = text.cast(pl.Int64, strict=False)
    missed = (exact.is_null() & text.is_not_null()).fill_null(False)
    if not missed.any():
        return exact
    index = missed.arg_true()
    stripped = text.gather(index).str.strip_chars()
    real = stripped.cast(pl.Float64, strict=False)
    whole = pl.select(
        pl.coalesce(
            stripped.cast(pl.Int64, strict=False),
            pl.when(real.is_finite() & (real == real.round(0)) & (real.abs() < 2.0**62))
            .then(real)
            .cast(pl.Int64),
        )
    ).to_series()
    return exact.scatter(index, whole)


def _duration(
    frame: pl.DataFrame, ctx: TimeContext, ts_format: str | None
) -> pl.Series:
    raw = frame.get_column("duration_ms")
    number = raw.cast(pl.Float64, strict=False)
    missed = (number.is_null() & raw.is_not_null()).fill_null(False)
    if missed.any():
        index = missed.arg_true()
        stripped = raw.gather(index).str.strip_chars()
        number = number.scatter(index, stripped.cast(pl.Float64, strict=False))
    if "duration_ms__unit" in frame.columns:
        number = number * frame.get_column("duration_ms__unit").fill_null(1.0)
    # A value with its own unit (12ms) is read in that unit, not the key's.
    unparsed = (number.is_null() & raw.is_not_null()).fill_null(False)
    if unparsed.any():
        index = unparsed.arg_true()
        texts = raw.gather(index).str.strip_chars()
        units = by_distinct(texts, lambda some: _with_units(some).to_frame())
        number = number.scatter(index, units.to_series())
    return number.cast(pl.Float64)


def _with_units(text: pl.Series) -> pl.Series:
    """``12ms``, ``1.5 s``, ``1m30s`` … to milliseconds; anything else null."""
    frame = pl.DataFrame({"text": text})
    parts = pl.col("text").str.extract_all(_DURATION_PART)
    whole = parts.list.join("") == pl.col("text").str.replace_all(r"\s+", "")
    summed = parts.list.eval(
        pl.element().str.extract(r"^([\d.]+)", 1).cast(pl.Float64, strict=False)
        * pl.element()
        .str.extract(r"([^\d.\s]+)$", 1)
        .replace_strict(_DURATION_UNIT, default=None, return_dtype=pl.Float64)
    ).list.sum()
    return frame.select(
        pl.when((parts.list.len() > 0) & whole).then(summed).cast(pl.Float64)
    ).to_series()


def _timestamp(
    frame: pl.DataFrame, ctx: TimeContext, ts_format: str | None
) -> pl.Series:
    values = frame.get_column("ts")
    if ts_format:
        return parse_with_format(values, ts_format, ctx)
    return parse_flexible(values, ctx)


_TYPED = (
    ("ts", _timestamp, "not a timestamp"),
    ("status", _status, "not an HTTP status code"),
    ("bytes", _bytes, "not a byte count"),
    ("duration_ms", _duration, "not a duration"),
)


def _split_http(frame: pl.DataFrame) -> pl.DataFrame:
    """Method, path, query and protocol from request lines, URLs and paths.

    Each request line and URL is split once per distinct value (see
    :func:`by_distinct`); when the request is the only source of a target
    (no path or URL field), its path and query are split in the same go.
    """
    columns = set(frame.columns)
    nothing = pl.lit(None, pl.String)

    def given(name: str) -> pl.Expr:
        return pl.col(name) if name in columns else nothing

    request: dict[str, pl.Expr] = {}
    only_request = not columns & {"path", "url"}
    if "request" in columns:
        parts = by_distinct(
            frame.get_column("request"),
            _request_and_target_parts if only_request else _request_parts,
        )
        frame = frame.with_columns(
            pl.when(pl.lit(parts.get_column("dash")))
            .then(None)
            .otherwise(pl.col("request"))
            .alias("request"),
            *[parts.get_column(name).alias(f"␟{name}") for name in parts.columns],
        )
        frame = _keep_odd_requests(frame)
        request = {name: pl.col(f"␟{name}") for name in parts.columns}
    if request and only_request:
        path, query = request["path"], request["query"]
    else:
        sources = [given("path"), given("url")]
        if request:
            sources += [request["target"], request["bare"]]
        target = (
            frame.select(pl.coalesce(sources)).to_series()
            if columns & {"path", "url", "request"}
            else pl.repeat(None, frame.height, dtype=pl.String, eager=True)
        )
        split = by_distinct(target, _target_parts)
        path, query = (
            pl.lit(split.get_column("path")),
            pl.lit(split.get_column("query")),
        )
    version = given("http_version")
    return frame.with_columns(
        pl.coalesce(given("method"), request.get("method", nothing)).alias("method"),
        path.alias("path"),
        pl.coalesce(given("query"), query).alias("query"),
        pl.coalesce(
            given("protocol"),
            pl.when(version.str.contains(r"^\d+(\.\d+)?$"))
            .then(pl.lit("HTTP/") + version)
            .otherwise(version),
            request.get("protocol", nothing),
        ).alias("protocol"),
    )


def _request_parts(requests: pl.Series) -> pl.DataFrame:
    """Method, target and protocol of request lines; ``bare`` holds the
    request when it is a bare target (``/a?b``) instead, ``dash`` whether
    it is ``-`` or empty (no request: nothing is split)."""
    request = pl.col("request")
    # A dash is neither a request line nor a bare target: no need to null
    # it before matching.
    return (
        requests.alias("request")
        .to_frame()
        .select(
            request.str.extract_groups(_REQUEST_LINE).struct.unnest(),
            pl.when(request.str.contains(_BARE_TARGET)).then(request).alias("bare"),
            _is_dash(request).fill_null(False).alias("dash"),
        )
    )


def _request_and_target_parts(requests: pl.Series) -> pl.DataFrame:
    """:func:`_request_parts` and the path and query of its target."""
    parts = _request_parts(requests)
    target = parts.select(pl.coalesce("target", "bare")).to_series()
    return pl.concat([parts, _target_parts(target)], how="horizontal")


def _target_parts(targets: pl.Series) -> pl.DataFrame:
    """Path and query of request targets and URLs (scheme and host dropped)."""
    target = pl.col("target").str.replace(_ABSOLUTE_URL, "")
    split = target.str.splitn("?", 2)
    before = split.struct.field("field_0")
    return (
        targets.alias("target")
        .to_frame()
        .select(
            pl.when(target.is_not_null() & (before == ""))
            .then(pl.lit("/"))
            .otherwise(before)
            .alias("path"),
            split.struct.field("field_1").alias("query"),
        )
    )


def _keep_odd_requests(frame: pl.DataFrame) -> pl.DataFrame:
    """Keep a request that is no request line (TLS noise…) in ``extra``.

    Such a line is still a good event; its request just cannot be split.
    """
    odd = (
        pl.col("request").is_not_null()
        & pl.col("␟method").is_null()
        & pl.col("␟bare").is_null()
    )
    index = frame.select(odd.fill_null(False)).to_series().arg_true()
    return _move_to_extra(frame, "request", index) if index.len() else frame


def _move_to_extra(frame: pl.DataFrame, target: str, index: pl.Series) -> pl.DataFrame:
    """Append the ``target`` field of rows ``index`` to their ``extra``."""
    key_column = f"{target}__key"
    keys = (
        frame.get_column(key_column).gather(index).fill_null(target)
        if key_column in frame.columns
        else pl.Series([target] * index.len(), dtype=pl.String)
    )
    added = pl.DataFrame(
        {
            "row": index.cast(pl.UInt32),
            "key": keys,
            "value": frame.get_column(target).gather(index),
        }
    )
    existing = (
        frame.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("row"), "extra")
        .explode("extra")
        .filter(pl.col("extra").is_not_null())
        .unnest("extra")
    )
    entries = pl.concat([existing, added], how="vertical_relaxed")
    return frame.with_columns(extra_from_entries(entries, frame.height))


__all__ = [
    "DEFAULT_KEYS",
    "TARGETS",
    "FieldsPart",
    "KeyTable",
    "MergedFields",
    "build_extra",
    "by_distinct",
    "convert",
    "empty_extra",
    "extra_from_entries",
    "merge_parts",
    "resolve",
    "resolve_and_convert",
]
