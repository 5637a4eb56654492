"""Apache and Nginx parsing against other projects' expectations (corpus).

Suites: jwodder/apachelogs (35 parse cases with every directive value, the
vhost_combined log with its expected parse, the bad directives), Vector's
VRL examples for parse_apache_log / parse_nginx_log / parse_common_log,
and lnav's access-log samples. Pass counts are in docs/formats.md.

Value mapping: apachelogs reads ``\\xhh`` escapes as Latin-1 characters;
logweir reads them as UTF-8 bytes when they form UTF-8 (falling back to
Latin-1 only when they do not), so expected strings are re-read that way
before comparing. Typed values are compared as the same instants,
durations and numbers.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from logweir.errors import FormatError
from logweir.formats import ParseOptions, compile_format
from logweir.formats.apache import compile_apache
from logweir.formats.fields import split_request_line
from logweir.formats.registry import NGINX_COMBINED, NGINX_MAIN
from logweir.schema import LineBatch

pytestmark = pytest.mark.corpus

APACHELOGS = "jwodder-apachelogs"
PARSE_CASES = 35


def read_lines(path: Path) -> LineBatch:
    """A corpus file as one batch, split the way a source splits it."""
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return LineBatch.from_strings(
        path.name, [line.decode("utf-8", "replace") for line in lines]
    )


def tagged(value: Any) -> Any:
    """A value of the apachelogs JSON, read back into Python."""
    if isinstance(value, dict):
        if "$datetime" in value:
            return datetime.fromisoformat(value["$datetime"])
        if "$timezone" in value:
            text = value["$timezone"]
            sign = -1 if text[0] == "-" else 1
            return sign * timedelta(hours=int(text[1:3]), minutes=int(text[4:6]))
        raise AssertionError(f"unknown tag in {value}")
    if isinstance(value, str) and any("\x80" <= c <= "\xff" for c in value):
        try:
            return value.encode("latin-1").decode("utf-8")
        except UnicodeError:
            return value
    return value


# ----------------------------------------------------------- apachelogs


def load(corpus: Path, name: str) -> Any:
    return json.loads((corpus / APACHELOGS / name).read_text("utf-8"))


def mapped_attributes(expected: dict[str, Any]) -> dict[str, Any]:
    """apachelogs' attributes that name a canonical column, as that column."""
    out: dict[str, Any] = {}

    def first(*names: str) -> Any:
        return next((expected[n] for n in names if n in expected), None)

    if (ip := first("remote_address", "remote_host")) is not None:
        out["client_ip"] = ip
    if "request_time" in expected:
        out["ts"] = tagged(expected["request_time"])
    if (status := first("final_status", "status", "original_status")) is not None:
        out["status"] = status
    if (size := first("bytes_sent", "bytes_out")) is not None:
        out["bytes"] = size
    headers = expected.get("headers_in", {})
    for header, column in (("Referer", "referer"), ("User-Agent", "user_agent")):
        if header in headers:
            out[column] = headers[header]
    if "virtual_host" in expected:
        out["host"] = expected["virtual_host"]
    if "request_line" in expected:
        parts = split_request_line(expected["request_line"])
        out.update(
            method=parts.method,
            path=parts.path,
            query=parts.query,
            protocol=parts.protocol,
        )
    else:
        if "request_method" in expected:
            out["method"] = expected["request_method"]
        if "request_uri" in expected:
            out["path"] = expected["request_uri"]
        if "request_query" in expected:
            query = expected["request_query"]
            out["query"] = query[1:] if query.startswith("?") else None
    if "request_duration_milliseconds" in expected:
        out["duration_ms"] = float(expected["request_duration_milliseconds"])
    return {k: tagged(v) for k, v in out.items()}


def check_entry(fmt: str, line: str, expected: dict[str, Any]) -> None:
    parser = compile_apache(fmt, ParseOptions())
    batch = LineBatch.from_strings("case", [line])
    values = parser.parse_fields(batch).to_dicts()[0]
    directives = {k: tagged(v) for k, v in expected["directives"].items()}
    assert values == directives
    result = parser.parse(batch)
    assert result.rejects.height == 0
    event = result.events.to_dicts()[0]
    attributes = mapped_attributes(expected)
    assert {k: event[k] for k in attributes} == attributes


def test_apachelogs_has_35_parse_cases(corpus: Path) -> None:
    assert len(load(corpus, "test_parse.cases.json")["cases"]) == PARSE_CASES


@pytest.mark.parametrize("index", range(PARSE_CASES))
def test_apachelogs_parse_case(corpus: Path, index: int) -> None:
    case = load(corpus, "test_parse.cases.json")["cases"][index]
    check_entry(case["format"], case["line"], case["expected"])


def test_apachelogs_named_formats_are_presets(corpus: Path) -> None:
    named = load(corpus, "test_parse.cases.json")["named_formats"]
    for name, fmt in named.items():
        assert compile_format(name.lower()).format_text == fmt


