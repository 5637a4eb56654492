"""Field kinds: how one token of a server's log format is matched and typed.

A format compiler (``apache.py``, ``nginx.py``) turns each token of a format
string into a :class:`FieldSpec` from one table, so that supporting a new
directive or variable is one line of that table. A spec names the field
(its key in ``extra``), its :class:`Kind` (regex fragments and converter)
and the canonical column it feeds, if any.

A kind has two regex fragments, both for Rust's ``regex`` (via Polars),
whose matching time is linear in the line, so no crafted line can make the
parser stall:

* ``fast``: for the vectorized path. It is written to keep the whole format
  regex *one-pass* (at every character the next step is unambiguous), which
  lets the engine use its fastest capture strategy. It may refuse valid but
  unusual text.
* ``lenient``: for the fallback, tried only on the lines the fast regex
  refused. It must accept every valid line: quoted text may contain
  unescaped quotes, request lines may have odd spaces.

Both fragments capture into groups named from the field's ``group`` prefix,
so both paths fill the same table of captured texts, and one set of Polars
expressions converts that table, whichever path matched a line.

This module also holds helpers the other formats can share:
:func:`split_request_line` / :func:`request_columns` (request line →
method, path, query, protocol), :func:`build_extra` (the ``extra`` column)
and :func:`build_rejects` (the rejects batch).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal as TypingLiteral

import numpy as np
import polars as pl
import pyarrow as pa

from logweir.schema import (
    EXTRA_TYPE,
    LineBatch,
    arrow_array,
    conform_rejects,
    empty_rejects,
)

#: A mapping from a field's output name to its expression. The output ``""``
#: is the field's own typed value; ``"time:<part>"`` outputs feed the
#: timestamp assembler; ``"extra:<key>"`` outputs go to ``extra``; any other
#: name is a canonical column the field fills (``"method"``, ``"query"`` …).
Outputs = dict[str, pl.Expr]

#: How a stop set is given: the characters that end a free-text field (the
#: first character of the literal after it), ``""`` when the field runs to
#: the end of the line, ``None`` when unknown (then the field is lazy).
Stop = str | None

#: Which unescaping a dialect applies to logged text before conversion.
Escape = TypingLiteral["backslash", "json", "none"]

_META = set("\\.+*?()|[]{}^$#&-~")


def regex_literal(text: str) -> str:
    """``text`` as a regex matching itself, valid for both Rust and Python.

    ``re.escape`` is not used because Rust's ``regex`` rejects some of its
    escapes (such as ``\\ `` for a space).
    """
    return "".join("\\" + char if char in _META else char for char in text)


def char_class(chars: str) -> str:
    """The inside of a ``[...]`` class matching any of ``chars``."""
    return "".join("\\" + c if c in "\\]^-[" else c for c in dict.fromkeys(chars))


# --------------------------------------------------------------------------
# Kinds
# --------------------------------------------------------------------------

FastFn = Callable[[str, Stop], str]
LenientFn = Callable[[str, Stop, bool], str]
ConvertFn = Callable[[Mapping[str, pl.Expr]], Outputs]
PostFn = Callable[[str | None], dict[str, str | None]]


@dataclass(frozen=True)
class Kind:
    """How a field's text is matched and converted.

    ``fast(group, stop)`` and ``lenient(group, stop, quoted)`` return regex
    fragments with their named groups; ``columns(group)`` names the captured
    texts the kind keeps (some exist only after ``post`` fills them in the
    fallback: it maps the leniently captured text to the other columns,
    keyed by suffix). ``convert`` maps those texts (``"-"`` not yet nulled) to
    typed outputs. ``expected`` completes a reject reason ("expected …").
    ``lead`` is the set of characters a non-empty value starts with, when
    that is known (it lets the field before it stop there). ``text`` says
    that the dialect's unescaping applies to the captured text.
    """

    name: str
    expected: str
    fast: FastFn
    lenient: LenientFn
    convert: ConvertFn
    dtype: pl.DataType
    subgroups: tuple[str, ...] = ("",)
    post: PostFn | None = None
    lead: str | None = None
    text: bool = False
    #: True when the fast fragment's first group always takes part in a match.
    mandatory: bool = True

    def columns(self, group: str) -> list[str]:
        """Names of the captured texts this kind keeps for a field."""
        return [group + suffix for suffix in self.subgroups]


def _main(texts: Mapping[str, pl.Expr]) -> pl.Expr:
    return texts[""]


def not_dash(expr: pl.Expr) -> pl.Expr:
    """``expr`` with the placeholder ``-`` turned to null (``""`` stays)."""
    return pl.when(expr != "-").then(expr)


def fixed(pattern: str) -> tuple[FastFn, LenientFn]:
    """Fragments for a field whose text has a fixed shape."""

    def fast(group: str, stop: Stop) -> str:
        return f"(?P<{group}>{pattern})"

    def lenient(group: str, stop: Stop, quoted: bool) -> str:
        return f"(?P<{group}>{pattern})"

    return fast, lenient


def free_text_fast(stop: Stop) -> str:
    """Fast fragment for free text that ends at one of ``stop``'s characters.

    Backslash escapes are skipped over as pairs, so an Apache ``\\"`` inside
    a quoted value does not end it.
    """
    if stop is None:
        return ".*?"
    if stop == "":
        return ".*"
    return f"(?:[^{char_class(stop)}\\\\]|\\\\.)*"


def free_text_lenient(stop: Stop, quoted: bool) -> str:
    """Lenient fragment for free text (see the module docstring)."""
    if stop == "":
        return ".*"
    if quoted or stop is None:
        return ".*?"
    if stop == " ":
        return "[^ ]*"
    # Another delimiter (``%v:%p``, ``%a:%{remote}p`` with IPv6): lazy but
    # confined to one space-free token.
    return "[^ ]*?"


def _text_fast(group: str, stop: Stop) -> str:
    return f"(?P<{group}>{free_text_fast(stop)})"


def _text_lenient(group: str, stop: Stop, quoted: bool) -> str:
    return f"(?P<{group}>{free_text_lenient(stop, quoted)})"


def _text_convert(texts: Mapping[str, pl.Expr]) -> Outputs:
    return {"": not_dash(_main(texts))}


TEXT = Kind(
    "text",
    "text",
    _text_fast,
    _text_lenient,
    _text_convert,
    pl.String(),
    text=True,
)

#: Text where ``-`` is a value, not a placeholder (Apache ``%X``).
CONNECTION_STATUS = Kind(
    "connection status",
    "one of X, + or -",
    *fixed("[X+\\-]"),
    convert=lambda texts: {"": _main(texts)},
    dtype=pl.String(),
)


def number_kind(
    name: str,
    expected: str,
    pattern: str,
    to_value: Callable[[pl.Expr], pl.Expr],
    dtype: pl.DataType,
    duration_ms: Callable[[pl.Expr], pl.Expr] | None = None,
) -> Kind:
    """A kind for numbers that may be logged as ``-``.

    ``duration_ms`` (when given) turns the typed value into milliseconds
    for the canonical ``duration_ms`` column.
    """

    def convert(texts: Mapping[str, pl.Expr]) -> Outputs:
        value = to_value(not_dash(_main(texts)))
        outputs = {"": value}
        if duration_ms is not None:
            outputs["duration_ms"] = duration_ms(value)
        return outputs

    return Kind(name, expected, *fixed(f"-|{pattern}"), convert=convert, dtype=dtype)


def _ms(factor: float) -> Callable[[pl.Expr], pl.Expr]:
    # Rounded to the microsecond so that 0.049 s is exactly 49.0 ms.
    return lambda value: (value.cast(pl.Float64) * factor).round(3)


def _int(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.Int64, strict=False)


INT = number_kind("number", "a number", "[0-9]+", _int, pl.Int64())
BYTES = number_kind(
    "byte count",
    "a byte count",
    "[0-9]+",
    lambda e: e.cast(pl.UInt64, strict=False),
    pl.UInt64(),
)
STATUS = number_kind(
    "status",
    "a 3-digit status",
    "[0-9]{3}",
    lambda e: e.cast(pl.UInt16, strict=False),
    pl.UInt16(),
)
HEX = number_kind(
    "hex number",
    "a hexadecimal number",
    "[0-9A-Fa-f]+",
    lambda e: e.str.to_integer(base=16, strict=False).cast(pl.UInt64, strict=False),
    pl.UInt64(),
)
DURATION_S = number_kind(
    "seconds", "a number of seconds", "[0-9]+", _int, pl.Int64(), _ms(1000.0)
)
DURATION_MS = number_kind(
    "milliseconds", "a number of milliseconds", "[0-9]+", _int, pl.Int64(), _ms(1.0)
)
DURATION_US = number_kind(
    "microseconds", "a number of microseconds", "[0-9]+", _int, pl.Int64(), _ms(0.001)
)
DURATION_DECIMAL_S = number_kind(
    "seconds",
    "a number of seconds",
    "[0-9]+(?:\\.[0-9]+)?",
    lambda e: e.cast(pl.Float64, strict=False),
    pl.Float64(),
    _ms(1000.0),
)

_NUMBER_ITEM = "(?:[0-9]+(?:\\.[0-9]+)?|-)"
_LIST_SEP = "(?:, | : )"


def _sum_list(texts: Mapping[str, pl.Expr]) -> Outputs:
    numbers = (
        not_dash(_main(texts))
        .str.extract_all("[0-9]+(?:\\.[0-9]+)?")
        .list.eval(pl.element().cast(pl.Float64))
    )
    total = pl.when(numbers.list.len() > 0).then(numbers.list.sum().round(6))
    return {"": total}


#: Nginx ``$upstream_*_time``: one entry per upstream tried (``, ``) and per
#: internal redirect (`` : ``). The value is the **sum** of all entries, the
#: total time spent waiting on upstreams; ``-`` entries count as nothing.
SECONDS_LIST = Kind(
    "list of seconds",
    "a list of seconds",
    *fixed(f"{_NUMBER_ITEM}(?:{_LIST_SEP}{_NUMBER_ITEM})*"),
    convert=_sum_list,
    dtype=pl.Float64(),
)

#: Nginx ``$upstream_addr`` / ``$upstream_status``: kept as logged.
TEXT_LIST = Kind(
    "list",
    "a list",
    *fixed(f"[^ ,]+(?:{_LIST_SEP}[^ ,]+)*"),
    convert=_text_convert,
    dtype=pl.String(),
)


# ----------------------------------------------------------------- requests


@dataclass(frozen=True)
class RequestParts:
    """A request line split up; ``None`` where a part is absent."""

    method: str | None
    path: str | None
    query: str | None
    protocol: str | None
    #: The whole line when it does not look like ``METHOD TARGET [PROTO]``
    #: (TLS handshakes sent to a plain port, scanners' junk …).
    unsplit: str | None = None


def _is_method(token: str) -> bool:
    return (
        bool(token)
        and token[0].isascii()
        and token[0].isalpha()
        and all(c.isascii() and (c.isalnum() or c in "_-") for c in token)
    )


def _is_protocol(token: str) -> bool:
    name, slash, version = token.partition("/")
    return (
        bool(slash)
        and name.isascii()
        and name.isalpha()
        and name.isupper()
        and bool(version)
        and all(c in "0123456789." for c in version)
    )


def split_target(target: str) -> tuple[str | None, str | None]:
    """``/a/b?x=1`` → (``/a/b``, ``x=1``); an empty part is ``None``."""
    path, mark, query = target.partition("?")
    return (path or None), (query if mark else None)


def split_request_line(line: str | None) -> RequestParts:
    """Split a request line such as ``GET /a?b=1 HTTP/1.1``.

    The method is the first word, the protocol the last word when it looks
    like ``NAME/1.1``, and the target everything between, kept as it is
    (servers log targets with stray spaces too). ``-`` means no request.
    HTTP/0.9 lines (``GET /``) have no protocol.

    >>> split_request_line("GET /a b?c HTTP/1.0")
    RequestParts(method='GET', path='/a b', query='c', protocol='HTTP/1.0', \
unsplit=None)
    """
    if line is None or line in ("", "-"):
        return RequestParts(None, None, None, None)
    method, space, rest = line.partition(" ")
    if not space or not _is_method(method):
        return RequestParts(None, None, None, None, unsplit=line)
    protocol: str | None = None
    head, space, last = rest.rpartition(" ")
    if space and _is_protocol(last):
        protocol, rest = last, head
    path, query = split_target(rest.strip(" "))
    return RequestParts(method, path, query, protocol)


#: A Rust regex splitting request lines the way :func:`split_request_line`
#: does, for :func:`request_columns`.
_REQUEST_RE = (
    "^(?P<method>[A-Za-z][A-Za-z0-9_\\-]*) +(?P<target>.*?)"
    "(?: +(?P<protocol>[A-Z]+/[0-9.]+))? *$"
)


def request_columns(line: pl.Expr) -> dict[str, pl.Expr]:
    """Vectorized :func:`split_request_line` (for formats that log a whole
    request line in one field, such as JSON ``"request"`` values).

    Returns expressions for ``method``, ``path``, ``query`` and
    ``protocol``. Lines that do not split give nulls.

    Known gap: runs of spaces between the parts are all skipped here, while
    :func:`split_request_line` keeps all but one in the target.
    """
    parts = line.str.extract_groups(_REQUEST_RE)
    target = parts.struct.field("target").str.strip_chars(" ").str.splitn("?", 2)
    path = target.struct.field("field_0")
    return {
        "method": parts.struct.field("method"),
        "path": pl.when(path != "").then(path),
        "query": target.struct.field("field_1"),
        "protocol": parts.struct.field("protocol"),
    }


def _request_fast(group: str, stop: Stop) -> str:
    # ``-``; METHOD SP PATH [?QUERY] SP PROTO with single spaces (what
    # servers write for nearly every request); or, when the first character
    # cannot start a method, junk kept whole (TLS handshakes sent to a plain
    # port, logged as ``\x16\x03…``). The first character picks the branch,
    # which keeps the regex one-pass. Anything else (odd spaces, HTTP/0.9)
    # is left to the fallback, which splits it in Python. The whole line is
    # not captured (it is put back together from its parts when needed):
    # one group fewer keeps the regex fast.
    no_stop = char_class((stop or "") + ' "')
    junk = free_text_fast(stop)
    return (
        f"(?:-|(?P<{group}_m>[A-Za-z][A-Za-z0-9_\\-]*) "
        f"(?P<{group}_p>[^?{no_stop}]+)(?:\\?(?P<{group}_q>[^{no_stop}]*))? "
        f"(?P<{group}_v>[A-Z]+/[0-9.]+)"
        f"|(?P<{group}_x>[^A-Za-z\\-{char_class(stop or '')}]{junk}))"
    )


def _request_lenient(group: str, stop: Stop, quoted: bool) -> str:
    return f"(?P<{group}>{free_text_lenient(stop, True)})"


def _request_post(line: str | None) -> dict[str, str | None]:
    parts = split_request_line(line)
    return {
        "_m": parts.method,
        "_p": parts.path,
        "_q": parts.query,
        "_v": parts.protocol,
        "_x": parts.unsplit,
    }


def _request_convert(texts: Mapping[str, pl.Expr]) -> Outputs:
    query = texts["_q"]
    rebuilt = pl.concat_str(
        [
            texts["_m"],
            pl.lit(" "),
            texts["_p"],
            pl.when(query.is_null()).then(pl.lit("")).otherwise("?" + query),
            pl.lit(" "),
            texts["_v"],
        ]
    )
    return {
        "": pl.coalesce(not_dash(_main(texts)), rebuilt),
        "method": texts["_m"],
        "path": texts["_p"],
        "query": query,
        "protocol": texts["_v"],
        "extra:request": texts["_x"],
    }


#: A whole request line (Apache ``%r``, Nginx ``$request``).
REQUEST = Kind(
    "request",
    "a request line",
    _request_fast,
    _request_lenient,
    _request_convert,
    pl.String(),
    subgroups=("", "_m", "_p", "_q", "_v", "_x"),
    post=_request_post,
    text=True,
    mandatory=False,
)


def _target_convert(texts: Mapping[str, pl.Expr]) -> Outputs:
    value = not_dash(_main(texts))
    parts = value.str.splitn("?", 2)
    path = parts.struct.field("field_0")
    return {
        "": value,
        "path": pl.when(path != "").then(path),
        "query": parts.struct.field("field_1"),
    }


#: A request target with its query (Nginx ``$request_uri``).
TARGET = Kind(
    "request target",
    "a URI",
    _text_fast,
    _text_lenient,
    _target_convert,
    pl.String(),
    text=True,
)


def _query_fast(group: str, stop: Stop) -> str:
    return f"(?P<{group}>(?:\\?{free_text_fast(stop)})?)"


def _query_lenient(group: str, stop: Stop, quoted: bool) -> str:
    return f"(?P<{group}>(?:\\?{free_text_lenient(stop, quoted)})?)"


def _query_convert(texts: Mapping[str, pl.Expr]) -> Outputs:
    value = _main(texts)
    query = pl.when(value.str.starts_with("?")).then(value.str.strip_prefix("?"))
    return {"": value, "query": query}


#: Apache ``%q``: empty, or ``?`` and the query string.
QUERY = Kind(
    "query string",
    "a query string",
    _query_fast,
    _query_lenient,
    _query_convert,
    pl.String(),
    lead="?",
    text=True,
)


# -------------------------------------------------------------------- times

_CLF_BODY = "[0-9]{2}/[A-Za-z]{3}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+\\-][0-9]{4}"
CLF_LAYOUT = "dd/Mon/yyyy:HH:MM:SS +zzzz"


def _datetime_outputs(value: pl.Expr) -> Outputs:
    return {"": value, "time:datetime": value}


def _clf(bracketed: bool) -> Kind:
    pattern = f"\\[{_CLF_BODY}\\]" if bracketed else _CLF_BODY
    layout = "[%d/%b/%Y:%H:%M:%S %z]" if bracketed else "%d/%b/%Y:%H:%M:%S %z"

    def convert(texts: Mapping[str, pl.Expr]) -> Outputs:
        # chrono with Polars' cache of repeated values: a log has one
        # distinct stamp per second, so this is cheap.
        value = not_dash(_main(texts)).str.strptime(
            pl.Datetime("us", "UTC"), layout, strict=False
        )
        return _datetime_outputs(value)

    expected = f"[{CLF_LAYOUT}]" if bracketed else CLF_LAYOUT
    return Kind(
        "time",
        expected,
        *fixed(f"-|{pattern}"),
        convert=convert,
        dtype=pl.Datetime("us", "UTC"),
    )


#: Apache ``%t``: ``[10/Oct/2000:13:55:36 -0700]``.
CLF_TIME = _clf(bracketed=True)
#: Nginx ``$time_local``: the same without brackets.
CLF_TIME_BARE = _clf(bracketed=False)


def _iso_convert(texts: Mapping[str, pl.Expr]) -> Outputs:
    text = not_dash(_main(texts))
    text = (
        pl.when(text.str.ends_with("Z"))
        .then(text.str.strip_suffix("Z") + "+00:00")
        .otherwise(text)
    )
    value = text.str.strptime(
        pl.Datetime("us", "UTC"), "%Y-%m-%dT%H:%M:%S%.f%z", strict=False
    )
    return _datetime_outputs(value)


#: ISO 8601 with an offset (Nginx ``$time_iso8601``).
ISO_TIME = Kind(
    "time",
    "an ISO 8601 time such as 2019-05-06T12:09:43+00:00",
    *fixed(
        "-|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\\.[0-9]+)?"
        "(?:Z|[+\\-][0-9]{2}:?[0-9]{2})"
    ),
    convert=_iso_convert,
    dtype=pl.Datetime("us", "UTC"),
)


#: Epoch times past this many µs (year 9999) are refused, not wrapped.
_MAX_EPOCH_US = 253_402_300_800_000_000


def epoch_to_datetime(
    value: pl.Expr, unit_us: int, extra_us: pl.Expr | None = None
) -> pl.Expr:
    """UTC datetimes from integers counting ``unit_us`` µs since the epoch
    (plus ``extra_us``); null beyond the year 9999 rather than overflowing."""
    in_range = value.abs() < _MAX_EPOCH_US // unit_us
    micros = value * unit_us if extra_us is None else value * unit_us + extra_us
    return (
        pl.when(in_range)
        .then(micros)
        .cast(pl.Datetime("us"))
        .dt.replace_time_zone("UTC")
    )


def epoch_kind(unit_us: int, expected: str) -> Kind:
    """Whole seconds / ms / µs since the epoch (``%{sec}t``, ``%{msec}t``…)."""

    def convert(texts: Mapping[str, pl.Expr]) -> Outputs:
        value = _int(not_dash(_main(texts)))
        return {"": value, "time:datetime": epoch_to_datetime(value, unit_us)}

    return Kind(
        "epoch time", expected, *fixed("-|[0-9]+"), convert=convert, dtype=pl.Int64()
    )


def _decimal_epoch_convert(texts: Mapping[str, pl.Expr]) -> Outputs:
    text = not_dash(_main(texts))
    parts = text.str.splitn(".", 2)
    whole = _int(parts.struct.field("field_0"))
    frac = (
        parts.struct.field("field_1")
        .fill_null("")
        .str.slice(0, 6)
        .str.pad_end(6, "0")
        .cast(pl.Int64, strict=False)
    )
    when = epoch_to_datetime(whole, 1_000_000, frac)
    return {"": text.cast(pl.Float64, strict=False), "time:datetime": when}


#: Seconds since the epoch with a fraction (Nginx ``$msec``), read exactly.
EPOCH_DECIMAL = Kind(
    "epoch time",
    "seconds since the epoch",
    *fixed("-|[0-9]+(?:\\.[0-9]+)?"),
    convert=_decimal_epoch_convert,
    dtype=pl.Float64(),
)


def fraction_kind(digits: int) -> Kind:
    """``msec_frac`` / ``usec_frac``: the sub-second part of a time."""
    scale = 10 ** (6 - digits)

    def convert(texts: Mapping[str, pl.Expr]) -> Outputs:
        value = _int(not_dash(_main(texts)))
        return {"": value, "time:frac_us": value * scale}

    return Kind(
        "fraction",
        f"{digits} digits",
        *fixed(f"-|[0-9]{{{digits}}}"),
        convert=convert,
        dtype=pl.Int64(),
    )


def time_part_kind(
    part: str,
    pattern: str,
    expected: str,
    to_value: Callable[[pl.Expr], pl.Expr] = _int,
    dtype: pl.DataType | None = None,
) -> Kind:
    """One conversion of a strftime layout (``%Y``, ``%b``, ``%z`` …).

    ``part`` names what it gives the timestamp assembler (``year``,
    ``month``, ``offset_s`` …, see ``engine.assemble_time``); an empty
    ``part`` contributes nothing (week days, week numbers).
    """

    def convert(texts: Mapping[str, pl.Expr]) -> Outputs:
        value = to_value(not_dash(_main(texts)))
        return {"": value, f"time:{part}": value} if part else {"": value}

    return Kind(
        f"time ({expected})",
        expected,
        *fixed(pattern),
        convert=convert,
        dtype=dtype or pl.Int64(),
    )


# --------------------------------------------------------------------- specs


@dataclass(frozen=True)
class FieldSpec:
    """One row of a format's token table.

    ``key`` names the field in ``extra`` (and in reports); ``column`` is the
    canonical column its value fills, if any. When several fields could
    fill a column, the lowest ``priority`` wins; fields of equal priority
    are coalesced in format order, and the losers go to ``extra``.
    """

    key: str
    kind: Kind
    column: str | None = None
    priority: int = 0


@dataclass(frozen=True)
class Literal:
    """Text of the format that appears as is in every line."""

    text: str


@dataclass(frozen=True)
class Field:
    """One occurrence of a token in a compiled format.

    ``token`` is the token as written (``%>s``, ``$status``), used as the
    column name by ``parse_fields``; ``group`` is its regex group prefix.
    ``dashable`` lets the whole field be ``-`` (an Apache status condition
    that did not hold). ``time_group`` gathers time fields into one stamp.
    ``modifier`` is Apache's ``<`` (original request) or ``>`` (final one).
    """

    token: str
    spec: FieldSpec
    group: str
    dashable: bool = False
    time_group: str = "begin"
    modifier: str = ""


@dataclass(frozen=True)
class DashGroup:
    """Several fields logged as a single ``-`` when a condition fails
    (an Apache ``%200{%Y-%m-%d}t``)."""

    token: str
    parts: tuple[Literal | Field, ...]


Part = Literal | Field | DashGroup


def flat_fields(parts: Sequence[Part]) -> list[Field]:
    """Every :class:`Field` in ``parts``, in format order."""
    fields: list[Field] = []
    for part in parts:
        if isinstance(part, Field):
            fields.append(part)
        elif isinstance(part, DashGroup):
            fields.extend(p for p in part.parts if isinstance(p, Field))
    return fields


# ----------------------------------------------------------------- escaping

_SIMPLE_ESCAPES = {
    '"': '"',
    "\\": "\\",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "v": "\v",
    "f": "\f",
}


def unescape_backslash(text: str) -> str:
    r"""Undo Apache's (and Nginx ``escape=default``'s) escaping of logged text.

    ``\"`` and ``\\`` become the character, ``\n`` and friends the control
    character, and runs of ``\xhh`` the bytes they stand for. Those bytes are
    read as UTF-8 (servers log raw request bytes, which are UTF-8 nearly
    always); when they are not valid UTF-8, each byte becomes the character
    of the same number (Latin-1), so that nothing is lost.
    """
    out: list[str] = []
    pending = bytearray()
    i, size = 0, len(text)
    while i < size:
        char = text[i]
        nxt = text[i + 1] if i + 1 < size else ""
        if char == "\\" and nxt == "x" and _is_hex(text[i + 2 : i + 4]):
            pending.append(int(text[i + 2 : i + 4], 16))
            i += 4
            continue
        if pending:
            out.append(_decode_bytes(bytes(pending)))
            pending.clear()
        if char == "\\" and nxt in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[nxt])
            i += 2
        else:
            out.append(char)
            i += 1
    if pending:
        out.append(_decode_bytes(bytes(pending)))
    return "".join(out)


def _is_hex(pair: str) -> bool:
    return len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair)


def _decode_bytes(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def unescape_json(text: str) -> str:
    """Undo Nginx ``escape=json`` (JSON string escapes).

    A backslash that starts no valid escape is kept as it is.
    """
    try:
        return str(json.loads(f'"{text}"'))
    except ValueError:
        pass
    out: list[str] = []
    i = 0
    while i < len(text):
        char, nxt = text[i], text[i + 1 : i + 2]
        code = text[i + 2 : i + 6]
        if char == "\\" and nxt == "u" and _is_hex(code[:2]) and _is_hex(code[2:]):
            out.append(chr(int(code, 16)))
            i += 6
        elif char == "\\" and nxt and nxt in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[nxt])
            i += 2
        elif char == "\\" and nxt == "/":
            out.append("/")
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


UNESCAPERS: dict[Escape, Callable[[str], str] | None] = {
    "backslash": unescape_backslash,
    "json": unescape_json,
    "none": None,
}


# --------------------------------------------------------------------- extra


def build_extra(keys: Sequence[str], values: Sequence[pl.Series]) -> pl.Series:
    """The ``extra`` column: per row, the ``(key, value)`` pairs whose value
    is not null, in ``keys`` order.

    ``values`` are Series of equal length, one per key (cast to text).
    Built on Arrow offsets directly: Polars' ``concat_list`` of structs takes
    seconds per million rows, this takes milliseconds when most values are
    null, as they are (``%l``, ``%u``).
    """
    height = values[0].len() if values else 0
    present = [value.is_not_null().to_numpy() for value in values]
    counts = np.zeros(height, dtype=np.int64)
    # Where each key's value sits within its row's list: the number of
    # present values of the keys before it.
    slots = []
    for mask in present:
        slots.append(counts[mask])
        counts += mask
    offsets = np.zeros(height + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    total = int(offsets[-1])
    flat_values: list[pl.Series] = []
    flat_keys: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    for k, (value, mask) in enumerate(zip(values, present, strict=True)):
        if not mask.any():
            continue
        targets.append(offsets[:-1][mask] + slots[k])
        flat_values.append(value.filter(pl.Series(mask)).cast(pl.String))
        flat_keys.append(np.full(len(targets[-1]), k, dtype=np.int64))
    order = np.empty(total, dtype=np.int64)
    if targets:
        order[np.concatenate(targets)] = np.arange(total, dtype=np.int64)
    keys_flat = np.concatenate(flat_keys) if flat_keys else np.empty(0, np.int64)
    values_flat = (
        pl.concat(flat_values) if flat_values else pl.Series([], dtype=pl.String)
    )
    struct = pa.StructArray.from_arrays(
        [
            pl.Series(list(keys) or [""], dtype=pl.String)
            .gather(keys_flat[order])
            .to_arrow(),
            values_flat.gather(order).to_arrow(),
        ],
        names=["key", "value"],
    )
    lists = pa.LargeListArray.from_arrays(arrow_array(offsets), struct)
    return pl.Series("extra", lists).cast(EXTRA_TYPE)


# ------------------------------------------------------------------- rejects


def build_rejects(
    batch: LineBatch, rows: Sequence[int], reasons: Sequence[str]
) -> pl.DataFrame:
    """The rejects batch for the lines at ``rows`` (0-based, into ``batch``).

    Raw text is capped by :func:`logweir.schema.conform_rejects`.
    """
    if not rows:
        return empty_rejects()
    index = pl.Series(list(rows), dtype=pl.UInt32)
    frame = pl.DataFrame(
        {
            "source": [batch.source] * len(rows),
            "line_number": batch.line_numbers.gather(index),
            "offset": batch.offsets.gather(index),
            "raw": batch.lines.gather(index),
            "reason": list(reasons),
        }
    )
    return conform_rejects(frame)


def snippet(text: str, limit: int = 24) -> str:
    """The start of ``text`` up to the next space, for reject reasons."""
    word = text[:1] + text[1:].split(" ", 1)[0]
    if len(word) > limit:
        word = word[:limit] + "…"
    return word


__all__ = [
    "BYTES",
    "CLF_TIME",
    "CLF_TIME_BARE",
    "CONNECTION_STATUS",
    "DURATION_DECIMAL_S",
    "DURATION_MS",
    "DURATION_S",
    "DURATION_US",
    "EPOCH_DECIMAL",
    "HEX",
    "INT",
    "ISO_TIME",
    "QUERY",
    "REQUEST",
    "SECONDS_LIST",
    "STATUS",
    "TARGET",
    "TEXT",
    "TEXT_LIST",
    "DashGroup",
    "Field",
    "FieldSpec",
    "Kind",
    "Literal",
    "Part",
    "RequestParts",
    "build_extra",
    "build_rejects",
    "epoch_kind",
    "epoch_to_datetime",
    "flat_fields",
    "fraction_kind",
    "number_kind",
    "request_columns",
    "split_request_line",
    "time_part_kind",
    "unescape_backslash",
    "unescape_json",
]
