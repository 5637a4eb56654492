"""Write drawn requests as log lines, a whole block per Polars expression.

Formats:

``combined``
    Apache's combined format, ``%h %l %u %t "%r" %>s %b "%{Referer}i"
    "%{User-Agent}i"``, the most common access log there is. It has no
    response time, so a ``latency`` incident cannot be seen in it.
``combined-duration``
    The same followed by `` %D`` (response time in microseconds), which
    :data:`COMBINED_DURATION_LOGFORMAT` spells out for ``--format``.
``nginx-json``
    One JSON object per line, keys named after nginx variables
    (``remote_addr``, ``request``, ``status``, ``body_bytes_sent``,
    ``request_time`` in seconds, ``http_referer``, ``http_user_agent``,
    ``host``, ``time_iso8601``), as ``log_format … escape=json`` writes them.
``syslog``
    RFC 5424 lines from nginx on four hosts: the request's fields as
    structured data (``[http@32473 client_ip=… duration_ms=…]``), a short
    message, severity by status class; and 2 % of lines from other
    programs (sshd, CRON, systemd, the kernel), as a real syslog holds.
    The syslog preset keeps structured data in ``extra``, so a ``latency``
    incident is not seen in ``duration_ms`` either.

Malformed lines (see :data:`MALFORMED_KINDS`) replace ordinary ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from logweir.gen import vocab
from logweir.gen.traffic import PROTOCOLS, Requests

FORMATS = ("combined", "combined-duration", "nginx-json", "syslog")

#: Formats whose response time logweir's presets read into ``duration_ms``.
#: (``syslog`` carries it too, as structured data, which the syslog preset
#: keeps in ``extra``.)
FORMATS_WITH_DURATION = ("combined-duration", "nginx-json")

COMBINED_DURATION_LOGFORMAT = (
    '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %D'
)

#: Kinds of malformed line, each an equal share of the malformed ones:
#: ``truncated`` (cut inside its mandatory fields, as when a writer dies
#: mid-line), ``garbage`` (not a log line: an error-log or traceback line,
#: a TLS handshake, base64), ``empty`` and ``latin1`` (a user agent with a
#: byte that is not UTF-8; the line is otherwise whole and parses).
MALFORMED_KINDS = ("truncated", "garbage", "empty", "latin1")

_GARBAGE = (
    "PHP Fatal error:  Allowed memory size of 134217728 bytes exhausted "
    "(tried to allocate 20480 bytes) in /var/www/html/index.php on line 88",
    "Traceback (most recent call last):",
    '  File "/srv/shop/app/views.py", line 214, in checkout',
    "-- MARK --",
    "\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xfc\\x03\\x03\\x8a",
    "R0VUIC8gSFRUUC8xLjENCkhvc3Q6IGV4YW1wbGUuY29tDQoNCg==",
)

#: Stands for a Latin-1 "é" until the text is encoded: Polars strings must be
#: UTF-8, so the invalid byte is put in afterwards (a private-use character
#: that nothing else in the vocabulary holds).
_LATIN1_MARK = "\ue000"
_LATIN1 = MALFORMED_KINDS.index("latin1")
_LATIN1_MARK_BYTES = _LATIN1_MARK.encode()
_LATIN1_BYTE = b"\xe9"

_SYSLOG_HOSTS = ("web-1", "web-2", "web-3", "web-4")
_SYSLOG_PIDS = ("1187", "1203", "1176", "1214")

#: Other programs' lines in the ``syslog`` format: (facility, severity,
#: program, message).
_SYSTEM_LINES = (
    (
        4,
        6,
        "sshd",
        "Failed password for invalid user admin from 203.0.113.77 port 51234 ssh2",
    ),
    (
        4,
        6,
        "sshd",
        "Connection closed by authenticating user root 198.51.100.23 port 40022 "
        "[preauth]",
    ),
    (4, 6, "sshd", "Accepted publickey for deploy from 10.0.3.4 port 52110 ssh2"),
    (9, 6, "CRON", "(root) CMD (cd / && run-parts --report /etc/cron.hourly)"),
    (3, 6, "systemd", "Started Daily apt upgrade and clean activities."),
    (3, 5, "systemd", "logrotate.service: Succeeded."),
    (
        0,
        4,
        "kernel",
        "TCP: request_sock_TCP: Possible SYN flooding on port 443. Sending cookies.",
    ),
)
_SYSTEM_SHARE = 0.02
_LOCAL7 = 23


@dataclass(frozen=True)
class Vocabulary:
    """Every string a line may hold, escaped for one format."""

    ip: pl.Series
    agent: pl.Series
    method: pl.Series
    path: pl.Series
    host: pl.Series
    referer: pl.Series
    protocol: pl.Series


def _json_text(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _quoted_text(text: str) -> str:
    """As Apache writes a header into a quoted field."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def vocabulary(
    site: vocab.Site, ips: Sequence[str], agents: Sequence[str], fmt: str
) -> Vocabulary:
    """The site's strings, escaped as ``fmt`` writes them."""
    escape: Callable[[str], str] = _json_text if fmt == "nginx-json" else _quoted_text
    referers = list(site.referers)
    if fmt == "nginx-json":
        referers[0] = ""  # nginx writes an absent header as an empty string
    return Vocabulary(
        ip=pl.Series(list(ips), dtype=pl.String),
        agent=pl.Series([escape(a) for a in agents], dtype=pl.String),
        method=pl.Series(site.targets.method, dtype=pl.String),
        path=pl.Series([escape(p) for p in site.targets.path], dtype=pl.String),
        host=pl.Series(site.targets.host, dtype=pl.String),
        referer=pl.Series([escape(r) for r in referers], dtype=pl.String),
        protocol=pl.Series(PROTOCOLS, dtype=pl.String),
    )


