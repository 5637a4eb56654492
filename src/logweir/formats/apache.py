"""Apache ``LogFormat`` strings (mod_log_config) compiled into parsers.

>>> from logweir.formats.apache import compile_apache
>>> from logweir.formats.base import ParseOptions
>>> parser = compile_apache('%h %l %u %t "%r" %>s %b', ParseOptions())

Every directive of mod_log_config is known (:data:`DIRECTIVES`), with the
``<`` / ``>`` modifiers, status conditions (``%400,501{User-agent}i``,
``%!200,304{Referer}i``: the field may then be logged as ``-``) and
``%{...}t`` with strftime layouts, ``begin:`` / ``end:``, ``sec``, ``msec``,
``usec``, ``msec_frac`` and ``usec_frac``; several ``%{...}t`` directives
together make one timestamp. A whole ``LogFormat "..." nickname`` line from
httpd.conf is accepted too.

Like httpd, modifiers, conditions and ``{param}`` may come in any order
between ``%`` and the directive letter (``%{s}!200>T`` is valid).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import polars as pl

from logweir.errors import FormatError
from logweir.formats import fields as F
from logweir.formats.base import ParseOptions
from logweir.formats.engine import FormatParser

#: Nicknames of well-known formats, to name the parser.
KNOWN_FORMATS = {
    '%h %l %u %t "%r" %>s %b': "common",
    '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"': "combined",
    '%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"': "vhost_combined",
    '%v %h %l %u %t "%r" %>s %b': "vhost_common",
    '%h %l %u %t "%r" %>s %O': "common_debian",
    '%h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"': "combined_debian",
    "%{Referer}i -> %U": "referer",
    "%{User-agent}i": "agent",
}


# ----------------------------------------------------------------- the table


def _user_convert(texts: Mapping[str, pl.Expr]) -> F.Outputs:
    text = texts[""]
    # httpd writes an empty user name as "" so that the field is not blank.
    return {"": pl.when(text == '""').then(pl.lit("")).otherwise(F.not_dash(text))}


#: ``%u``: like text, but ``""`` is an empty name.
USER = F.Kind(
    "remote user",
    "a user name",
    F.TEXT.fast,
    F.TEXT.lenient,
    _user_convert,
    pl.String(),
    text=True,
)


def _header(prefix: str) -> Callable[[str], F.FieldSpec]:
    """Spec for a named header/cookie/variable: ``%{Name}i`` → ``http_name``.

    Keys follow Nginx's variable names, so both servers' logs share them.
    """

    def spec(name: str) -> F.FieldSpec:
        key = prefix + name.lower().replace("-", "_")
        column = _HEADER_COLUMNS.get(key) if prefix == "http_" else None
        return F.FieldSpec(
            key, F.TEXT, column[0] if column else None, column[1] if column else 0
        )

    return spec


_HEADER_COLUMNS = {
    "http_referer": ("referer", 0),
    "http_user_agent": ("user_agent", 0),
    "http_host": ("host", 0),
}


@dataclass(frozen=True)
class Entry:
    """A directive letter: its spec without a ``{param}``, the specs of the
    params it accepts (lower case), or a builder for any param (headers)."""

    plain: F.FieldSpec | None = None
    params: Mapping[str, F.FieldSpec] | None = None
    named: Callable[[str], F.FieldSpec] | None = None


S = F.FieldSpec
_PID = S("pid", F.INT)
_SERVER_PORT = S("server_port", F.INT)
_DURATION_S = S("duration_s", F.DURATION_S, priority=1)

#: Directive letter → entry. ``%t`` and ``%s`` are handled apart (time
#: layouts; status modifiers), the rest is this table.
DIRECTIVES: dict[str, Entry] = {
    "a": Entry(
        S("remote_addr", F.TEXT, "client_ip", 0),
        {"c": S("peer_addr", F.TEXT, "client_ip", 2)},
    ),
    "A": Entry(S("local_addr", F.TEXT)),
    "B": Entry(S("body_bytes", F.BYTES, "bytes")),
    "b": Entry(S("body_bytes", F.BYTES, "bytes")),
    "C": Entry(named=_header("cookie_")),
    "D": Entry(S("duration_us", F.DURATION_US)),
    "e": Entry(named=_header("env_")),
    "f": Entry(S("request_file", F.TEXT)),
    "h": Entry(
        S("remote_host", F.TEXT, "client_ip", 1),
        {"c": S("peer_host", F.TEXT, "client_ip", 3)},
    ),
    "H": Entry(S("protocol", F.TEXT, "protocol", 1)),
    "i": Entry(named=_header("http_")),
    "I": Entry(S("bytes_received", F.BYTES)),
    "k": Entry(S("keepalive_requests", F.INT)),
    "l": Entry(S("remote_logname", F.TEXT)),
    "L": Entry(S("log_id", F.TEXT)),
    "m": Entry(S("method", F.TEXT, "method", 1)),
    "n": Entry(named=_header("note_")),
    "o": Entry(named=_header("sent_http_")),
    "O": Entry(S("bytes_sent", F.BYTES, "bytes", 1)),
    "p": Entry(
        _SERVER_PORT,
        {
            "canonical": _SERVER_PORT,
            "local": S("local_port", F.INT),
            "remote": S("remote_port", F.INT),
        },
    ),
    "P": Entry(_PID, {"pid": _PID, "tid": S("tid", F.INT), "hextid": S("tid", F.HEX)}),
    "q": Entry(S("query_string", F.QUERY, priority=1)),
    "r": Entry(S("request", F.REQUEST)),
    "R": Entry(S("handler", F.TEXT)),
    "S": Entry(S("bytes_transferred", F.BYTES)),
    "T": Entry(
        _DURATION_S,
        {
            "s": _DURATION_S,
            "ms": S("duration_ms", F.DURATION_MS),
            "us": S("duration_us", F.DURATION_US),
        },
    ),
    "u": Entry(S("remote_user", USER)),
    "U": Entry(S("url_path", F.TEXT, "path", 1)),
    "v": Entry(S("server_name", F.TEXT, "host", 2)),
    "V": Entry(S("server_name_used", F.TEXT, "host", 1)),
    "X": Entry(S("connection_status", F.CONNECTION_STATUS)),
    "^ti": Entry(named=_header("trailer_in_")),
    "^to": Entry(named=_header("trailer_out_")),
    "^FB": Entry(S("ttfb_us", F.INT)),
}

#: ``%>s`` is the final status (the canonical one); ``%s`` and ``%<s`` the
#: status of the original request before any internal redirect.
_STATUS = {
    ">": S("status", F.STATUS, "status", 0),
    "": S("original_status", F.STATUS, "status", 1),
    "<": S("original_status", F.STATUS, "status", 1),
}


# ------------------------------------------------------------------ strftime

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may", "may"),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}


def _month_number(text: pl.Expr) -> pl.Expr:
    return text.str.to_lowercase().replace_strict(
        _MONTHS, default=None, return_dtype=pl.Int64
    )


def _stripped_int(text: pl.Expr) -> pl.Expr:
    return text.str.strip_chars(" ").cast(pl.Int64, strict=False)


def _offset_convert(texts: Mapping[str, pl.Expr]) -> F.Outputs:
    text = F.not_dash(texts[""]).str.replace(":", "", literal=True)
    sign = pl.when(text.str.starts_with("-")).then(-1).otherwise(1)
    seconds = sign * (
        text.str.slice(1, 2).cast(pl.Int64, strict=False) * 3600
        + text.str.slice(3, 2).cast(pl.Int64, strict=False) * 60
    )
    return {"": pl.duration(seconds=seconds), "time:offset_s": seconds}


def _pm_convert(texts: Mapping[str, pl.Expr]) -> F.Outputs:
    text = F.not_dash(texts[""])
    return {"": text, "time:pm": text.str.to_uppercase() == "PM"}


def _epoch_seconds_convert(texts: Mapping[str, pl.Expr]) -> F.Outputs:
    value = F.not_dash(texts[""]).cast(pl.Int64, strict=False)
    return {"": value, "time:datetime": F.epoch_to_datetime(value, 1_000_000)}


def _special(
    name: str, pattern: str, expected: str, convert: F.ConvertFn, dtype: pl.DataType
) -> F.Kind:
    return F.Kind(name, expected, *F.fixed(pattern), convert=convert, dtype=dtype)


#: strftime conversions with a number of a fixed width: (part, digits, what).
NUMERIC = {
    "Y": ("year", 4, "a 4-digit year"),
    "y": ("year2", 2, "a 2-digit year"),
    "C": ("century", 2, "a 2-digit century"),
    "G": ("", 4, "an ISO year"),
    "g": ("", 2, "a 2-digit ISO year"),
    "m": ("month", 2, "a 2-digit month"),
    "d": ("day", 2, "a 2-digit day"),
    "e": ("day", -2, "a day of the month"),
    "j": ("yday", 3, "a 3-digit day of the year"),
    "H": ("hour", 2, "a 2-digit hour"),
    "k": ("hour", -2, "an hour"),
    "I": ("hour12", 2, "a 2-digit hour"),
    "l": ("hour12", -2, "an hour"),
    "M": ("minute", 2, "2-digit minutes"),
    "S": ("second", 2, "2-digit seconds"),
    "U": ("", 2, "a week number"),
    "W": ("", 2, "a week number"),
    "V": ("", 2, "an ISO week number"),
    "u": ("", 1, "a week day number"),
    "w": ("", 1, "a week day number"),
}

#: Other strftime conversions.
OTHER: dict[str, F.Kind] = {
    "b": F.time_part_kind("month", "[A-Za-z]{3}", "a month name", _month_number),
    "h": F.time_part_kind("month", "[A-Za-z]{3}", "a month name", _month_number),
    "B": F.time_part_kind("month", "[A-Za-z]+", "a month name", _month_number),
    "a": F.time_part_kind(
        "", "[A-Za-z]{3}", "a week day name", F.not_dash, pl.String()
    ),
    "A": F.time_part_kind("", "[A-Za-z]+", "a week day name", F.not_dash, pl.String()),
    "p": _special("time (AM/PM)", "[AaPp][Mm]", "AM or PM", _pm_convert, pl.String()),
    "z": _special(
        "time (offset)",
        "[+\\-][0-9]{2}:?[0-9]{2}",
        "an offset such as +0200",
        _offset_convert,
        pl.Duration("us"),
    ),
    "Z": F.time_part_kind(
        "zone",
        "[A-Za-z][A-Za-z0-9+\\-]*|[+\\-][0-9]+",
        "a time zone name",
        F.not_dash,
        pl.String(),
    ),
    "s": _special(
        "epoch time",
        "-?[0-9]+",
        "seconds since the epoch",
        _epoch_seconds_convert,
        pl.Int64(),
    ),
}

#: Conversions that stand for a longer layout (glibc, C locale).
MACROS = {
    "c": "%a %b %e %H:%M:%S %Y",
    "D": "%m/%d/%y",
    "F": "%Y-%m-%d",
    "r": "%I:%M:%S %p",
    "R": "%H:%M",
    "T": "%H:%M:%S",
    "x": "%m/%d/%y",
    "X": "%H:%M:%S",
}
_LITERALS = {"n": "\n", "t": "\t", "%": "%"}


@functools.cache
def _numeric_kind(conversion: str, flag: str) -> F.Kind:
    part, width, expected = NUMERIC[conversion]
    digits = abs(width)
    if flag == "-":
        pattern = f"[0-9]{{1,{digits}}}"
    elif flag == "_" or width < 0:
        pattern = "|".join(
            " " * pad + f"[0-9]{{{digits - pad}}}" for pad in range(digits)
        )
        pattern = f"(?:{pattern})"
    else:
        pattern = f"[0-9]{{{digits}}}"
    return F.time_part_kind(part, pattern, expected, _stripped_int)


def strftime_parts(
    layout: str,
    make_token: Callable[[str], str],
    group: Callable[[], str],
    time_group: str,
    offset: int,
) -> list[F.Literal | F.Field]:
    """Parts for a strftime ``layout``, one field per conversion.

    ``make_token`` names a conversion's field (``%{%Y}t``), ``group`` hands
    out group names, ``offset`` is where ``layout`` starts in the format (for
    errors).
    """
    parts: list[F.Literal | F.Field] = []
    i = 0
    while i < len(layout):
        if layout[i] != "%":
            parts.append(F.Literal(layout[i]))
            i += 1
            continue
        start = i
        i += 1
        flag = ""
        # glibc's padding flags and E/O locale modifiers; the case flags
        # ``^`` and ``#`` are refused, as they change what the text is.
        while i < len(layout) and layout[i] in "-_0EO":
            flag = layout[i] if layout[i] in "-_" else flag
            i += 1
        conversion = layout[i] if i < len(layout) else ""
        i += 1
        if conversion in _LITERALS:
            parts.append(F.Literal(_LITERALS[conversion]))
        elif conversion in MACROS:
            parts.extend(
                strftime_parts(
                    MACROS[conversion], make_token, group, time_group, offset + start
                )
            )
        elif conversion in NUMERIC or conversion in OTHER:
            kind = (
                _numeric_kind(conversion, flag)
                if conversion in NUMERIC
                else OTHER[conversion]
            )
            token = make_token(layout[start:i])
            parts.append(F.Field(token, _time_spec(kind), group(), False, time_group))
        else:
            bad = layout[start:i]
            raise FormatError(
                f"invalid time conversion {bad!r} at char {start} of time format "
                f"{layout!r} (char {offset + start} of the LogFormat)",
                format=layout,
                position=offset + start,
            )
    return _merge_literals(parts)


def _merge_literals(parts: list[F.Literal | F.Field]) -> list[F.Literal | F.Field]:
    merged: list[F.Literal | F.Field] = []
    for part in parts:
        if isinstance(part, F.Literal) and merged and isinstance(merged[-1], F.Literal):
            merged[-1] = F.Literal(merged[-1].text + part.text)
        else:
            merged.append(part)
    return merged


# ---------------------------------------------------------------- directives


@dataclass(frozen=True)
class Directive:
    """One ``%...`` directive as written, before it is looked up."""

    token: str
    position: int
    letter: str
    param: str | None
    #: Where ``{param}`` sits in ``token`` (start of ``{``, end after ``}``).
    param_span: tuple[int, int] | None
    conditional: bool
    modifier: str


def read_directive(fmt: str, start: int) -> Directive:
    """Read the directive at ``fmt[start] == "%"``; raise if malformed."""
    i = start + 1
    modifier, conditional = "", False
    param: str | None = None
    span: tuple[int, int] | None = None
    while i < len(fmt):
        char = fmt[i]
        if char in "<>":
            modifier, i = char, i + 1
        elif char in "!,":
            i += 1
        elif char.isdigit():
            conditional = True
            while i < len(fmt) and fmt[i].isdigit():
                i += 1
        elif char == "{":
            close = fmt.find("}", i + 1)
            if close < 0:
                break
            param, span = fmt[i + 1 : close], (i - start, close + 1 - start)
            i = close + 1
        elif char == "^":
            if i + 3 > len(fmt):
                break
            letter = fmt[i : i + 3]
            return Directive(
                fmt[start : i + 3], start, letter, param, span, conditional, modifier
            )
        elif char.isascii() and char.isalpha():
            return Directive(
                fmt[start : i + 1], start, char, param, span, conditional, modifier
            )
        else:
            break
    bad = fmt[start : i + 1]
    raise FormatError(
        f"invalid directive {bad!r} at char {start} of LogFormat {fmt!r}",
        format=fmt,
        position=start,
    )


def _unknown(directive: Directive, fmt: str) -> FormatError:
    return FormatError(
        f"unknown directive {directive.token!r} at char {directive.position} of "
        f"LogFormat {fmt!r}",
        format=fmt,
        position=directive.position,
    )


def _spec(directive: Directive, fmt: str) -> F.FieldSpec:
    if directive.letter == "s" and directive.param is None:
        return _STATUS[directive.modifier]
    entry = DIRECTIVES.get(directive.letter)
    if entry is None:
        raise _unknown(directive, fmt)
    if directive.param is None:
        if entry.plain is None:
            raise _unknown(directive, fmt)
        return entry.plain
    if entry.named is not None and directive.param:
        return entry.named(directive.param)
    if entry.params is not None and directive.param.lower() in entry.params:
        return entry.params[directive.param.lower()]
    raise _unknown(directive, fmt)


def _time_spec(kind: F.Kind) -> F.FieldSpec:
    return S("time", kind, "ts")


class _Groups:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return f"f{self.count}"


def _time_parts(directive: Directive, groups: _Groups) -> list[F.Part]:
    param = directive.param or ""
    time_group, prefix = "begin", ""
    for name in ("begin:", "end:"):
        if param.startswith(name):
            time_group, prefix, param = name[:-1], name, param[len(name) :]
    special = {
        "": F.CLF_TIME,
        "sec": F.epoch_kind(1_000_000, "seconds since the epoch"),
        "msec": F.epoch_kind(1_000, "milliseconds since the epoch"),
        "usec": F.epoch_kind(1, "microseconds since the epoch"),
        "msec_frac": F.fraction_kind(3),
        "usec_frac": F.fraction_kind(6),
    }
    if param in special:
        spec = _time_spec(special[param])
        return [
            F.Field(directive.token, spec, groups(), directive.conditional, time_group)
        ]
    token, span = directive.token, directive.param_span
    assert span is not None  # a non-empty param always has a span

    def make_token(conversion: str) -> str:
        return token[: span[0] + 1] + prefix + conversion + token[span[1] - 1 :]

    offset = directive.position + span[0] + 1 + len(prefix)
    inner = strftime_parts(param, make_token, groups, time_group, offset)
    if directive.conditional:
        return [F.DashGroup(token, tuple(inner))]
    return list(inner)


def compile_parts(fmt: str) -> list[F.Part]:
    """The parts of a LogFormat string; raises :class:`FormatError`."""
    parts: list[F.Part] = []
    literal: list[str] = []
    groups = _Groups()
    i = 0
    while i < len(fmt):
        char = fmt[i]
        if char == "%" and fmt[i + 1 : i + 2] == "%":
            literal.append("%")
            i += 2
            continue
        if char != "%":
            literal.append(char)
            i += 1
            continue
        directive = read_directive(fmt, i)
        if literal:
            parts.append(F.Literal("".join(literal)))
            literal = []
        if directive.letter == "t":
            parts.extend(_time_parts(directive, groups))
        else:
            spec = _spec(directive, fmt)
            parts.append(
                F.Field(
                    directive.token,
                    spec,
                    groups(),
                    directive.conditional,
                    modifier=directive.modifier,
                )
            )
        i += len(directive.token)
    if literal:
        parts.append(F.Literal("".join(literal)))
    return parts


# -------------------------------------------------------------- config lines


def config_words(line: str) -> list[str]:
    """Split an httpd.conf line into words the way httpd does: double or
    single quotes group words, and a backslash escapes the quote."""
    words: list[str] = []
    i = 0
    while i < len(line):
        if line[i].isspace():
            i += 1
            continue
        quote = line[i] if line[i] in "\"'" else ""
        i += 1 if quote else 0
        word: list[str] = []
        while i < len(line):
            char = line[i]
            if quote and char == "\\" and line[i + 1 : i + 2] in (quote, "\\"):
                word.append(line[i + 1])
                i += 2
                continue
            if (quote and char == quote) or (not quote and char.isspace()):
                i += 1
                break
            word.append(char)
            i += 1
        words.append("".join(word))
    return words


def logformat_from_config(text: str) -> tuple[str, str | None]:
    """``LogFormat "fmt" [nickname]`` → (fmt, nickname)."""
    words = config_words(text)
    if len(words) < 2 or len(words) > 3:
        raise FormatError(
            f'cannot read {text!r}: expected LogFormat "format" [nickname]',
            format=text,
        )
    return words[1], (words[2] if len(words) == 3 else None)


_CONFIG_LINE = re.compile(r"\s*LogFormat(\s|$)", re.IGNORECASE)


def compile_apache(fmt: str, options: ParseOptions) -> FormatParser:
    """Compile an Apache ``LogFormat`` string (or a whole ``LogFormat`` line).

    Raises :class:`FormatError` naming the bad directive and its 0-based
    position.
    """
    # Spaces around a bare format are part of it; only a config line is
    # trimmed.
    text = fmt
    nickname: str | None = None
    if _CONFIG_LINE.match(fmt):
        text, nickname = logformat_from_config(fmt.strip())
    if not text:
        raise FormatError("empty LogFormat", format=fmt)
    parts = compile_parts(text)
    name = nickname or KNOWN_FORMATS.get(text, "apache")
    return FormatParser(
        name,
        text,
        parts,
        options,
        escape="backslash",
        recipe=(compile_apache, (fmt, options)),
    )


__all__ = [
    "DIRECTIVES",
    "KNOWN_FORMATS",
    "Directive",
    "Entry",
    "compile_apache",
    "compile_parts",
    "config_words",
    "logformat_from_config",
    "read_directive",
    "strftime_parts",
]
