"""KafkaSource against a real broker: identities, commits, resume, rebalance."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, TopicPartition
from kafka_helpers import Broker, produce_lines

from logweir.errors import ConfigError
from logweir.sources.kafka import KafkaSource, parse_kafka_url
from logweir.sources.stream import SourceBatch

#: Long enough for a group to form on a busy two-core machine.
DEADLINE_S = 60.0


def _lines(count: int, first: int = 0) -> list[bytes]:
    return [
        b'10.0.%d.%d - - [03/Jun/2024:08:00:00 +0000] "GET /p%d HTTP/1.1" 200 5'
        % (i % 7, i % 5, i)
        for i in range(first, first + count)
    ]


def _client(line: bytes) -> bytes:
    return line.split(b" ", 1)[0]


def _read(source: KafkaSource, count: int) -> list[SourceBatch]:
    """Poll until ``count`` lines came (or fail at the deadline)."""
    batches: list[SourceBatch] = []
    deadline = time.monotonic() + DEADLINE_S
    while sum(len(b.lines) for b in batches) < count:
        assert time.monotonic() < deadline, "lines did not arrive in time"
        batches.extend(source.poll(0.2))
    return batches


def _settle(source: KafkaSource, seconds: float) -> list[SourceBatch]:
    """Everything ``source`` hands out within ``seconds``."""
    batches: list[SourceBatch] = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        batches.extend(source.poll(0.2))
    return batches


def _texts(batches: list[SourceBatch]) -> list[str]:
    return [text for b in batches for text in b.lines.lines.to_list()]


def _source(
    broker: Broker, topic: str, group: str, cid: str, **kw: object
) -> KafkaSource:
    return KafkaSource(broker.bootstrap, topic, group, cid, **kw)  # type: ignore[arg-type]


def test_every_line_arrives_once_with_its_kafka_identity(
    kafka_broker: Broker, new_topic: Callable[[int], str]
) -> None:
    topic = new_topic(3)
    lines = _lines(600)
    produce_lines(kafka_broker.bootstrap, topic, lines, _client)
    source = _source(kafka_broker, topic, f"g-{uuid.uuid4().hex}", "c1")
    try:
        batches = _read(source, len(lines))
    finally:
        source.close()
    assert sorted(_texts(batches)) == sorted(line.decode() for line in lines)
    by_stream: dict[str, list[int]] = {}
    for batch in batches:
        partition = batch.stream.split("/")[1]
        assert batch.stream == f"{topic}/{partition}"
        assert batch.lines.source == f"kafka:{topic}/{partition}"
        offsets = batch.lines.offsets.to_list()
        assert batch.start == offsets[0] and batch.end == offsets[-1] + 1
        assert batch.lines.line_numbers.to_list() == [o + 1 for o in offsets]
        by_stream.setdefault(batch.stream, []).extend(offsets)
    for offsets in by_stream.values():
        assert offsets == list(range(len(offsets)))  # no gap, no repeat
    # One client's lines share a partition (the key decides it).
    clients: dict[str, set[str]] = {}
    for batch in batches:
        for text in batch.lines.lines.to_list():
            clients.setdefault(text.split(" ", 1)[0], set()).add(batch.stream)
    assert all(len(streams) == 1 for streams in clients.values())


def test_restart_reads_only_what_came_after_the_commit(
    kafka_broker: Broker, new_topic: Callable[[int], str]
) -> None:
    topic, group = new_topic(2), f"g-{uuid.uuid4().hex}"
    produce_lines(kafka_broker.bootstrap, topic, _lines(200), _client)
    source = _source(kafka_broker, topic, group, "c1")
    _read(source, 200)
    source.commit(source.positions())
    source.close()
    produce_lines(kafka_broker.bootstrap, topic, _lines(50, first=200), _client)
    again = _source(kafka_broker, topic, group, "c1")
    try:
        batches = _read(again, 50)
        batches += _settle(again, 1.0)
    finally:
        again.close()
    assert sorted(_texts(batches)) == sorted(x.decode() for x in _lines(50, 200))


def test_checkpoint_ahead_of_our_last_commit_is_where_we_resume(
    kafka_broker: Broker, new_topic: Callable[[int], str]
) -> None:
    """A crash after the pipeline's checkpoint but before the broker commit."""
    topic, group = new_topic(2), f"g-{uuid.uuid4().hex}"
    produce_lines(kafka_broker.bootstrap, topic, _lines(300), _client)
    source = _source(kafka_broker, topic, group, "c1")
    _read(source, 300)
    checkpoint = source.positions()
    source.commit({stream: 10 for stream in checkpoint})  # an older commit
    source.close()
    produce_lines(kafka_broker.bootstrap, topic, _lines(20, first=300), _client)
    again = _source(kafka_broker, topic, group, "c1", positions=checkpoint)
    try:
        batches = _read(again, 20)
        batches += _settle(again, 1.0)
    finally:
        again.close()
    assert sorted(_texts(batches)) == sorted(x.decode() for x in _lines(20, 300))
    assert all(b.start >= checkpoint[b.stream] for b in batches)