def test_apachelogs_vhost_combined_log(corpus: Path) -> None:
    expected = load(corpus, "vhost_combined.log-expected.json")["entries"]
    batch = read_lines(corpus / APACHELOGS / "vhost_combined.log")
    result = compile_format("vhost_combined").parse(batch)
    assert result.events.height == len(expected) == 6
    assert result.rejects.select(
        "line_number", "offset", "raw", "reason"
    ).to_dicts() == [
        {
            "line_number": 5,
            "offset": 667,
            "raw": "Bad line",
            "reason": "line does not match format at char 8 (expected ':' before "
            "%p, got end of line)",
        }
    ]
    for entry in expected:
        check_entry(entry["format"], entry["line"], entry["expected"])


@pytest.mark.parametrize(
    ("group", "kind", "wrap"),
    [
        ("test_malformed_directive", "invalid directive", False),
        ("test_unknown_directive", "unknown directive", False),
        ("test_malformed_time_directive", "invalid time conversion", True),
    ],
)
def test_apachelogs_bad_directives_are_refused(
    corpus: Path, group: str, kind: str, wrap: bool
) -> None:
    formats = load(corpus, "bad_directives.json")["groups"][group]
    assert formats
    for fmt in formats:
        text = "%{" + fmt + "}t" if wrap else fmt
        with pytest.raises(FormatError) as caught:
            compile_apache(text, ParseOptions())
        message = str(caught.value)
        assert message.startswith(kind), message
        if wrap:
            assert f"at char 0 of time format {fmt!r}" in message
            assert caught.value.position == 2
        else:
            assert f"at char 0 of LogFormat {fmt!r}" in message
            assert caught.value.position == 0


# ------------------------------------------------------------------ VRL

# Vector's key -> where logweir puts the value: ("event", column),
# ("field", token as in the format) or ("extra", key).
COMMON_KEYS = {
    "host": ("event", "client_ip"),
    "identity": ("extra", "remote_logname"),
    "user": ("extra", "remote_user"),
    "message": ("field", "%r"),
    "method": ("event", "method"),
    "path": ("event", "path"),
    "protocol": ("event", "protocol"),
    "size": ("event", "bytes"),
    "status": ("event", "status"),
    "timestamp": ("event", "ts"),
}
COMBINED_KEYS = COMMON_KEYS | {
    "agent": ("event", "user_agent"),
    "referrer": ("event", "referer"),
}
NGINX_KEYS = {
    "client": ("event", "client_ip"),
    "remote_addr": ("event", "client_ip"),
    "user": ("extra", "remote_user"),
    "remote_user": ("extra", "remote_user"),
    "request": ("field", "$request"),
    "status": ("event", "status"),
    "size": ("event", "bytes"),
    "body_bytes_size": ("event", "bytes"),
    "referer": ("event", "referer"),
    "http_referer": ("event", "referer"),
    "agent": ("event", "user_agent"),
    "http_user_agent": ("event", "user_agent"),
    "timestamp": ("event", "ts"),
    "compression": ("extra", "gzip_ratio"),
    "http_x_forwarded_for": ("extra", "http_x_forwarded_for"),
    "request_length": ("field", "$request_length"),
    "request_time": ("field", "$request_time"),
    "proxy_upstream_name": ("extra", "proxy_upstream_name"),
    "proxy_alternative_upstream_name": ("extra", "proxy_alternative_upstream_name"),
    "upstream_addr": ("extra", "upstream_addr"),
    "upstream_response_length": ("extra", "upstream_response_length"),
    "upstream_response_time": ("field", "$upstream_response_time"),
    "upstream_status": ("extra", "upstream_status"),
    "req_id": ("extra", "req_id"),
}
INGRESS = (
    NGINX_COMBINED + " $request_length $request_time [$proxy_upstream_name] "
    "[$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length "
    "$upstream_response_time $upstream_status $req_id"
)

# (file, example title) -> (logweir format, key map); None: unsupported.
VRL_EXAMPLES: dict[tuple[str, str], tuple[str, dict[str, tuple[str, str]]] | None] = {
    ("parse_apache_log", "Parse using Apache log format (common)"): (
        "common",
        COMMON_KEYS,
    ),
    ("parse_apache_log", "Parse using Apache log format (combined)"): (
        "combined",
        COMBINED_KEYS,
    ),
    ("parse_apache_log", "Parse using Apache log format (error)"): None,
    ("parse_nginx_log", "Parse via Nginx log format (combined)"): (
        NGINX_COMBINED + ' "$gzip_ratio"',
        NGINX_KEYS,
    ),
    ("parse_nginx_log", "Parse via Nginx log format (error)"): None,
    ("parse_nginx_log", "Parse via Nginx log format (ingress_upstreaminfo)"): (
        INGRESS,
        NGINX_KEYS,
    ),
    ("parse_nginx_log", "Parse via Nginx log format (main)"): (NGINX_MAIN, NGINX_KEYS),
    (
        "parse_common_log",
        "Parse using Common Log Format (with default timestamp format)",
    ): ("common", COMMON_KEYS),
    (
        "parse_common_log",
        "Parse using Common Log Format (with custom timestamp format)",
    ): ('%h %l %u [%{%Y-%m-%dT%H:%M:%S}tZ] "%r" %>s %b', COMMON_KEYS),
}
_RAW_STRING = re.compile(r"s'((?:[^'\\]|\\.)*)'")