#: How each format writes the second of a timestamp (strftime).
_STAMPS = {
    "combined": "%d/%b/%Y:%H:%M:%S +0000",
    "combined-duration": "%d/%b/%Y:%H:%M:%S +0000",
    "nginx-json": "%Y-%m-%dT%H:%M:%S+00:00",
    "syslog": "%Y-%m-%dT%H:%M:%S",
}


def render_block(
    words: Vocabulary,
    requests: Requests,
    timestamps_us: np.ndarray,
    malformed: np.ndarray,
    fmt: str,
    rng: np.random.Generator,
) -> bytes:
    """The block's lines, each ending in ``\\n``, as bytes.

    ``malformed`` holds, per line, -1 or an index into
    :data:`MALFORMED_KINDS`.
    """
    frame = _fields(words, requests, timestamps_us, malformed, fmt)
    if fmt in ("combined", "combined-duration"):
        line, keep = _combined(with_duration=fmt == "combined-duration")
    elif fmt == "nginx-json":
        line, keep = _nginx_json()
    else:
        frame = frame.with_columns(**_syslog_columns(frame.height, rng))
        line, keep = _syslog()
    lines = frame.select(line.alias("line")).to_series()
    bad = np.flatnonzero((malformed >= 0) & (malformed != _LATIN1))
    if bad.size:
        subset = frame[bad].select(line.alias("line"), keep.alias("keep"))
        spoiled = _malform(subset, malformed[bad], rng)
        lines = lines.scatter(bad, spoiled)
    return _join(lines, np.flatnonzero(malformed == _LATIN1))


def _join(lines: pl.Series, latin1_rows: np.ndarray) -> bytes:
    """``lines`` joined by newlines, the Latin-1 marks made real bytes."""
    joined = lines.str.join("\n").cast(pl.Binary).to_arrow()
    data = joined[0].as_py() + b"\n"
    if not latin1_rows.size:
        return bytes(data)
    # Start of each line in ``data``: the lengths before it plus newlines.
    lengths = lines.str.len_bytes().to_numpy().astype(np.int64)
    starts = np.concatenate(([0], np.cumsum(lengths + 1)[:-1]))
    pieces = []
    position = 0
    for row in latin1_rows:
        mark = data.find(_LATIN1_MARK_BYTES, int(starts[row]))
        pieces += [data[position:mark], _LATIN1_BYTE]
        position = mark + len(_LATIN1_MARK_BYTES)
    pieces.append(data[position:])
    return b"".join(pieces)


