"""Nginx ``log_format`` strings compiled into parsers.

>>> from logweir.formats.nginx import compile_nginx
>>> from logweir.formats.base import ParseOptions
>>> parser = compile_nginx(
...     '$remote_addr - $remote_user [$time_local] "$request" $status '
...     '$body_bytes_sent "$http_referer" "$http_user_agent"',
...     ParseOptions(),
... )

Variables are written ``$name`` or ``${name}``. The ones in
:data:`VARIABLES` are typed and mapped to canonical columns; every
``$http_*``, ``$sent_http_*``, ``$cookie_*``, ``$arg_*`` and
``$upstream_http_*`` is text; any other variable is kept as text in
``extra`` rather than refused, since nginx and its modules define hundreds.

A whole ``log_format name [escape=default|json|none] '...' '...';``
directive pasted from nginx.conf is accepted, its strings spread over as
many lines as in the file; like nginx, the strings are joined with
nothing between them. ``escape`` says how values were escaped
(``default``: ``"``, ``\\`` and bytes outside printable ASCII as ``\\xHH``;
``json``: JSON string escapes; ``none``: nothing).
"""

from __future__ import annotations

from collections.abc import Mapping

from logweir.errors import FormatError
from logweir.formats import fields as F
from logweir.formats.base import ParseOptions
from logweir.formats.engine import FormatParser

_COMBINED = (
    '$remote_addr - $remote_user [$time_local] "$request" $status '
    '$body_bytes_sent "$http_referer" "$http_user_agent"'
)

#: Known formats, to name the parser.
KNOWN_FORMATS = {
    _COMBINED: "nginx_combined",
    _COMBINED + ' "$http_x_forwarded_for"': "nginx_main",
}

S = F.FieldSpec

#: Variable name → spec. One line per variable.
VARIABLES: dict[str, F.FieldSpec] = {
    "remote_addr": S("remote_addr", F.TEXT, "client_ip", 0),
    "realip_remote_addr": S("realip_remote_addr", F.TEXT, "client_ip", 1),
    "binary_remote_addr": S("binary_remote_addr", F.TEXT),
    "remote_port": S("remote_port", F.INT),
    "remote_user": S("remote_user", F.TEXT),
    "time_local": S("time", F.CLF_TIME_BARE, "ts"),
    "time_iso8601": S("time", F.ISO_TIME, "ts"),
    "msec": S("time", F.EPOCH_DECIMAL, "ts"),
    "request": S("request", F.REQUEST),
    "request_method": S("request_method", F.TEXT, "method", 1),
    "request_uri": S("request_uri", F.TARGET, priority=1),
    "uri": S("uri", F.TEXT, "path", 2),
    "document_uri": S("document_uri", F.TEXT, "path", 3),
    "args": S("args", F.TEXT, "query", 2),
    "query_string": S("query_string", F.TEXT, "query", 2),
    "server_protocol": S("server_protocol", F.TEXT, "protocol", 1),
    "status": S("status", F.STATUS, "status"),
    "body_bytes_sent": S("body_bytes_sent", F.BYTES, "bytes", 0),
    "bytes_sent": S("bytes_sent", F.BYTES, "bytes", 1),
    "request_length": S("request_length", F.BYTES),
    "request_time": S("request_time", F.DURATION_DECIMAL_S),
    "http_referer": S("http_referer", F.TEXT, "referer"),
    "http_user_agent": S("http_user_agent", F.TEXT, "user_agent"),
    "host": S("host", F.TEXT, "host", 0),
    "http_host": S("http_host", F.TEXT, "host", 1),
    "server_name": S("server_name", F.TEXT, "host", 2),
    "hostname": S("hostname", F.TEXT),
    "server_addr": S("server_addr", F.TEXT),
    "server_port": S("server_port", F.INT),
    "scheme": S("scheme", F.TEXT),
    "https": S("https", F.TEXT),
    "connection": S("connection", F.INT),
    "connection_requests": S("connection_requests", F.INT),
    "pipe": S("pipe", F.TEXT),
    "pid": S("pid", F.INT),
    "request_id": S("request_id", F.TEXT),
    "request_completion": S("request_completion", F.TEXT),
    "gzip_ratio": S("gzip_ratio", F.TEXT),
    "ssl_protocol": S("ssl_protocol", F.TEXT),
    "ssl_cipher": S("ssl_cipher", F.TEXT),
    "ssl_server_name": S("ssl_server_name", F.TEXT),
    "ssl_session_reused": S("ssl_session_reused", F.TEXT),
    "upstream_addr": S("upstream_addr", F.TEXT_LIST),
    "upstream_status": S("upstream_status", F.TEXT_LIST),
    "upstream_response_time": S("upstream_response_time", F.SECONDS_LIST),
    "upstream_connect_time": S("upstream_connect_time", F.SECONDS_LIST),
    "upstream_header_time": S("upstream_header_time", F.SECONDS_LIST),
    "upstream_response_length": S("upstream_response_length", F.TEXT_LIST),
    "upstream_bytes_received": S("upstream_bytes_received", F.TEXT_LIST),
    "upstream_bytes_sent": S("upstream_bytes_sent", F.TEXT_LIST),
    "upstream_cache_status": S("upstream_cache_status", F.TEXT),
}