def vrl_examples(corpus: Path) -> list[tuple[str, dict[str, Any]]]:
    examples = []
    for name in ("parse_apache_log", "parse_nginx_log", "parse_common_log"):
        doc = json.loads((corpus / "vrl/docs/generated" / f"{name}.json").read_text())
        examples += [(name, example) for example in doc["examples"]]
    return examples


def test_every_vrl_example_is_listed(corpus: Path) -> None:
    titles = {(name, example["title"]) for name, example in vrl_examples(corpus)}
    assert titles == set(VRL_EXAMPLES)


def vrl_expected(value: Any) -> Any:
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:]+Z", value):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


@pytest.mark.parametrize(
    "key", [k for k, v in VRL_EXAMPLES.items() if v is not None], ids=lambda k: k[1]
)
def test_vrl_example(corpus: Path, key: tuple[str, str]) -> None:
    example = next(e for n, e in vrl_examples(corpus) if (n, e["title"]) == key)
    spec = VRL_EXAMPLES[key]
    assert spec is not None
    fmt, keys = spec
    line = _RAW_STRING.search(example["source"])
    assert line is not None
    parser = compile_format(fmt)
    batch = LineBatch.from_strings("vrl", [line.group(1)])
    result = parser.parse(batch)
    assert result.rejects.height == 0
    event = result.events.to_dicts()[0]
    extra = {item["key"]: item["value"] for item in event["extra"]}
    fields = parser.parse_fields(batch).to_dicts()[0]  # type: ignore[attr-defined]
    for vrl_key, value in example["return"].items():
        where, name = keys[vrl_key]
        if where == "event":
            assert event[name] == vrl_expected(value), vrl_key
        elif where == "field":
            assert fields[name] == value, vrl_key
        else:
            assert extra[name] == str(value), vrl_key


# ---------------------------------------------------------------- lnav

SHOP = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" "%{X-Forwarded-For}i"'
LNAV_FILES = [
    ("logfile_access_log.0", "combined", 3, []),
    ("logfile_access_log.1", "combined", 1, []),
    (
        "logfile_bad_access_log.0",
        "combined",
        2,
        [
            (2, 'time: expected [dd/Mon/yyyy:HH:MM:SS +zzzz] at char 45, got ""GET"'),
        ],
    ),
    ("logfile_shop_access_log.0", SHOP, 1000, []),
    (
        "logfile_regexp_access_log.0",
        '%v:%p %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %D',
        2,
        [],
    ),
]


@pytest.mark.parametrize(("name", "fmt", "events", "rejects"), LNAV_FILES)
def test_lnav_access_logs(
    corpus: Path, name: str, fmt: str, events: int, rejects: list[tuple[int, str]]
) -> None:
    result = compile_format(fmt).parse(read_lines(corpus / "lnav/test" / name))
    assert result.events.height == events
    assert result.rejects.select("line_number", "reason").rows() == rejects
    assert result.events.get_column("ts").null_count() == 0
    assert result.events.get_column("status").null_count() == 0


def test_lnav_shop_log_values(corpus: Path) -> None:
    result = compile_format(SHOP).parse(
        read_lines(corpus / "lnav/test/logfile_shop_access_log.0")
    )
    first = result.events.row(0, named=True)
    assert first["ts"] == datetime.fromisoformat("2019-01-22T00:26:14+00:00")
    assert first["path"].startswith("/filter/27|13%20%D9%85")
    statuses = result.events.get_column("status").value_counts(sort=True)
    assert statuses.row(0) == (200, 938)


# Each lnav access_log.json sample line, with an Apache format that fits it.
LNAV_SAMPLE_FORMATS = [
    "combined",
    "combined",
    '%{%Y-%m-%dT%H:%M:%S}t %h %u %m "%U" -1 %>s %b "%{Referer}i" "%{User-Agent}i"',
    '%{%Y-%m-%dT%H:%M:%S}t %h %u %m %U -1 %>s %b "%{Referer}i" "%{User-Agent}i"',
    '%h %l  %u  %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"  %D',
    '%v %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"',
    '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %D',
    '%h %l %u [%{%d/%b/%Y %H:%M:%S}t] "%r" %>s %b',
    "common",
]


def test_lnav_access_log_format_samples(corpus: Path) -> None:
    definition = json.loads((corpus / "lnav/src/formats/access_log.json").read_text())
    samples = [s["line"] for s in definition["access_log"]["sample"]]
    assert len(samples) == len(LNAV_SAMPLE_FORMATS)
    for line, fmt in zip(samples, LNAV_SAMPLE_FORMATS, strict=True):
        result = compile_format(fmt).parse(LineBatch.from_strings("lnav", [line]))
        assert result.rejects.height == 0, (line, result.rejects.to_dicts())
        event = result.events.row(0, named=True)
        assert event["ts"] is not None and event["status"] is not None, line