def _fields(
    words: Vocabulary,
    requests: Requests,
    timestamps_us: np.ndarray,
    malformed: np.ndarray,
    fmt: str,
) -> pl.DataFrame:
    agent = words.agent.gather(requests.client)
    latin1 = np.flatnonzero(malformed == _LATIN1)
    if latin1.size:
        agent = agent.scatter(latin1, agent.gather(latin1) + f" (Caf{_LATIN1_MARK})")
    return pl.DataFrame(
        {
            "stamp": _stamps(timestamps_us, _STAMPS[fmt]),
            "millis": pl.Series(timestamps_us // 1000 % 1000, dtype=pl.Int64),
            "ip": words.ip.gather(requests.client),
            "method": words.method.gather(requests.target),
            "path": words.path.gather(requests.target),
            "host": words.host.gather(requests.target),
            "protocol": words.protocol.gather(requests.protocol),
            "status": pl.Series(requests.status, dtype=pl.Int64),
            "size": pl.Series(requests.size_bytes, dtype=pl.Int64),
            "duration_ms": pl.Series(requests.duration_ms, dtype=pl.Float64),
            "referer": words.referer.gather(requests.referer),
            "agent": agent,
            "latin1": pl.Series(malformed == _LATIN1),
            "scanner": pl.Series(requests.klass == vocab.SCANNER),
        }
    )


def _stamps(timestamps_us: np.ndarray, pattern: str) -> pl.Series:
    """Each timestamp's second as ``pattern`` writes it.

    A block spans a few thousand distinct seconds at most, so each is
    formatted once and gathered: strftime is the costliest step otherwise.
    """
    seconds = timestamps_us // 1_000_000
    distinct, inverse = np.unique(seconds, return_inverse=True)
    formatted = (
        pl.Series(distinct * 1_000_000, dtype=pl.Int64)
        .cast(pl.Datetime("us", "UTC"))
        .dt.strftime(pattern)
    )
    return formatted.gather(inverse.ravel())


def _text(name: str) -> pl.Expr:
    return pl.col(name).cast(pl.String)


def _combined(with_duration: bool) -> tuple[pl.Expr, pl.Expr]:
    """The line, and how many leading characters must be whole for it to parse."""
    size = pl.when(pl.col("size") < 0).then(pl.lit("-")).otherwise(_text("size"))
    line = pl.concat_str(
        pl.col("ip"),
        pl.lit(" - - ["),
        pl.col("stamp"),
        pl.lit('] "'),
        pl.col("method"),
        pl.lit(" "),
        pl.col("path"),
        pl.lit(" "),
        pl.col("protocol"),
        pl.lit('" '),
        _text("status"),
        pl.lit(" "),
        size,
        pl.lit(' "'),
        pl.col("referer"),
        pl.lit('" "'),
        pl.col("agent"),
        pl.lit('"'),
    )
    if not with_duration:
        return line, line.str.len_chars()
    micros = (pl.col("duration_ms") * 1000).round().cast(pl.Int64).cast(pl.String)
    return pl.concat_str(line, pl.lit(" "), micros), line.str.len_chars()


def _seconds_text(milliseconds: pl.Expr) -> pl.Expr:
    """``12.3456`` ms as nginx writes ``$request_time``: ``0.012``."""
    whole = milliseconds.round().cast(pl.Int64)
    return pl.concat_str(
        (whole // 1000).cast(pl.String),
        pl.lit("."),
        (whole % 1000).cast(pl.String).str.zfill(3),
    )


def _nginx_json() -> tuple[pl.Expr, pl.Expr]:
    line = pl.concat_str(
        pl.lit('{"time_iso8601":"'),
        pl.col("stamp"),
        pl.lit('","remote_addr":"'),
        pl.col("ip"),
        pl.lit('","remote_user":"","request":"'),
        pl.col("method"),
        pl.lit(" "),
        pl.col("path"),
        pl.lit(" "),
        pl.col("protocol"),
        pl.lit('","status":'),
        _text("status"),
        pl.lit(',"body_bytes_sent":'),
        pl.col("size").clip(lower_bound=0).cast(pl.String),
        pl.lit(',"request_time":'),
        _seconds_text(pl.col("duration_ms")),
        pl.lit(',"http_referer":"'),
        pl.col("referer"),
        pl.lit('","http_user_agent":"'),
        pl.col("agent"),
        pl.lit('","host":"'),
        pl.col("host"),
        pl.lit('"}'),
    )
    return line, line.str.len_chars()


def _syslog_columns(count: int, rng: np.random.Generator) -> dict[str, pl.Series]:
    """Per line: the host that logged it, and whether it is another program's."""
    host_index = rng.integers(0, len(_SYSLOG_HOSTS), size=count)
    system_index = rng.integers(0, len(_SYSTEM_LINES), size=count)
    heads = [
        f"{facility * 8 + severity}>1 " for facility, severity, _, _ in _SYSTEM_LINES
    ]
    tails = [
        f"{program} {700 + number} - - {text}"
        for number, (_, _, program, text) in enumerate(_SYSTEM_LINES)
    ]
    return {
        "host_name": pl.Series(_SYSLOG_HOSTS).gather(host_index),
        "pid": pl.Series(_SYSLOG_PIDS).gather(host_index),
        "system": pl.Series(rng.random(count) < _SYSTEM_SHARE),
        "system_head": pl.Series(heads).gather(system_index),
        "system_tail": pl.Series(tails).gather(system_index),
    }


def _syslog() -> tuple[pl.Expr, pl.Expr]:
    severity = (
        pl.when(pl.col("status") >= 500)
        .then(3)
        .when(pl.col("status") >= 400)
        .then(4)
        .otherwise(6)
    )
    stamp = pl.concat_str(
        pl.col("stamp"),
        pl.lit("."),
        pl.col("millis").cast(pl.String).str.zfill(3),
        pl.lit("Z"),
    )
    head = pl.concat_str(
        pl.lit("<"),
        (pl.lit(_LOCAL7 * 8) + severity).cast(pl.String),
        pl.lit(">1 "),
        stamp,
        pl.lit(" "),
        pl.col("host_name"),
        pl.lit(" nginx "),
        pl.col("pid"),
        pl.lit(' access [http@32473 client_ip="'),
        pl.col("ip"),
        pl.lit('" method="'),
        pl.col("method"),
        pl.lit('" path="'),
        pl.col("path").str.replace_all("]", "\\]", literal=True),
        pl.lit('" status="'),
        _text("status"),
        pl.lit('" bytes="'),
        pl.col("size").clip(lower_bound=0).cast(pl.String),
        pl.lit('" duration_ms="'),
        pl.col("duration_ms").round(1).cast(pl.String),
        pl.lit('" host="'),
        pl.col("host"),
        pl.lit('"]'),
    )
    message = pl.concat_str(
        pl.lit(' "'),
        pl.col("method"),
        pl.lit(" "),
        pl.col("path"),
        pl.lit(" "),
        pl.col("protocol"),
        pl.lit('" '),
        _text("status"),
        pl.lit(' "'),
        pl.col("agent"),
        pl.lit('"'),
    )
    other = pl.concat_str(
        pl.lit("<"),
        pl.col("system_head"),
        stamp,
        pl.lit(" "),
        pl.col("host_name"),
        pl.lit(" "),
        pl.col("system_tail"),
    )
    system_on = pl.col("system") & ~pl.col("latin1") & ~pl.col("scanner")
    line = pl.when(system_on).then(other).otherwise(pl.concat_str(head, message))
    # A syslog message is free text: only a cut inside the header or the
    # structured data makes the line malformed.
    keep = pl.when(system_on).then(pl.lit(20)).otherwise(head.str.len_chars())
    return line.alias("line"), keep.alias("keep")


def _malform(
    lines: pl.DataFrame, kinds: np.ndarray, rng: np.random.Generator
) -> pl.Series:
    """Spoil ``lines`` (columns ``line`` and ``keep``) as ``kinds`` say.

    A truncated line keeps between 5 characters and all but one of its
    first ``keep``, which is what must be whole for the line to parse.
    """
    garbage = pl.Series(_GARBAGE).gather(rng.integers(0, len(_GARBAGE), kinds.size))
    cut = (5 + (pl.col("fraction") * (pl.col("keep") - 5)).floor()).cast(pl.Int64)
    spoiled = lines.with_columns(
        kind=pl.Series(kinds),
        garbage=garbage,
        fraction=pl.Series(rng.random(kinds.size)),
    ).select(
        pl.when(pl.col("kind") == MALFORMED_KINDS.index("truncated"))
        .then(pl.col("line").str.slice(0, cut))
        .when(pl.col("kind") == MALFORMED_KINDS.index("garbage"))
        .then(pl.col("garbage"))
        .otherwise(pl.lit(""))
        .alias("line")
    )
    return spoiled.to_series()