_NAME_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
)
_ESCAPES: Mapping[str, F.Escape] = {
    "default": "backslash",
    "json": "json",
    "none": "none",
}


def spec_for(name: str) -> F.FieldSpec:
    """The spec of variable ``name``: a known one, or text kept in ``extra``."""
    return VARIABLES.get(name) or S(name, F.TEXT)


def _read_variable(fmt: str, start: int) -> tuple[str, int]:
    """The variable name at ``fmt[start] == "$"`` and where it ends."""
    if fmt[start + 1 : start + 2] == "{":
        close = fmt.find("}", start + 2)
        name = fmt[start + 2 : close] if close > 0 else ""
        end = close + 1 if close > 0 else len(fmt)
    else:
        end = start + 1
        while end < len(fmt) and fmt[end] in _NAME_CHARS:
            end += 1
        name = fmt[start + 1 : end]
    if not name or any(c not in _NAME_CHARS for c in name):
        bad = fmt[start : max(end, start + 2)]
        raise FormatError(
            f"invalid variable {bad!r} at char {start} of log_format {fmt!r}",
            format=fmt,
            position=start,
        )
    return name, end


def compile_parts(fmt: str) -> list[F.Part]:
    """The parts of a log_format string; raises :class:`FormatError`."""
    parts: list[F.Part] = []
    literal: list[str] = []
    i, count = 0, 0
    while i < len(fmt):
        if fmt[i] != "$":
            literal.append(fmt[i])
            i += 1
            continue
        name, end = _read_variable(fmt, i)
        if literal:
            parts.append(F.Literal("".join(literal)))
            literal = []
        count += 1
        parts.append(F.Field(fmt[i:end], spec_for(name), f"v{count}"))
        i = end
    if literal:
        parts.append(F.Literal("".join(literal)))
    return parts


def config_words(text: str) -> list[str]:
    """Split an nginx.conf directive into words, quotes removed.

    Single and double quotes group text; inside them a backslash escapes
    the next character (``\\n``, ``\\t`` and ``\\r`` are control characters,
    as in nginx). A ``;`` outside quotes ends the directive.
    """
    words: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
        elif char == ";":
            break
        elif char == "#":
            i = _line_end(text, i)
        elif char in "'\"":
            word, i = _quoted(text, i)
            words.append(word)
        else:
            start = i
            while i < len(text) and not text[i].isspace() and text[i] not in ";'\"":
                i += 1
            words.append(text[start:i])
    return words


def _line_end(text: str, start: int) -> int:
    end = text.find("\n", start)
    return len(text) if end < 0 else end


def _quoted(text: str, start: int) -> tuple[str, int]:
    quote, out, i = text[start], [], start + 1
    controls = {"n": "\n", "t": "\t", "r": "\r"}
    while i < len(text) and text[i] != quote:
        if text[i] == "\\" and i + 1 < len(text):
            out.append(controls.get(text[i + 1], text[i + 1]))
            i += 2
        else:
            out.append(text[i])
            i += 1
    if i >= len(text):
        raise FormatError(
            f"unterminated {quote} quote at char {start} of {text!r}",
            format=text,
            position=start,
        )
    return "".join(out), i + 1


def log_format_from_config(text: str) -> tuple[str, str | None, str]:
    """``log_format name [escape=..] 'a' 'b';`` → (format, name, escape)."""
    words = config_words(text)[1:]
    name = words.pop(0) if words else None
    escape = "default"
    if words and words[0].startswith("escape="):
        escape = words.pop(0)[len("escape=") :]
    if escape not in _ESCAPES:
        raise FormatError(
            f"unknown escape {escape!r} in {text!r}: use default, json or none",
            format=text,
        )
    if not words:
        raise FormatError(f"log_format without a format string: {text!r}", format=text)
    return "".join(words), name, escape


def compile_nginx(
    fmt: str, options: ParseOptions, escape: str = "default"
) -> FormatParser:
    """Compile an Nginx ``log_format`` string, or a whole ``log_format``
    directive. ``escape`` applies to a bare string (a directive says its own).

    Raises :class:`FormatError` naming a bad variable and its position.
    """
    text = fmt.strip()
    name: str | None = None
    if text.startswith("log_format"):
        text, name, escape = log_format_from_config(text)
    elif text.startswith("'") and text.rstrip(";").endswith("'"):
        # A format pasted with its nginx.conf quotes: 'a' 'b'. Double
        # quotes are left alone: formats often start and end with them.
        text = "".join(config_words(text))
    if escape not in _ESCAPES:
        raise FormatError(
            f"unknown escape {escape!r}: use default, json or none", format=fmt
        )
    if not text:
        raise FormatError("empty log_format", format=fmt)
    parts = compile_parts(text)
    label = KNOWN_FORMATS.get(text) or (f"nginx:{name}" if name else "nginx")
    return FormatParser(
        label,
        text,
        parts,
        options,
        escape=_ESCAPES[escape],
        recipe=(compile_nginx, (fmt, options, escape)),
    )


__all__ = [
    "KNOWN_FORMATS",
    "VARIABLES",
    "compile_nginx",
    "compile_parts",
    "config_words",
    "log_format_from_config",
    "spec_for",
]
