"""run_batch end to end on real traffic, checked against a slow reference.

The reference parses every line with a plain regex and ``datetime`` and
counts in dictionaries: nothing shared with the code under test.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from logweir.gen import generate
from logweir.pipeline.batch import ProgressState, RunSummary, run_batch
from logweir.pipeline.config import RunConfig
from logweir.pipeline.query import run_query
from logweir.pipeline.report import build_report
from logweir.windows.distinct import relative_error
from logweir.windows.quantiles import ALPHA as QUANTILE_ALPHA

SHOP_LOG = "lnav/test/logfile_shop_access_log.0"

LINE = re.compile(
    r'^(?P<ip>\S+) \S+ \S+ \[(?P<ts>[^\]]+)\] "(?P<request>[^"]*)" '
    r'(?P<status>\d{3}) (?P<bytes>\d+|-) "[^"]*" "[^"]*"'
)


@dataclass
class Reference:
    """Per-line facts of the shop log, the slow and obvious way."""

    lines: int
    ips: list[str]
    minutes: list[datetime]
    five_minutes: list[datetime]
    statuses: list[int]
    sizes: list[int]
    paths: list[str]


def _floor(moment: datetime, seconds: int) -> datetime:
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def read_reference(path: Path) -> Reference:
    ref = Reference(0, [], [], [], [], [], [])
    for line in path.read_text(encoding="utf-8").splitlines():
        match = LINE.match(line)
        assert match is not None, line
        moment = datetime.strptime(match["ts"], "%d/%b/%Y:%H:%M:%S %z")
        ref.lines += 1
        ref.ips.append(match["ip"])
        ref.minutes.append(_floor(moment, 60))
        ref.five_minutes.append(_floor(moment, 300))
        ref.statuses.append(int(match["status"]))
        ref.sizes.append(0 if match["bytes"] == "-" else int(match["bytes"]))
        ref.paths.append(match["request"].split(" ")[1].split("?")[0])
    return ref


def windows_of(out: Path, size_s: int, dimension: str = "all") -> dict[tuple, dict]:
    frame = run_query(
        out,
        "SELECT * FROM windows WHERE window_size_s = "
        f"{size_s} AND dimension = '{dimension}' ORDER BY window_start, key",
    )
    return {(row["window_start"], row["key"]): row for row in frame.to_dicts()}


def expected_windows(
    ref: Reference, starts: list[datetime]
) -> dict[datetime, dict[str, object]]:
    table: dict[datetime, dict[str, object]] = defaultdict(
        lambda: {"requests": 0, "bytes": 0, "clients": set(), "classes": Counter()}
    )
    for start, ip, status, size in zip(
        starts, ref.ips, ref.statuses, ref.sizes, strict=True
    ):
        row = table[start]
        row["requests"] += 1  # type: ignore[operator]
        row["bytes"] += size  # type: ignore[operator]
        row["clients"].add(ip)  # type: ignore[attr-defined]
        row["classes"][status // 100] += 1  # type: ignore[index]
    return table


@pytest.fixture(scope="module")
def shop_run(
    corpus: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[RunSummary, Reference]:
    out = tmp_path_factory.mktemp("shop") / "out"
    config = RunConfig(
        inputs=[str(corpus / SHOP_LOG)],
        out=out,
        format="combined",
        windows=["1m", "5m"],
        dimensions=["status_class"],
        workers=1,
        detect={"enabled": False},
    )
    return run_batch(config), read_reference(corpus / SHOP_LOG)


def test_every_line_becomes_one_event(shop_run: tuple[RunSummary, Reference]) -> None:
    summary, ref = shop_run
    assert (summary.lines, summary.events, summary.rejects) == (ref.lines, 1000, 0)
    counts = run_query(
        summary.out,
        'SELECT count(*) AS n, count(DISTINCT (source, "offset")) AS ids FROM events',
    )
    assert counts.row(0) == (1000, 1000)


@pytest.mark.parametrize("size_s", [60, 300])
def test_window_counts_and_bytes_equal_the_reference(
    shop_run: tuple[RunSummary, Reference], size_s: int
) -> None:
    summary, ref = shop_run
    starts = ref.minutes if size_s == 60 else ref.five_minutes
    expected = expected_windows(ref, starts)
    rows = windows_of(summary.out, size_s)
    assert sorted(start for start, _ in rows) == sorted(expected)
    bound = relative_error()
    for (start, _), row in rows.items():
        want = expected[start]
        assert row["requests"] == want["requests"]
        assert row["bytes"] == want["bytes"]
        classes = want["classes"]
        assert [row[f"status_{c}xx"] for c in range(1, 6)] == [
            classes[c]  # type: ignore[index]
            for c in range(1, 6)
        ]
        true_clients = len(want["clients"])  # type: ignore[arg-type]
        assert abs(row["unique_clients"] - true_clients) <= bound * true_clients
        assert row["duration_p50_ms"] is None  # the shop log has no durations


def test_status_class_rows_equal_the_reference(
    shop_run: tuple[RunSummary, Reference],
) -> None:
    summary, ref = shop_run
    expected = Counter(
        (minute, f"{status // 100}xx")
        for minute, status in zip(ref.minutes, ref.statuses, strict=True)
    )
    rows = windows_of(summary.out, 60, "status_class")
    assert {key: row["requests"] for key, row in rows.items()} == dict(expected)


def test_report_figures_equal_the_reference(
    shop_run: tuple[RunSummary, Reference],
) -> None:
    summary, ref = shop_run
    report = build_report(summary, top=5)
    assert report.requests == ref.lines
    assert report.unique_clients == len(set(ref.ips))
    assert report.bandwidth_bytes == sum(ref.sizes)
    statuses = Counter(ref.statuses)
    assert {row["status"]: row["requests"] for row in report.status_codes} == statuses
    per_minute = Counter(ref.minutes)
    assert report.requests_per_minute == sorted(per_minute.items())
    paths = sorted(Counter(ref.paths).items(), key=lambda kv: (-kv[1], kv[0]))
    assert [(r["key"], r["requests"]) for r in report.top_paths] == paths[:5]
    clients = sorted(Counter(ref.ips).items(), key=lambda kv: (-kv[1], kv[0]))
    assert [(r["key"], r["requests"]) for r in report.top_clients] == clients[:5]
    not_found = Counter(
        path
        for path, status in zip(ref.paths, ref.statuses, strict=True)
        if status == 404
    )
    top_404 = sorted(not_found.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    assert [(r["key"], r["requests"]) for r in report.top_404s] == top_404
    assert report.slowest_paths == []


def test_a_second_run_into_the_same_out_adds_no_copy(
    corpus: Path, tmp_path: Path
) -> None:
    config = RunConfig(
        inputs=[str(corpus / SHOP_LOG)],
        out=tmp_path,
        format="combined",
        workers=1,
        chunk_size=64 * 1024,
        batch_size=16 * 1024,
        detect={"enabled": False},
    )
    first = run_batch(config)
    windows_before = run_query(tmp_path, "SELECT * FROM windows ORDER BY ALL")
    second = run_batch(config)
    assert sorted(first.lake_files) == sorted(second.lake_files)
    counts = run_query(
        tmp_path,
        'SELECT count(*) AS n, count(DISTINCT (source, "offset")) AS ids, '
        "count(DISTINCT source) AS sources FROM events",
    )
    assert counts.row(0) == (1000, 1000, 1)
    windows_after = run_query(tmp_path, "SELECT * FROM windows ORDER BY ALL")
    assert windows_after.equals(windows_before)
    runs = run_query(tmp_path, "SELECT count(*) FROM runs")
    assert runs.item() == 2
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and ".tmp" in p.name]
    assert leftovers == []


def test_events_keep_their_source_and_offset(corpus: Path, tmp_path: Path) -> None:
    path = corpus / SHOP_LOG
    config = RunConfig(
        inputs=[str(path)],
        out=tmp_path,
        format="combined",
        workers=1,
        detect={"enabled": False},
    )
    run_batch(config)
    data = path.read_bytes()
    starts = [0] + [i + 1 for i, byte in enumerate(data[:-1]) if byte == 10]
    events = run_query(tmp_path, 'SELECT source, "offset" FROM events ORDER BY 2')
    assert events.get_column("offset").to_list() == starts
    assert set(events.get_column("source")) == {str(path)}


def test_format_is_detected_when_not_given(corpus: Path, tmp_path: Path) -> None:
    config = RunConfig(
        inputs=[str(corpus / SHOP_LOG)],
        out=tmp_path,
        workers=1,
        detect={"enabled": False},
    )
    summary = run_batch(config)
    (choice,) = summary.formats
    whole_lines_in_sample = (corpus / SHOP_LOG).read_bytes()[: 256 * 1024].count(b"\n")
    assert (choice.name, choice.detected) == ("combined", True)
    assert choice.sample_lines == whole_lines_in_sample == 833
    assert choice.matched == 833
    assert summary.events == 1000


def test_progress_reaches_the_whole_input(corpus: Path, tmp_path: Path) -> None:
    path = corpus / SHOP_LOG
    states: list[ProgressState] = []
    config = RunConfig(
        inputs=[str(path)],
        out=tmp_path,
        format="combined",
        workers=1,
        chunk_size=64 * 1024,
        detect={"enabled": False},
    )
    run_batch(config, progress=states.append)
    last = states[-1]
    size = path.stat().st_size
    assert (last.total_bytes, last.done_bytes, last.lines) == (size, size, 1000)
    assert all(a.done_bytes <= b.done_bytes for a, b in itertools.pairwise(states))


DURATION_LINE = re.compile(
    r'^(?P<ip>\S+) \S+ \S+ \[(?P<ts>[^\]]+)\] "[^"]*" \d{3} (?:\d+|-) '
    r'"[^"]*" "[^"]*" (?P<us>\d+)$'
)
DURATION_FORMAT = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %D'


def test_percentiles_and_unique_clients_are_within_their_bounds(
    tmp_path: Path,
) -> None:
    log = tmp_path / "access.log"
    generate(20_000, log, fmt="combined-duration", seed=3, malformed_share=0.0)
    durations: dict[datetime, list[float]] = defaultdict(list)
    clients: dict[datetime, set[str]] = defaultdict(set)
    for line in log.read_text(encoding="utf-8").splitlines():
        match = DURATION_LINE.match(line)
        assert match is not None, line
        start = _floor(datetime.strptime(match["ts"], "%d/%b/%Y:%H:%M:%S %z"), 300)
        durations[start].append(int(match["us"]) / 1000)
        clients[start].add(match["ip"])
    config = RunConfig(
        inputs=[str(log)],
        out=tmp_path / "out",
        format=DURATION_FORMAT,
        windows=["5m"],
        workers=1,
        detect={"enabled": False},
    )
    run_batch(config)
    rows = windows_of(config.out, 300)
    assert sorted(start for start, _ in rows) == sorted(durations)
    for (start, _), row in rows.items():
        values = sorted(durations[start])
        for column, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
            # Nearest rank: the ceil(q * n)-th smallest (docs/windows.md).
            true = values[math.ceil(round(q * len(values), 9)) - 1]
            got = row[f"duration_{column}_ms"]
            assert abs(got - true) <= QUANTILE_ALPHA * true + 1e-9, (start, column)
        true_clients = len(clients[start])
        bound = relative_error() * true_clients
        assert abs(row["unique_clients"] - true_clients) <= bound
