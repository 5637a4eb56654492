"""The log generator: determinism, counts, realism, and injected incidents.

Generated lines are read back with a plain regular expression (the slow,
obvious reference), never with the generator's own tables.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import io
import json
import math
import re
import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from logweir.errors import ConfigError
from logweir.gen import (
    BLOCK_LINES,
    COMBINED_DURATION_LOGFORMAT,
    DEFAULT_INCIDENTS,
    FORMATS,
    GenResult,
    Incident,
    IncidentLabel,
    generate,
    labels_path_for,
    parse_duration,
    parse_incident,
)

LINE = re.compile(
    r"^(?P<ip>\S+) - - \[(?P<ts>\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d) \+0000\] "
    r'"(?P<method>[A-Z]+) (?P<path>\S+) (?P<protocol>HTTP/\d\.\d)" '
    r'(?P<status>\d{3}) (?P<bytes>\d+|-) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)"'
    r"(?: (?P<micros>\d+))?$"
)


@dataclass(frozen=True)
class Row:
    ts: datetime
    ip: str
    path: str
    status: int
    bytes: int | None
    agent: str
    duration_ms: float | None


@functools.cache
def stamp(text: str) -> datetime:
    return datetime.strptime(text, "%d/%b/%Y:%H:%M:%S").replace(tzinfo=UTC)


def parse(data: bytes) -> tuple[list[Row], list[bytes]]:
    """Rows of the lines that match the combined format, and the others."""
    rows, others = [], []
    for raw in data.split(b"\n")[:-1]:
        match = LINE.match(raw.decode("utf-8", "replace"))
        if match is None:
            others.append(raw)
            continue
        rows.append(
            Row(
                ts=stamp(match["ts"]),
                ip=match["ip"],
                path=match["path"],
                status=int(match["status"]),
                bytes=None if match["bytes"] == "-" else int(match["bytes"]),
                agent=match["agent"],
                duration_ms=int(match["micros"]) / 1000 if match["micros"] else None,
            )
        )
    return rows, others


def make(lines: int, **options: object) -> tuple[bytes, GenResult]:
    out = io.BytesIO()
    result = generate(lines, out, **options)  # type: ignore[arg-type]
    return out.getvalue(), result


@pytest.fixture(scope="module")
def incident_log() -> tuple[list[Row], GenResult]:
    """The default incident set in a log that has response times."""
    data, result = make(
        170_000,
        fmt="combined-duration",
        seed=11,
        incidents=DEFAULT_INCIDENTS,
        malformed_share=0.0,
    )
    rows, others = parse(data)
    assert others == []
    return rows, result


# -- determinism and counts ---------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_same_seed_gives_the_same_bytes(fmt: str) -> None:
    first, _ = make(5000, fmt=fmt, seed=3, incidents=[Incident("scanner", 10, 20)])
    second, _ = make(5000, fmt=fmt, seed=3, incidents=[Incident("scanner", 10, 20)])
    other, _ = make(5000, fmt=fmt, seed=4, incidents=[Incident("scanner", 10, 20)])
    assert first == second
    assert first != other


@pytest.mark.parametrize("lines", [0, 1, 999, BLOCK_LINES, BLOCK_LINES + 1])
def test_exactly_the_lines_asked_for_are_written(lines: int) -> None:
    data, result = make(lines, seed=1)
    assert data.count(b"\n") == lines == result.lines
    assert result.bytes_written == len(data)
    assert data == b"" or data.endswith(b"\n")


def test_malformed_lines_are_the_documented_share_and_kinds() -> None:
    data, result = make(60_000, seed=5, malformed_share=0.02)
    rows, others = parse(data)
    counts = result.malformed
    total = sum(counts.values())
    expected = 60_000 * 0.02
    assert abs(total - expected) < 4 * math.sqrt(expected)
    for kind in ("truncated", "garbage", "empty", "latin1"):
        assert abs(counts[kind] - total / 4) < 4 * math.sqrt(total / 4), kind
    lines = data.split(b"\n")[:-1]
    assert lines.count(b"") == counts["empty"]
    # Truncated and garbage lines do not parse; Latin-1 ones do, with U+FFFD.
    assert len(others) == counts["truncated"] + counts["garbage"] + counts["empty"]
    assert sum(1 for line in lines if b"\xe9" in line) == counts["latin1"]
    assert sum(1 for row in rows if "\ufffd" in row.agent) == counts["latin1"]
    undecodable = 0
    for line in lines:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            undecodable += 1
    assert undecodable == counts["latin1"]


def test_no_malformed_and_no_disorder_give_clean_sorted_lines() -> None:
    data, result = make(30_000, seed=5, malformed_share=0.0, disorder_share=0.0)
    rows, others = parse(data)
    assert others == []
    assert result.malformed == {"truncated": 0, "garbage": 0, "empty": 0, "latin1": 0}
    assert result.out_of_order == 0
    assert [r.ts for r in rows] == sorted(r.ts for r in rows)


def test_some_lines_come_late_by_a_few_seconds() -> None:
    data, result = make(50_000, seed=5, malformed_share=0.0)
    rows, _ = parse(data)
    latest = rows[0].ts
    late_by = []
    for row in rows:
        if row.ts < latest:
            late_by.append((latest - row.ts).total_seconds())
        latest = max(latest, row.ts)
    # About 1 % of lines are written 0.5 to 5 s late; at one-second
    # resolution, most of them show.
    assert 0.003 * 50_000 < len(late_by) < 0.012 * 50_000
    assert max(late_by) <= 6
    assert result.out_of_order > len(late_by)  # counted at microseconds


def test_rate_and_start_set_the_time_span() -> None:
    start = datetime(2023, 12, 31, 23, 59, tzinfo=UTC)
    data, result = make(36_000, seed=2, rate_per_s=100.0, start=start)
    rows, _ = parse(data)
    assert result.first_ts is not None and result.last_ts is not None
    assert start <= result.first_ts < start + timedelta(seconds=1)
    span_s = (result.last_ts - result.first_ts).total_seconds()
    assert 360 * 0.97 < span_s < 360 * 1.03
    assert rows[0].ts.year == 2023 and rows[-1].ts.year == 2024


# -- realism ------------------------------------------------------------------


def test_traffic_looks_like_a_web_site(
    incident_log: tuple[list[Row], GenResult],
) -> None:
    rows, result = incident_log
    normal = [r for r in rows if r.ts < result.start + timedelta(minutes=20)]
    statuses = Counter(r.status for r in normal)
    share = {code: count / len(normal) for code, count in statuses.items()}
    assert 0.65 < share[200] < 0.85
    assert 0.05 < share[304] < 0.15
    assert 0.01 < share[404] < 0.05
    assert sum(v for k, v in share.items() if k >= 500) < 0.01
    paths = Counter(r.path for r in rows)
    assert len(paths) > 2000
    top_share = paths.most_common(1)[0][1] / len(rows)
    assert 0.03 < top_share < 0.15  # Zipf: a few targets carry most requests
    assert "/wp-login.php" in paths or "/.env" in paths
    clients = Counter(r.ip for r in normal)
    assert len(clients) > 1000
    assert clients.most_common(1)[0][1] / len(normal) < 0.06
    assert any(":" in ip for ip in clients)  # some IPv6
    agents = {r.agent for r in rows}
    assert any("Googlebot" in a for a in agents)
    assert any(a.startswith("curl/") for a in agents)
    assert all(r.bytes is None for r in rows if r.status == 304)
    latencies = sorted(r.duration_ms for r in normal if r.duration_ms is not None)
    median = latencies[len(latencies) // 2]
    p99 = latencies[int(len(latencies) * 0.99)]
    assert 2 < median < 100 and p99 > 10 * median  # long-tailed


def test_seasonal_traffic_follows_the_day() -> None:
    start = datetime(2024, 6, 3, tzinfo=UTC)
    data, _ = make(
        86_400, seed=8, rate_per_s=1.0, start=start, seasonal=True, malformed_share=0
    )
    rows, _ = parse(data)
    per_hour = Counter(r.ts.hour for r in rows if r.ts < start + timedelta(days=1))
    quietest = min(per_hour, key=lambda hour: per_hour[hour])
    busiest = max(per_hour, key=lambda hour: per_hour[hour])
    assert 2 <= quietest <= 5
    assert 10 <= busiest <= 16
    assert per_hour[busiest] > 4 * per_hour[quietest]
    assert 0.97 < sum(per_hour.values()) / 86_400 <= 1.0


# -- incidents ----------------------------------------------------------------


def per_second(rows: list[Row], start: datetime, end: datetime) -> float:
    return sum(1 for r in rows if start <= r.ts < end) / (end - start).total_seconds()


def label(result: GenResult, kind: str) -> IncidentLabel:
    [found] = [i for i in result.incidents if i.kind == kind]
    return found


def test_incident_labels_match_the_default_set(
    incident_log: tuple[list[Row], GenResult],
) -> None:
    _, result = incident_log
    start = result.start
    assert [
        (
            i.kind,
            (i.start - start).total_seconds() / 60,
            (i.end - start).total_seconds() / 60,
        )
        for i in result.incidents
    ] == [
        ("traffic_spike", 20, 23),
        ("error_rate", 30, 32),
        ("latency", 40, 45),
        ("scanner", 52, 55),
        ("traffic_drop", 62, 67),
    ]
    assert all(i.observable for i in result.incidents)


@pytest.mark.parametrize(
    ("kind", "factor"), [("traffic_spike", 5.0), ("traffic_drop", 0.2)]
)
def test_traffic_incidents_scale_the_request_rate(
    incident_log: tuple[list[Row], GenResult], kind: str, factor: float
) -> None:
    rows, result = incident_log
    incident = label(result, kind)
    before = per_second(rows, incident.start - timedelta(minutes=5), incident.start)
    during = per_second(rows, incident.start, incident.end)
    assert during / before == pytest.approx(factor, rel=0.08)


def test_error_incident_answers_ten_percent_5xx(
    incident_log: tuple[list[Row], GenResult],
) -> None:
    rows, result = incident_log
    incident = label(result, "error_rate")
    inside = [r for r in rows if incident.start <= r.ts < incident.end]
    share = sum(1 for r in inside if r.status >= 500) / len(inside)
    sigma = math.sqrt(0.1 * 0.9 / len(inside))
    assert abs(share - 0.10) < 4 * sigma
    before = [
        r
        for r in rows
        if incident.start - timedelta(minutes=5) <= r.ts < incident.start
    ]
    assert sum(1 for r in before if r.status >= 500) / len(before) < 0.015


def test_latency_incident_triples_response_times(
    incident_log: tuple[list[Row], GenResult],
) -> None:
    rows, result = incident_log
    incident = label(result, "latency")

    def median_ms(start: datetime, end: datetime) -> float:
        return statistics.median(
            r.duration_ms for r in rows if start <= r.ts < end and r.duration_ms
        )

    before = median_ms(incident.start - timedelta(minutes=5), incident.start)
    during = median_ms(incident.start, incident.end)
    assert during / before == pytest.approx(3.0, rel=0.12)


def test_scanner_incident_is_one_client_probing_at_fifty_per_second(
    incident_log: tuple[list[Row], GenResult],
) -> None:
    rows, result = incident_log
    incident = label(result, "scanner")
    mine = [r for r in rows if r.ip == incident.client_ip]
    assert all(
        incident.start <= r.ts < incident.end + timedelta(seconds=6) for r in mine
    )
    assert len(mine) / 180 == pytest.approx(50, rel=0.06)
    assert sum(1 for r in mine if r.status == 404) / len(mine) > 0.85
    assert len({r.agent for r in mine}) == 1


def test_an_incident_past_the_end_of_the_log_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        make(1000, incidents=[Incident("error_rate", 600, 120)])
    assert str(caught.value) == (
        "incident error_rate@10m/2m ends 12m into the log, but 1000 lines at 30 "
        "requests/s last only 34s: give --lines 23400 or more, or a higher --rate"
    )


def test_labels_are_written_beside_a_file_output(tmp_path: Path) -> None:
    path = tmp_path / "web.log.gz"
    incidents = [Incident("scanner", 30, 60, 20.0), Incident("latency", 120, 60)]
    result = generate(9000, path, seed=2, incidents=incidents)
    data, same = make(9000, seed=2, incidents=incidents)
    assert gzip.decompress(path.read_bytes()) == data
    labels = json.loads(labels_path_for(path).read_text())
    assert labels == json.loads(json.dumps(same.labels()))
    assert [
        (i["kind"], i["start"], i["end"], i["observable"]) for i in labels["incidents"]
    ] == [
        ("scanner", "2024-06-03T08:00:30+00:00", "2024-06-03T08:01:30+00:00", True),
        ("latency", "2024-06-03T08:02:00+00:00", "2024-06-03T08:03:00+00:00", False),
    ]
    assert labels["incidents"][0]["magnitude"] == 20.0
    assert labels["incidents"][0]["client_ip"] == result.incidents[0].client_ip
    # No temporary file is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "web.log.gz",
        "web.log.gz.incidents.json",
    ]


# -- incident specs -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("traffic_spike@20m/3m", Incident("traffic_spike", 1200, 180)),
        ("scanner@1h5m/90s:20", Incident("scanner", 3900, 90, 20.0)),
        ("error_rate@0/2m:0.25", Incident("error_rate", 0, 120, 0.25)),
        ("latency@45/300s", Incident("latency", 45, 300)),
    ],
)
def test_incident_specs_parse(text: str, expected: Incident) -> None:
    assert parse_incident(text) == expected
    assert parse_incident(expected.spec()) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "spike",
            "bad incident 'spike': write KIND@OFFSET/DURATION[:MAGNITUDE], e.g. "
            "error_rate@30m/2m or scanner@1h/90s:20",
        ),
        (
            "spike@1m/2m",
            "bad incident 'spike@1m/2m': unknown kind 'spike' (known: traffic_spike, "
            "traffic_drop, error_rate, latency, scanner)",
        ),
        (
            "latency@1.5m/2m",
            "bad incident 'latency@1.5m/2m': '1.5m' is not a duration such as 90s, 5m "
            "or 1h30m",
        ),
        ("latency@1m/0s", "bad incident 'latency@1m/0s': its duration is zero"),
        (
            "error_rate@1m/1m:1.5",
            "bad incident 'error_rate@1m/1m:1.5': the magnitude must be a share in "
            "(0, 1]",
        ),
        (
            "latency@1m/1m:0",
            "bad incident 'latency@1m/1m:0': the magnitude must be above 0",
        ),
    ],
)
def test_bad_incident_specs_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_incident(text)
    assert str(caught.value) == message


def test_durations() -> None:
    assert [parse_duration(t) for t in ("90", "90s", "5m", "1h30m", "2h")] == [
        90,
        90,
        300,
        5400,
        7200,
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lines": -1}, "--lines must be 0 or more, not -1"),
        (
            {"fmt": "apache"},
            "unknown generator format 'apache' (known: combined, combined-duration, "
            "nginx-json, syslog)",
        ),
        ({"rate_per_s": 0.0}, "--rate must be above 0 requests/s, not 0"),
        (
            {"start": datetime(2024, 1, 1)},  # noqa: DTZ001 - the error under test
            "start time 2024-01-01T00:00:00 has no time zone",
        ),
        ({"malformed_share": 1.0}, "the malformed share must be in [0, 1), not 1"),
    ],
)
def test_bad_arguments_are_config_errors(
    options: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"lines": 10, **options}
    lines = arguments.pop("lines")
    with pytest.raises(ConfigError) as caught:
        generate(lines, io.BytesIO(), **arguments)  # type: ignore[arg-type]
    assert str(caught.value) == message


# -- the parsers read what the generator writes --------------------------------

needs_apache = pytest.mark.skipif(
    importlib.util.find_spec("logweir.formats.apache") is None,
    reason="the Apache parser is not built yet",
)


@needs_apache
@pytest.mark.parametrize(
    ("fmt", "spec"),
    [("combined", "combined"), ("combined-duration", COMBINED_DURATION_LOGFORMAT)],
)
def test_the_apache_parser_reads_generated_lines_like_the_reference(
    fmt: str, spec: str
) -> None:
    from logweir.formats import compile_format
    from logweir.sources import read_stream

    data, result = make(20_000, fmt=fmt, seed=9, malformed_share=0.02)
    rows, _ = parse(data)
    parser = compile_format(spec)
    events, rejects, skipped = [], 0, 0
    for batch in read_stream(io.BytesIO(data), "gen"):
        parsed = parser.parse(batch)
        events.append(parsed.events)
        rejects += parsed.rejects.height
        skipped += parsed.skipped
    assert rejects == result.malformed["truncated"] + result.malformed["garbage"]
    assert skipped == result.malformed["empty"]
    frame = pl.concat(events)
    assert frame.get_column("status").to_list() == [r.status for r in rows]
    assert frame.get_column("bytes").to_list() == [r.bytes for r in rows]
    assert frame.get_column("client_ip").to_list() == [r.ip for r in rows]
    assert frame.get_column("ts").to_list() == [r.ts for r in rows]
    if fmt == "combined-duration":
        assert frame.get_column("duration_ms").to_list() == pytest.approx(
            [r.duration_ms for r in rows]
        )
