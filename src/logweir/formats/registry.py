"""Turn what the user typed as a format into a compiled :class:`Parser`.

The dispatch is by shape, in this order: a preset name, ``regex:``,
``grok:``, an Nginx ``log_format`` (it has ``$`` variables), an Apache
``LogFormat`` (it has ``%`` directives). Anything else is a
:class:`~logweir.errors.FormatError` that lists the presets.
"""

from __future__ import annotations

from collections.abc import Callable

from logweir.errors import FormatError
from logweir.formats.base import ParseOptions, Parser

APACHE_COMMON = '%h %l %u %t "%r" %>s %b'
APACHE_COMBINED = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"'
APACHE_VHOST_COMBINED = '%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"'
NGINX_COMBINED = (
    '$remote_addr - $remote_user [$time_local] "$request" $status '
    '$body_bytes_sent "$http_referer" "$http_user_agent"'
)
NGINX_MAIN = NGINX_COMBINED + ' "$http_x_forwarded_for"'


def _apache(fmt: str) -> Callable[[ParseOptions], Parser]:
    def build(options: ParseOptions) -> Parser:
        from logweir.formats.apache import compile_apache

        return compile_apache(fmt, options)

    return build


def _nginx(fmt: str) -> Callable[[ParseOptions], Parser]:
    def build(options: ParseOptions) -> Parser:
        from logweir.formats.nginx import compile_nginx

        return compile_nginx(fmt, options)

    return build


def _json(options: ParseOptions) -> Parser:
    from logweir.formats.jsonl import JsonParser

    return JsonParser(options)


def _syslog(options: ParseOptions) -> Parser:
    from logweir.formats.syslog import SyslogParser

    return SyslogParser(options)


def _logfmt(options: ParseOptions) -> Parser:
    from logweir.formats.logfmt import LogfmtParser

    return LogfmtParser(options)


#: Preset name -> builder. Aliases point at the same builder.
PRESETS: dict[str, Callable[[ParseOptions], Parser]] = {
    "common": _apache(APACHE_COMMON),
    "combined": _apache(APACHE_COMBINED),
    "vhost_combined": _apache(APACHE_VHOST_COMBINED),
    "vhost_common": _apache('%v %h %l %u %t "%r" %>s %b'),
    "common_debian": _apache('%h %l %u %t "%r" %>s %O'),
    "combined_debian": _apache(
        '%h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"'
    ),
    "referer": _apache("%{Referer}i -> %U"),
    "agent": _apache("%{User-agent}i"),
    "nginx": _nginx(NGINX_COMBINED),
    "nginx_combined": _nginx(NGINX_COMBINED),
    "nginx_main": _nginx(NGINX_MAIN),
    "json": _json,
    "syslog": _syslog,
    "logfmt": _logfmt,
}


def compile_format(spec: str, options: ParseOptions | None = None) -> Parser:
    """Compile ``spec`` into a parser.

    Raises :class:`FormatError` naming the bad part of ``spec``.
    """
    options = options or ParseOptions()
    text = spec.strip()
    if not text:
        raise FormatError("empty format", format=spec)
    builder = PRESETS.get(text.lower())
    if builder is not None:
        return builder(options)
    if text.startswith("regex:"):
        from logweir.formats.custom import RegexParser

        return RegexParser(text[len("regex:") :], options)
    if text.startswith("grok:"):
        from logweir.formats.custom import compile_grok

        return compile_grok(text[len("grok:") :], options)
    if text.startswith("log_format") or "$" in text:
        from logweir.formats.nginx import compile_nginx

        return compile_nginx(text, options)
    if text.startswith("LogFormat") or "%" in text:
        from logweir.formats.apache import compile_apache

        return compile_apache(text, options)
    names = ", ".join(sorted(PRESETS))
    raise FormatError(
        f"unknown format {spec!r}: not a preset ({names}), and neither an "
        "Apache LogFormat (%-directives), an Nginx log_format ($variables), "
        "'regex:...' nor 'grok:...'",
        format=spec,
    )
