"""Shipper -> topic -> consumers -> lake, against a real broker, as processes.

Every command runs as ``python -m logweir ...`` in its own process, so that
a crash is a real SIGKILL. Each test checks the lake and the windows
against what ``logweir run`` makes of the same lines read from a file.
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource
from kafka_helpers import Broker

from logweir.pipeline.checkpoint import load_checkpoint
from logweir.pipeline.ship import CHECKPOINT_TOPIC, read_positions
from logweir.sources.kafka import EXIT_AT_COMMIT_ENV, EXIT_AT_COMMIT_STATUS

pytestmark = pytest.mark.slow

#: The server's own LogFormat, with response times (%D, microseconds).
FORMAT = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %D'
DEADLINE_S = 90.0
#: A consumer with lines to take checkpoints within this (it joins first).
IDLE_CHECKPOINT_S = 20.0
START = datetime(2024, 6, 3, 8, 0, tzinfo=UTC)


def log_lines(count: int, first: int = 0) -> list[str]:
    """Access log lines in time order: 31 clients, 23 paths, a bad line at 500.

    Few distinct values, so that every window column merges exactly
    (top lists are only approximate past their capacity).
    """
    lines = []
    for i in range(first, first + count):
        if i % 500 == 499:
            lines.append(f"not a log line {i}")
            continue
        ts = (START + timedelta(seconds=i // 4)).strftime("%d/%b/%Y:%H:%M:%S +0000")
        status = (200, 200, 200, 304, 404, 500)[i % 6]
        lines.append(
            f'10.0.{i % 31}.{i % 7} - - [{ts}] "GET /p{i % 23} HTTP/1.1" {status} '
            f'{100 + i % 900} "-" "agent-{i % 5}" {1000 + (i * 37) % 90000}'
        )
    return lines


def logweir(*args: str) -> list[str]:
    return [sys.executable, "-m", "logweir", *args]


def run_ok(*args: str, timeout_s: float = DEADLINE_S) -> str:
    done = subprocess.run(
        logweir(*args), capture_output=True, text=True, timeout=timeout_s, check=False
    )
    assert done.returncode == 0, f"{args[0]} failed:\n{done.stderr[-3000:]}"
    return done.stdout


def consume(
    out: Path, url: str, group: str, consumer_id: str, idle: str = "3s"
) -> None:
    run_ok(
        "run", "--source", url, "--group", group, "--consumer-id", consumer_id,
        "--out", str(out), "--format", FORMAT, "--no-detect", "--quiet",
        "--commit-interval", "0.2s", "--exit-when-idle", idle,
    )  # fmt: skip


def windows(store: Path) -> pl.DataFrame:
    with duckdb.connect(str(store), read_only=True) as db:
        return db.sql("SELECT * FROM windows ORDER BY ALL").pl()


def lake(out: Path) -> pl.DataFrame:
    files = sorted((out / "events").rglob("*.parquet"))
    return pl.read_parquet(files, hive_partitioning=False) if files else pl.DataFrame()


def batch_reference(tmp_path: Path, lines: list[str]) -> tuple[pl.DataFrame, Path]:
    """``logweir run`` over the same lines in a file: windows and the folder."""
    log = tmp_path / "reference.log"
    log.write_text("\n".join(lines) + "\n")
    out = tmp_path / "reference"
    run_ok("run", str(log), "--out", str(out), "--format", FORMAT, "--no-detect", "-q")
    return windows(out / "logweir.duckdb"), out


def event_rows(frame: pl.DataFrame) -> collections.Counter[tuple[object, ...]]:
    columns = ["ts", "client_ip", "path", "status", "bytes", "duration_ms"]
    return collections.Counter(frame.select(columns).iter_rows())


def produce(bootstrap: str, topic: str, lines: list[str]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for line in lines:
        producer.produce(topic, line, line.split(" ", 1)[0])
    assert producer.flush(60) == 0


def topic_lines(bootstrap: str, topic: str, partitions: int) -> list[str]:
    """Every committed line of ``topic``, read_committed, in no order."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    ends = {}
    for p in range(partitions):
        _, ends[p] = consumer.get_watermark_offsets(TopicPartition(topic, p), 30)
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    found: list[str] = []
    deadline = time.monotonic() + DEADLINE_S
    while True:
        for message in consumer.consume(10_000, 0.2):
            if message.error() is None:
                found.append((message.value() or b"").decode())
        positions = consumer.position(
            [TopicPartition(topic, p) for p in range(partitions)]
        )
        # An empty partition has no position: nothing to read there.
        if all(
            tp.offset >= ends[tp.partition] or not ends[tp.partition]
            for tp in positions
        ):
            break
        assert time.monotonic() < deadline, "could not read the topic to its end"
    consumer.close()
    return found