@pytest.mark.parametrize(("ours", "start"), [(30, 80), (90, 90)])
def test_after_another_consumers_commit_the_later_position_wins(
    kafka_broker: Broker, new_topic: Callable[[int], str], ours: int, start: int
) -> None:
    """Lines before the later of the two are in some output already."""
    topic, group = new_topic(1), f"g-{uuid.uuid4().hex}"
    produce_lines(kafka_broker.bootstrap, topic, _lines(100), _client)
    # Consumer c2 committed offset 80 while c1 was away.
    committer = Consumer(
        {"bootstrap.servers": kafka_broker.bootstrap, "group.id": group}
    )
    metadata = json.dumps({"logweir_consumer": "c2"})
    committer.commit(
        offsets=[TopicPartition(topic, 0, 80, metadata=metadata)], asynchronous=False
    )
    committer.close()
    source = _source(kafka_broker, topic, group, "c1", positions={f"{topic}/0": ours})
    try:
        batches = _read(source, 100 - start)
        batches += _settle(source, 1.0)
    finally:
        source.close()
    assert min(b.start for b in batches) == start
    assert sum(len(b.lines) for b in batches) == 100 - start


def test_rebalance_lets_the_pipeline_commit_before_partitions_move(
    kafka_broker: Broker, new_topic: Callable[[int], str]
) -> None:
    topic, group = new_topic(4), f"g-{uuid.uuid4().hex}"
    produce_lines(kafka_broker.bootstrap, topic, _lines(400), _client)
    first = _source(kafka_broker, topic, group, "a")
    revoked: list[list[str]] = []

    def flush_and_commit(streams: list[str]) -> None:
        revoked.append(streams)
        assert set(streams) <= set(first.assignment())  # still ours here
        first.commit(first.positions())

    first.on_revoke(flush_and_commit)
    seen = _read(first, 400)
    second = _source(kafka_broker, topic, group, "b")
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not (first.assignment() and second.assignment()):
            assert time.monotonic() < deadline, "the group did not rebalance"
            seen += first.poll(0.1) + second.poll(0.1)
        assert revoked and set(revoked[0]) == set(second.assignment())
        produce_lines(kafka_broker.bootstrap, topic, _lines(100, first=400), _client)
        later: list[SourceBatch] = []
        deadline = time.monotonic() + DEADLINE_S
        while len(_texts(seen + later)) < 500:
            assert time.monotonic() < deadline, "lines did not arrive in time"
            later += first.poll(0.1) + second.poll(0.1)
    finally:
        first.close()
        second.close()
    texts = _texts(seen + later)
    assert sorted(texts) == sorted(x.decode() for x in _lines(500))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("kafka://host/topic", "'host' is not HOST:PORT"),
        ("kafka://h:9092", "is not a Kafka address"),
        ("http://h:9092/t", "is not a Kafka address"),
        ("kafka://h:9092/bad topic", "is not a Kafka topic name"),
    ],
)
def test_bad_kafka_addresses_are_refused_in_one_line(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_kafka_url(url)


def test_a_kafka_address_names_servers_and_topic() -> None:
    url = parse_kafka_url("kafka://a:9092,b:9093/web-logs")
    assert (url.bootstrap, url.topic) == ("a:9092,b:9093", "web-logs")


def test_first_lines_wait_until_every_partition_has_spoken(
    kafka_broker: Broker, new_topic: Callable[[int], str]
) -> None:
    """Else one partition's backlog would move the watermark past the others."""
    topic = new_topic(4)
    produce_lines(kafka_broker.bootstrap, topic, _lines(20_000), _client)
    source = _source(kafka_broker, topic, f"g-{uuid.uuid4().hex}", "c1")
    try:
        first: list[SourceBatch] = []
        deadline = time.monotonic() + DEADLINE_S
        while not first:
            assert time.monotonic() < deadline, "no lines came"
            first = source.poll(0.2)
        rest = _read(source, 20_000 - sum(len(b.lines) for b in first))
    finally:
        source.close()
    assert {b.stream for b in first} == {f"{topic}/{p}" for p in range(4)}
    assert len(_texts(first + rest)) == 20_000


@pytest.mark.slow
def test_a_partition_given_back_resumes_where_this_run_left_it(
    kafka_broker: Broker, new_topic: Callable[[int], str]
) -> None:
    """Not at the checkpoint the run started from: those lines are in its
    output already, and the last commit is still its own."""
    topic, group = new_topic(2), f"g-{uuid.uuid4().hex}"
    produce_lines(kafka_broker.bootstrap, topic, _lines(300), _client)
    started_at = {f"{topic}/{p}": 10 for p in range(2)}
    first = _source(kafka_broker, topic, group, "a", positions=started_at)
    first.on_revoke(lambda streams: first.commit(first.positions()))
    try:
        seen = _read(first, 300 - 20)
        first.commit(first.positions())
        second = _source(kafka_broker, topic, group, "b")
        try:  # b takes a partition, reads nothing new, and goes away
            deadline = time.monotonic() + DEADLINE_S
            while not second.assignment():
                assert time.monotonic() < deadline, "the group did not rebalance"
                seen += first.poll(0.1) + second.poll(0.1)
        finally:
            second.close()
        deadline = time.monotonic() + DEADLINE_S
        while len(first.assignment()) < 2:  # back after b's session timed out
            assert time.monotonic() < deadline, "the partition did not come back"
            seen += first.poll(0.2)
        produce_lines(kafka_broker.bootstrap, topic, _lines(20, first=300), _client)
        later = _read(first, 20) + _settle(first, 1.0)
    finally:
        first.close()
    assert sorted(_texts(later)) == sorted(x.decode() for x in _lines(20, 300))
    assert len(_texts(seen)) == 300 - 20