def test_shipped_file_lands_in_the_lake_once_with_batch_windows(
    kafka_broker: Broker, new_topic: Callable[[int], str], tmp_path: Path
) -> None:
    topic = new_topic(4)
    url = f"kafka://{kafka_broker.bootstrap}/{topic}"
    lines = log_lines(4000)
    log = tmp_path / "access.log"
    log.write_text("\n".join(lines) + "\n")
    run_ok(
        "ship", "--to", url, "--id", f"ship-{topic}", "--format", FORMAT,
        "--exit-when-idle", "1s", str(log),
    )  # fmt: skip
    out = tmp_path / "out"
    consume(out, url, f"g-{topic}", "c1")
    run_ok("merge", str(out))
    reference, reference_out = batch_reference(tmp_path, lines)
    events = lake(out)
    assert events.height == 4000 - 8  # the 8 bad lines are rejects
    assert events.select("source", "offset").is_unique().all()
    assert event_rows(events) == event_rows(lake(reference_out))
    assert windows(out / "logweir.duckdb").equals(reference)
    # One client, one partition: the shipper keyed lines by client IP.
    per_client = events.group_by("client_ip").agg(pl.col("source").n_unique())
    assert per_client.get_column("source").max() == 1


def test_shipper_killed_mid_stream_resumes_without_loss_or_repeat(
    kafka_broker: Broker, new_topic: Callable[[int], str], tmp_path: Path
) -> None:
    topic = new_topic(3)
    url = f"kafka://{kafka_broker.bootstrap}/{topic}"
    shipper_id = f"ship-{topic}"
    log = tmp_path / "access.log"
    lines = log_lines(30_000)
    log.write_text("\n".join(lines[:10_000]) + "\n")
    args = [
        "ship", "--to", url, "--id", shipper_id, "--format", FORMAT,
        "--commit-interval", "0.1s", str(log),
    ]  # fmt: skip
    shipper = subprocess.Popen(logweir(*args), stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + DEADLINE_S
        while (
            read_positions(kafka_broker.bootstrap, CHECKPOINT_TOPIC, shipper_id) is None
        ):
            assert time.monotonic() < deadline, "the shipper never committed"
            time.sleep(0.05)
        with log.open("a") as appending:  # lines keep coming while it dies
            for start in range(10_000, 30_000, 2_000):
                appending.write("\n".join(lines[start : start + 2_000]) + "\n")
                appending.flush()
                if start == 14_000:
                    shipper.send_signal(signal.SIGKILL)
    finally:
        shipper.kill()
        shipper.wait()
    run_ok(*args, "--exit-when-idle", "1s")
    assert collections.Counter(topic_lines(kafka_broker.bootstrap, topic, 3)) == (
        collections.Counter(lines)
    )


def _ship_lines(
    broker: Broker, topic: str, tmp_path: Path, lines: list[str], *flags: str
) -> dict[str, object]:
    log = tmp_path / "access.log"
    log.write_text("\n".join(lines) + "\n")
    printed = run_ok(
        "ship", "--to", f"kafka://{broker.bootstrap}/{topic}", "--id",
        f"ship-{topic}", "--exit-when-idle", "0.5s", "--json", *flags, str(log),
    )  # fmt: skip
    summary: dict[str, object] = json.loads(printed)
    return summary


def test_shipping_without_transactions_detects_the_format_and_loses_nothing(
    kafka_broker: Broker, new_topic: Callable[[int], str], tmp_path: Path
) -> None:
    topic = new_topic(2)
    # Plain combined lines (no %D): detected, so keyed by client IP.
    lines = [line.rsplit(" ", 1)[0] for line in log_lines(1500)]
    summary = _ship_lines(
        kafka_broker, topic, tmp_path, lines, "--no-transactions", "--compression",
        "lz4",
    )  # fmt: skip
    assert summary["format"] == "combined"
    assert (summary["lines"], summary["unkeyed_lines"]) == (1500, 3)  # 3 bad
    assert sorted(topic_lines(kafka_broker.bootstrap, topic, 2)) == sorted(lines)


def test_lines_of_no_known_format_are_keyed_by_their_file(
    kafka_broker: Broker, new_topic: Callable[[int], str], tmp_path: Path
) -> None:
    topic = new_topic(3)
    lines = [f"job {i} finished step {i % 7}" for i in range(800)]
    summary = _ship_lines(kafka_broker, topic, tmp_path, lines)
    assert summary["format"] is None
    assert (summary["lines"], summary["unkeyed_lines"]) == (800, 800)
    consumer = Consumer({"bootstrap.servers": kafka_broker.bootstrap, "group.id": "x"})
    sizes = [
        consumer.get_watermark_offsets(TopicPartition(topic, p), 30)[1]
        for p in range(3)
    ]
    consumer.close()
    assert sorted(sizes)[-1] >= 800  # one file, one key, one partition
    assert sorted(topic_lines(kafka_broker.bootstrap, topic, 3)) == sorted(lines)


@pytest.fixture
def feeder(kafka_broker: Broker) -> Iterator[Callable[[str, list[str]], None]]:
    """Produces lines to a topic from a thread, in slices, while a test runs."""
    threads: list[threading.Thread] = []

    def feed(topic: str, lines: list[str]) -> None:
        def work() -> None:
            for start in range(0, len(lines), 1_000):
                produce(kafka_broker.bootstrap, topic, lines[start : start + 1_000])
                time.sleep(0.15)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        threads.append(thread)

    yield feed
    for thread in threads:
        thread.join(timeout=DEADLINE_S)


def test_consumer_killed_mid_batch_leaves_one_copy_of_every_line(
    kafka_broker: Broker,
    new_topic: Callable[[int], str],
    tmp_path: Path,
    feeder: Callable[[str, list[str]], None],
) -> None:
    """SIGKILL at seeded random moments while lines stream in: inside a
    batch, between lake files and their checkpoint, or between the
    checkpoint and the broker commit, wherever the moment falls."""
    topic = new_topic(4)
    url = f"kafka://{kafka_broker.bootstrap}/{topic}"
    lines = log_lines(40_000)
    feeder(topic, lines)
    out = tmp_path / "out"
    args = [
        "run", "--source", url, "--group", f"g-{topic}", "--consumer-id", "c1",
        "--out", str(out), "--format", FORMAT, "--no-detect", "--quiet",
        "--commit-interval", "0.1s",
    ]  # fmt: skip
    checkpoint = out / "consumers" / "c1" / "checkpoint" / "state"
    rng = random.Random(20261204)
    unfinished = 0
    for _ in range(5):
        consumer = subprocess.Popen(logweir(*args), stderr=subprocess.DEVNULL)
        idle = False
        try:
            # Wait for this run's first checkpoint (it has joined the group
            # and is writing), then let it go on for a random moment. A run
            # that finds every line done writes none: it is killed idle.
            seen = checkpoint.stat().st_mtime_ns if checkpoint.exists() else 0
            deadline = time.monotonic() + IDLE_CHECKPOINT_S
            while not (checkpoint.exists() and checkpoint.stat().st_mtime_ns != seen):
                assert consumer.poll() is None, "the consumer stopped by itself"
                if time.monotonic() >= deadline:
                    idle = True
                    break
                time.sleep(0.005)
            else:
                time.sleep(rng.uniform(0.0, 0.6))
        finally:
            consumer.send_signal(signal.SIGKILL)
            consumer.wait()
        done = _lake_rows(out) >= 40_000 - 80
        assert done or not idle, "no checkpoint was written, and lines are missing"
        unfinished += not done
        if idle:
            break
    # The kills fell while there was work left, not after the feed was done.
    assert unfinished >= 3, unfinished
    consume(out, url, f"g-{topic}", "c1")
    events = lake(out / "consumers" / "c1")
    assert events.height == 40_000 - 80
    assert events.select("source", "offset").is_unique().all()
    reference, reference_out = batch_reference(tmp_path, lines)
    assert event_rows(events) == event_rows(lake(reference_out))
    run_ok("merge", str(out))
    assert windows(out / "logweir.duckdb").equals(reference)


def test_a_partition_ahead_in_time_makes_no_event_of_another_late(
    kafka_broker: Broker, new_topic: Callable[[int], str], tmp_path: Path
) -> None:
    """One partition an hour ahead of the other (its backlog read first):
    with one watermark for the whole topic, every event of the partition
    behind would be late. Watermarks are kept per partition, the topic's
    the least of them, so none is late and its windows are exact."""
    topic = new_topic(2)
    behind = log_lines(2000)
    ahead = [
        line.replace("[03/Jun/2024:08:", "[03/Jun/2024:09:")
        for line in log_lines(2000, first=2000)
    ]
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    for partition, part in ((0, ahead), (1, behind)):
        for line in part:
            producer.produce(topic, line, line.split(" ", 1)[0], partition=partition)
        assert producer.flush(60) == 0
    out = tmp_path / "out"
    printed = run_ok(
        "run", "--source", f"kafka://{kafka_broker.bootstrap}/{topic}",
        "--group", f"g-{topic}", "--consumer-id", "c1", "--out", str(out),
        "--format", FORMAT, "--no-detect", "--json", "--lateness", "1m",
        "--commit-interval", "0.2s", "--exit-when-idle", "3s",
    )  # fmt: skip
    summary = json.loads(printed)
    assert summary["late"] == 0
    assert summary["events"] == 4000 - 8  # one bad line in every 500
    run_ok("merge", str(out))
    got = windows(out / "logweir.duckdb").filter(pl.col("window_start").dt.hour() == 8)
    reference, _ = batch_reference(tmp_path, behind)
    assert got.height > 0 and got.equals(reference)


def _start_consumer(
    args: list[str],
    assigned: list[str],
    errors: list[str],
    readers: list[threading.Thread],
) -> subprocess.Popen[str]:
    """A consumer whose log lines saying "assigned" are collected."""
    process = subprocess.Popen(logweir("-v", *args), stderr=subprocess.PIPE, text=True)

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            errors.append(line)
            if "kafka: assigned" in line and "nothing" not in line:
                assigned.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    readers.append(reader)
    return process


def _lake_rows(out: Path) -> int:
    files = [
        path
        for path in (out / "consumers").rglob("events/**/*.parquet")
        if not path.name.startswith(".")
    ]
    if not files:
        return 0
    return (
        pl.scan_parquet(files, hive_partitioning=False)
        .select(pl.len())
        .collect()
        .item()
    )


def test_two_consumers_in_one_group_give_the_windows_of_one(
    kafka_broker: Broker, new_topic: Callable[[int], str], tmp_path: Path
) -> None:
    topic = new_topic(4)
    url = f"kafka://{kafka_broker.bootstrap}/{topic}"
    lines = log_lines(20_000)
    shared = tmp_path / "two"
    group = f"g2-{topic}"
    processes = []
    readers: list[threading.Thread] = []
    logs: dict[str, tuple[list[str], list[str]]] = {}
    for name in ("a", "b"):
        assigned: list[str] = []
        errors: list[str] = []
        args = [
            "run", "--source", url, "--group", group, "--consumer-id", name,
            "--out", str(shared), "--format", FORMAT, "--no-detect",
            "--commit-interval", "0.2s",
        ]  # fmt: skip
        processes.append(_start_consumer(args, assigned, errors, readers))
        logs[name] = (assigned, errors)
        deadline = time.monotonic() + DEADLINE_S
        while not assigned:  # b joins once a holds the partitions
            assert time.monotonic() < deadline, "".join(errors[-20:])
            time.sleep(0.05)
    produce(kafka_broker.bootstrap, topic, lines)
    deadline = time.monotonic() + DEADLINE_S
    while _lake_rows(shared) < 20_000 - 40:  # then stop them as a person would
        assert time.monotonic() < deadline, "the consumers did not read it all"
        time.sleep(0.2)
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process, reader, (_, errors) in zip(
        processes, readers, logs.values(), strict=True
    ):
        status = process.wait(timeout=DEADLINE_S)
        reader.join()
        assert process.stderr is not None
        process.stderr.close()
        assert status == 0, "".join(errors[-20:])
    run_ok("merge", str(shared))
    one = tmp_path / "one"
    consume(one, url, f"g1-{topic}", "solo")
    run_ok("merge", str(one))
    parts = [lake(shared / "consumers" / name).height for name in ("a", "b")]
    assert all(parts), f"a consumer got no partition: {parts}"
    assert sum(parts) == 20_000 - 40
    reference, _ = batch_reference(tmp_path, lines)
    merged_two = windows(shared / "logweir.duckdb")
    assert merged_two.equals(windows(one / "logweir.duckdb"))
    assert merged_two.equals(reference)


def test_consumer_restarted_after_a_rebalance_keeps_its_committed_files(
    kafka_broker: Broker, new_topic: Callable[[int], str], tmp_path: Path
) -> None:
    topic = new_topic(4)
    url = f"kafka://{kafka_broker.bootstrap}/{topic}"
    produce(kafka_broker.bootstrap, topic, log_lines(4000))
    out = tmp_path / "out"
    group = f"g-{topic}"
    readers: list[threading.Thread] = []
    started = []
    for name in ("a", "b"):
        assigned: list[str] = []
        errors: list[str] = []
        args = [
            "run", "--source", url, "--group", group, "--consumer-id", name,
            "--out", str(out), "--format", FORMAT, "--no-detect",
            "--commit-interval", "0.2s",
        ]  # fmt: skip
        process = _start_consumer(args, assigned, errors, readers)
        started.append((process, assigned, errors))
        deadline = time.monotonic() + DEADLINE_S
        # a reads everything before b joins and takes two partitions
        while not assigned or (name == "a" and _lake_rows(out) < 4000 - 8):
            assert time.monotonic() < deadline, "".join(errors[-20:])
            time.sleep(0.05)
    # More lines: a checkpoints again after giving two partitions up.
    before = lake(out / "consumers" / "a").height
    produce(kafka_broker.bootstrap, topic, log_lines(2000, first=4000))
    deadline = time.monotonic() + DEADLINE_S
    while _lake_rows(out) < 6000 - 12 or lake(out / "consumers" / "a").height == before:
        assert time.monotonic() < deadline, "the consumers did not read it all"
        time.sleep(0.1)
    time.sleep(1)
    for process, _, _ in started:
        process.send_signal(signal.SIGTERM)
    for (process, _, _), reader in zip(started, readers, strict=True):
        process.wait(timeout=DEADLINE_S)
        reader.join()
        assert process.stderr is not None
        process.stderr.close()
    consume(out, url, group, "a", idle="1s")  # a restarts and recovers
    assert lake(out / "consumers" / "a").height + lake(
        out / "consumers" / "b"
    ).height == (6000 - 12)


def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        found = consumer.committed(
            [TopicPartition(topic, p) for p in range(partitions)], timeout=30
        )
    finally:
        consumer.close()
    return [tp.offset for tp in found]


def _identities(out: Path) -> set[tuple[object, ...]]:
    events = lake(out)
    if events.is_empty():
        return set()
    return set(events.select("source", "offset").iter_rows())


def test_crash_after_checkpoint_then_takeover_counts_every_line_once(
    kafka_broker: Broker, new_topic: Callable[[int], str], tmp_path: Path
) -> None:
    """The hole of a crash and a reassignment together: a consumer dies
    between its checkpoint and its broker commit and stays away, so another
    member of the group takes its partitions from the older commit and
    reads those offsets again. Both outputs hold them; ``logweir merge``
    must count them once."""
    topic = new_topic(2)
    url = f"kafka://{kafka_broker.bootstrap}/{topic}"
    group = f"g-{topic}"
    lines = log_lines(12_000)
    out = tmp_path / "out"

    def args(name: str) -> list[str]:
        return [
            "run", "--source", url, "--group", group, "--consumer-id", name,
            "--out", str(out), "--format", FORMAT, "--no-detect", "--quiet",
            "--commit-interval", "0.1s",
        ]  # fmt: skip

    # a commits once, checkpoints more, and dies before its second commit
    produce(kafka_broker.bootstrap, topic, lines[:4000])
    a = subprocess.Popen(
        logweir(*args("a")),
        env={**os.environ, EXIT_AT_COMMIT_ENV: "2"},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + DEADLINE_S
        while max(_committed(kafka_broker.bootstrap, group, topic, 2)) <= 0:
            assert a.poll() is None, "a stopped before its first commit"
            assert time.monotonic() < deadline, "a never committed"
            time.sleep(0.1)
        produce(kafka_broker.bootstrap, topic, lines[4000:8000])
        _, errors = a.communicate(timeout=DEADLINE_S)
    finally:
        a.kill()
        a.wait()
    assert a.returncode == EXIT_AT_COMMIT_STATUS, errors[-3000:]
    checkpoint = load_checkpoint(out / "consumers" / "a")
    assert checkpoint is not None
    committed = _committed(kafka_broker.bootstrap, group, topic, 2)
    assert any(
        checkpoint.positions.get(f"{topic}/{p}", 0) > offset
        for p, offset in enumerate(committed)
    ), f"no hole made: checkpoint {checkpoint.positions}, committed {committed}"
    # b takes the partitions once a's session times out, from the old commit,
    # and reads more than a did: ranges that overlap a's without matching
    produce(kafka_broker.bootstrap, topic, lines[8000:])
    b = subprocess.Popen(logweir(*args("b")), stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + DEADLINE_S
        # b must read again everything past the group's commit
        below = {
            (source, offset)
            for source, offset in _identities(out / "consumers" / "a")
            if isinstance(source, str)
            and isinstance(offset, int)
            and offset < committed[int(source.rpartition("/")[2])]
        }
        while len(_identities(out / "consumers" / "b")) < 12_000 - 24 - len(below):
            assert b.poll() is None, "b stopped by itself"
            assert time.monotonic() < deadline, "b did not read everything"
            time.sleep(0.2)
        b.send_signal(signal.SIGTERM)
        assert b.wait(timeout=DEADLINE_S) == 0
    finally:
        b.kill()
        b.wait()
    both = _identities(out / "consumers" / "a") & _identities(out / "consumers" / "b")
    assert both, "b read none of a's checkpointed lines again: no overlap made"
    merged = json.loads(run_ok("merge", str(out), "--json"))
    assert merged["duplicate_rows"] >= len(both)
    events = lake(out)
    assert events.height == 12_000 - 24
    assert events.select("source", "offset").is_unique().all()
    reference, reference_out = batch_reference(tmp_path, lines)
    assert event_rows(events) == event_rows(lake(reference_out))
    rejects = pl.read_parquet(
        sorted((out / "rejects").rglob("*.parquet")), hive_partitioning=False
    )
    assert rejects.height == 24
    assert windows(out / "logweir.duckdb").equals(reference)


def _limit_message_bytes(broker: Broker, topic: str, max_bytes: int) -> None:
    """Set the topic's ``max.message.bytes`` (the broker refuses larger)."""
    admin = broker.admin()
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry(
                "max.message.bytes",
                str(max_bytes),
                incremental_operation=AlterConfigOpType.SET,
            )
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(timeout=60)


def test_a_line_refused_without_transactions_stops_the_shipper_unforgotten(
    kafka_broker: Broker, new_topic: Callable[[int], str], tmp_path: Path
) -> None:
    """Without transactions nothing aborts a refused line: the shipper must
    notice the failed delivery report itself, stop with the broker's reason
    and keep its positions before the line; the next start sends it."""
    topic = new_topic(1)
    _limit_message_bytes(kafka_broker, topic, 20_000)
    lines = log_lines(2000)
    lines[1200] = "y" * 50_000
    log = tmp_path / "access.log"
    log.write_text("\n".join(lines) + "\n")
    big_line_offset = sum(len(line) + 1 for line in lines[:1200])
    args = [
        "ship", "--to", f"kafka://{kafka_broker.bootstrap}/{topic}",
        "--id", f"ship-{topic}", "--format", FORMAT, "--json", "--no-transactions",
        "--commit-interval", "0.1s", "--exit-when-idle", "2s", str(log),
    ]  # fmt: skip
    done = subprocess.run(
        logweir(*args), capture_output=True, text=True, timeout=DEADLINE_S
    )
    assert done.returncode == 2, done.stderr[-2000:]
    (message,) = [line for line in done.stderr.splitlines() if "not delivered" in line]
    assert "too large" in message.lower() and "positions not advanced" in message
    positions = read_positions(
        kafka_broker.bootstrap, CHECKPOINT_TOPIC, f"ship-{topic}"
    )
    kept = [entry["offset"] for entry in (positions or {}).values()]
    assert all(offset <= big_line_offset for offset in kept), positions
    _limit_message_bytes(kafka_broker, topic, 1_048_576)
    run_ok(*args)
    shipped = collections.Counter(topic_lines(kafka_broker.bootstrap, topic, 1))
    assert set(shipped) == set(lines)  # at least once: the refused line too
    assert shipped[lines[1200]] == 1


def test_a_refused_transaction_is_aborted_and_its_lines_sent_again(
    kafka_broker: Broker, new_topic: Callable[[int], str], tmp_path: Path
) -> None:
    """The broker refuses a batch (too large for the topic): the commit
    fails, the shipper aborts the transaction and rewinds to its last
    committed positions; once the topic takes it, every line is there once."""
    topic = new_topic(1)
    admin = kafka_broker.admin()

    def limit(max_bytes: int) -> None:
        resource = ConfigResource(
            ConfigResource.Type.TOPIC,
            topic,
            incremental_configs=[
                ConfigEntry(
                    "max.message.bytes",
                    str(max_bytes),
                    incremental_operation=AlterConfigOpType.SET,
                )
            ],
        )
        admin.incremental_alter_configs([resource])[resource].result(timeout=60)

    limit(20_000)
    lines = log_lines(3000)
    lines[1500] = "x" * 50_000  # a line the topic refuses, for now
    log = tmp_path / "access.log"
    log.write_text("\n".join(lines) + "\n")
    args = [
        "-v", "ship", "--to", f"kafka://{kafka_broker.bootstrap}/{topic}",
        "--id", f"ship-{topic}", "--format", FORMAT, "--json",
        "--commit-interval", "0.1s", "--exit-when-idle", "3s", str(log),
    ]  # fmt: skip
    shipper = subprocess.Popen(
        logweir(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    errors: list[str] = []

    def read() -> None:
        assert shipper.stderr is not None
        errors.extend(shipper.stderr)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not any("transaction aborted" in line for line in errors):
            assert shipper.poll() is None, "".join(errors[-20:])
            assert time.monotonic() < deadline, "no transaction was aborted"
            time.sleep(0.05)
        limit(1_048_576)
        printed, _ = shipper.communicate(timeout=DEADLINE_S)
    finally:
        shipper.kill()
        shipper.wait()
        reader.join(timeout=10)
    assert shipper.returncode == 0, "".join(errors[-20:])
    summary = json.loads(printed)
    assert summary["aborted"] >= 1
    assert summary["lines"] == 3000
    assert collections.Counter(topic_lines(kafka_broker.bootstrap, topic, 1)) == (
        collections.Counter(lines)
    )
