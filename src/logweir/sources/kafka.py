"""A Kafka topic as a :class:`~logweir.sources.stream.StreamSource`.

:class:`KafkaSource` joins a consumer group with confluent-kafka's
``Consumer`` and hands the streaming pipeline one :class:`SourceBatch` per
partition and poll. Each message is one line (the shipper,
:mod:`logweir.pipeline.ship`, produces them so)::

    stream       "<topic>/<partition>"
    lines.source "kafka:<topic>/<partition>"
    offsets      the messages' Kafka offsets
    start, end   first offset, last offset + 1

*When* offsets move:

* Offsets are never committed automatically (``enable.auto.commit`` is
  off). :meth:`KafkaSource.commit` commits them synchronously, and the
  pipeline calls it only after its sinks and its own checkpoint have
  committed.
* When the group takes partitions away (a rebalance), the revoke callback
  runs inside :meth:`KafkaSource.poll`; it calls the pipeline's handler
  (:meth:`KafkaSource.on_revoke`), which flushes and commits what it holds
  of them while they are still ours. Messages of those partitions fetched
  but not yet handed out are dropped: their next owner reads them from the
  committed offset.
* Where a partition starts when it is assigned: this consumer's own
  position (the pipeline's checkpointed offset on a first assignment; what
  it has handed out since when a partition comes back within one run) when
  the last commit on the broker was made by this consumer (so a consumer
  that crashed after its checkpoint but before its broker commit resumes
  exactly where its state ends); after another consumer's commit, the
  later of the two (lines before it are in some consumer's output
  already); with neither, the earliest offset. Each commit carries the
  consumer's id as metadata for this test. Where two consumers' outputs
  both hold some lines (a crash between checkpoint and commit followed by
  a takeover from the older commit), ``logweir merge`` keeps them once
  (:mod:`logweir.pipeline.consumers`).

Consumers use static membership (``group.instance.id`` is the consumer
id), so a consumer restarted after a crash takes its partitions back at
once instead of after a session timeout, and a second process started
with the same id is fenced off with an error. Messages are read
``read_committed``: the shipper writes in transactions, and lines of an
aborted transaction are never seen.

Test hook: where the environment variable named by :data:`EXIT_AT_COMMIT_ENV`
holds a number N, the N-th :meth:`KafkaSource.commit` that has offsets to
commit ends the process with :data:`EXIT_AT_COMMIT_STATUS` instead
(``os._exit``: no cleanup, no leaving the group). The pipeline calls
``commit`` only after its checkpoint is written, so this is a crash exactly
between the checkpoint and the broker commit; the tests use it to show that
``logweir merge`` still counts every line once when another consumer then
reads the same offsets again.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl
from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from logweir.errors import ConfigError, SourceError
from logweir.schema import LineBatch
from logweir.sources.stream import Positions, RevokeHandler, SourceBatch

logger = logging.getLogger(__name__)

#: Lines handed out by one poll at most (over all partitions).
DEFAULT_MAX_BATCH_LINES = 200_000

#: After an assignment, how long lines are held back until every new
#: partition has delivered something (or said it is at its end).
FIRST_DATA_WAIT_S = 5.0

_URL = re.compile(r"^kafka://(?P<servers>[^/]+)/(?P<topic>[^/]+)/?$")
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_METADATA_KEY = "logweir_consumer"

#: Test hook (see the module docstring): exit at the N-th commit.
EXIT_AT_COMMIT_ENV = "LOGWEIR_TEST_KAFKA_EXIT_AT_COMMIT"
EXIT_AT_COMMIT_STATUS = 86


@dataclass(frozen=True)
class KafkaUrl:
    """``kafka://HOST:PORT[,HOST:PORT...]/TOPIC``, taken apart."""

    bootstrap: str
    topic: str

    def __str__(self) -> str:
        return f"kafka://{self.bootstrap}/{self.topic}"


def parse_kafka_url(url: str) -> KafkaUrl:
    """Split ``kafka://HOST:PORT/TOPIC``; raise :class:`ConfigError` if malformed."""
    match = _URL.match(url)
    if match is None:
        raise ConfigError(
            f"{url!r} is not a Kafka address; use kafka://HOST:PORT/TOPIC"
        )
    servers, topic = match.group("servers"), match.group("topic")
    for server in servers.split(","):
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"{url!r}: {server!r} is not HOST:PORT")
    if not _TOPIC.match(topic):
        raise ConfigError(
            f"{url!r}: {topic!r} is not a Kafka topic name "
            "(letters, digits, . _ -; at most 249)"
        )
    return KafkaUrl(servers, topic)


def stream_name(topic: str, partition: int) -> str:
    """The stream key of a partition: ``"<topic>/<partition>"``."""
    return f"{topic}/{partition}"


def split_stream(stream: str) -> tuple[str, int]:
    """``"logs/3"`` -> ``("logs", 3)``; raise :class:`SourceError` if not one."""
    topic, _, partition = stream.rpartition("/")
    if not topic or not partition.isdigit():
        raise SourceError(f"{stream!r} is not a Kafka stream (topic/partition)")
    return topic, int(partition)


def lines_from_messages(topic: str, messages: list[Message]) -> LineBatch:
    """One partition's messages as a :class:`LineBatch`.

    Values are decoded as UTF-8 with U+FFFD for bad bytes; a trailing
    ``\\n`` is dropped; an empty (null) value is an empty line, which the
    parser skips. ``line_numbers`` are offsets + 1: a partition has no
    lines, only offsets, and this keeps them 1-based and unique.
    """
    values = [message.value() or b"" for message in messages]
    offsets = [message.offset() for message in messages]
    joined = b"\n".join(values)
    if joined.count(b"\n") == len(values) - 1:
        # One decode and one split for the whole batch: the common case.
        texts = joined.decode("utf-8", "replace").split("\n")
    else:
        texts = [
            value.removesuffix(b"\n").decode("utf-8", "replace") for value in values
        ]
    partition = messages[0].partition()
    offset_series = pl.Series("offset", offsets, dtype=pl.UInt64)
    return LineBatch(
        source=f"kafka:{stream_name(topic, partition or 0)}",
        lines=pl.Series("line", texts, dtype=pl.String),
        offsets=offset_series,
        line_numbers=(offset_series + 1).alias("line_number"),
    )


class KafkaSource:
    """Lines from a topic, as one member of a consumer group.

    ``positions`` is what :meth:`positions` returned before a restart (from
    the pipeline's checkpoint): ``{"<topic>/<partition>": next_offset}``.
    ``consumer_id`` must be stable across restarts of this consumer and
    unique within the group. ``config`` adds or overrides librdkafka
    settings (``fetch.max.bytes``, security settings, ...).
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group: str,
        consumer_id: str,
        *,
        positions: Positions | None = None,
        max_batch_lines: int = DEFAULT_MAX_BATCH_LINES,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        if not group:
            raise ConfigError("a Kafka source needs a consumer group (--group)")
        if max_batch_lines < 1:
            raise ConfigError(f"bad batch size {max_batch_lines}: must be positive")
        self.topic = topic
        self.group = group
        self.consumer_id = consumer_id
        self._max_lines = max_batch_lines
        self._next: dict[str, int] = _check_positions(positions or {})
        self._assigned: set[int] = set()
        #: Whether the group has given this consumer its first assignment.
        self._joined = False
        self._handler: RevokeHandler | None = None
        self._closed = False
        #: Assigned partitions that have delivered nothing yet, the messages
        #: held back meanwhile, and until when (see :meth:`_hold`).
        self._silent: set[int] = set()
        self._held: list[Message] = []
        self._hold_until = 0.0
        self._metadata = json.dumps({_METADATA_KEY: consumer_id})
        self._commits = 0
        self._exit_at_commit = _exit_at_commit()
        settings: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "group.instance.id": consumer_id,
            "client.id": f"logweir-{consumer_id}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            # Only the partitions that move are revoked, so a consumer
            # joining the group does not make every member flush.
            "partition.assignment.strategy": "cooperative-sticky",
            # A static member that stops is only replaced after its session
            # times out: keep that short (the broker's least is 6 s).
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 1_000,
            "error_cb": self._on_error,
            # Tells which partitions are at their end: see _hold.
            "enable.partition.eof": True,
        }
        settings.update(config or {})
        try:
            self._consumer = Consumer(settings)
            self._consumer.subscribe(
                [topic],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
        except KafkaException as error:
            raise SourceError(
                f"kafka://{bootstrap}/{topic}: {_reason(error)}"
            ) from None
        self._where = f"kafka://{bootstrap}/{topic} (group {group}, {consumer_id})"
        logger.info("kafka: joining %s", self._where)

    # -- the StreamSource verbs ------------------------------------------------

    def poll(self, timeout_s: float) -> list[SourceBatch]:
        """Up to ``max_batch_lines`` lines, one batch per partition.

        Waits at most ``timeout_s`` for the first message, then takes what
        is already fetched without waiting. Rebalance callbacks run in here.
        """
        try:
            first = self._consumer.poll(timeout_s)
            messages = [] if first is None else [first]
            if first is not None and self._max_lines > 1:
                messages.extend(self._consumer.consume(self._max_lines - 1, 0))
        except KafkaException as error:
            raise SourceError(f"{self._where}: {_reason(error)}") from None
        by_partition: dict[int, list[Message]] = {}
        for message in self._hold(messages):
            if message.error() is not None:
                self._on_message_error(message)
                continue
            partition = message.partition()
            assert partition is not None
            by_partition.setdefault(partition, []).append(message)
        batches = []
        for partition, part in sorted(by_partition.items()):
            if partition not in self._assigned:
                # Revoked during this poll: its next owner reads these again.
                logger.debug(
                    "kafka: dropped %d messages of revoked %s",
                    len(part),
                    stream_name(self.topic, partition),
                )
                continue
            batches.append(self._batch(partition, part))
        return batches

    def _hold(self, messages: list[Message]) -> list[Message]:
        """Hold lines back until every newly assigned partition has spoken.

        Watermarks are per partition and the pipeline's is the least of
        the partitions it has seen. With a backlog, one partition's first
        fetch can span hours of events (a compressed megabyte is tens of
        thousands of lines); handed out alone, it would move the watermark
        past every other partition's first events and make them late. So
        after an assignment, messages wait (their partitions paused) until
        each new partition has delivered a message or reached its end, or
        :data:`FIRST_DATA_WAIT_S` passed, and are then handed out together.
        """
        for message in messages:
            partition = message.partition()
            if partition is not None:
                self._silent.discard(partition)
        if not self._silent or time.monotonic() >= self._hold_until:
            if self._silent:
                logger.info(
                    "kafka: partitions %s sent nothing in %.0f s; going on",
                    sorted(self._silent),
                    FIRST_DATA_WAIT_S,
                )
                self._silent.clear()
            if not self._held:
                return messages
            held, self._held = self._held + messages, []
            self._consumer.resume(self._consumer.assignment())
            return held
        spoke = {m.partition() for m in messages if m.error() is None}
        if spoke:
            self._consumer.pause(
                [TopicPartition(self.topic, p) for p in spoke if p is not None]
            )
        self._held.extend(messages)
        return []

    def _batch(self, partition: int, messages: list[Message]) -> SourceBatch:
        stream = stream_name(self.topic, partition)
        lines = lines_from_messages(self.topic, messages)
        start = messages[0].offset()
        last = messages[-1].offset()
        assert start is not None and last is not None
        self._next[stream] = last + 1
        logger.debug(
            "kafka: %s offsets %d to %d, %d lines", stream, start, last, len(lines)
        )
        return SourceBatch(stream=stream, start=start, end=last + 1, lines=lines)

    def positions(self) -> Positions:
        """``{"<topic>/<partition>": next offset}`` of every partition read."""
        return dict(self._next)

    def commit(self, positions: Positions) -> None:
        """Commit ``positions`` to the group, synchronously.

        Only partitions this consumer holds are committed: a partition
        handed to another member since is that member's to commit. A commit
        the broker refuses for a transient reason (a rebalance under way)
        is logged and made good by the next one; a fenced consumer raises
        :class:`SourceError`.
        """
        offsets = []
        for stream, offset in _check_positions(positions).items():
            topic, partition = split_stream(stream)
            if topic == self.topic and partition in self._assigned:
                offsets.append(
                    TopicPartition(topic, partition, offset, metadata=self._metadata)
                )
        if not offsets:
            return
        self._commits += 1
        if self._commits == self._exit_at_commit:
            logger.warning("kafka: %s set: exiting before commit", EXIT_AT_COMMIT_ENV)
            logging.shutdown()
            os._exit(EXIT_AT_COMMIT_STATUS)
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as error:
            kafka_error = error.args[0] if error.args else None
            if isinstance(kafka_error, KafkaError) and kafka_error.fatal():
                raise SourceError(f"{self._where}: {_reason(error)}") from None
            logger.warning(
                "kafka: commit of %s refused (%s); the next commit retries",
                ", ".join(f"{tp.partition}@{tp.offset}" for tp in offsets),
                _reason(error),
            )
            return
        logger.debug(
            "kafka: committed %s",
            ", ".join(f"{self.topic}/{tp.partition}@{tp.offset}" for tp in offsets),
        )

    def on_revoke(self, handler: RevokeHandler) -> None:
        """Call ``handler(streams)`` before partitions are given up."""
        self._handler = handler

    def close(self) -> None:
        """Leave the group; idempotent.

        Closing revokes this consumer's partitions, so the revoke handler
        runs once more (inside this call) and may still commit.
        """
        if self._closed:
            return
        self._closed = True
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as error:
            logger.warning("kafka: closing %s: %s", self._where, error)
        self._assigned.clear()
        logger.info("kafka: left %s", self._where)

    def assignment(self) -> list[str]:
        """The streams this consumer holds now (for logs and tests)."""
        return [stream_name(self.topic, p) for p in sorted(self._assigned)]

    @property
    def settling(self) -> bool:
        """True while joining the group, and while newly assigned partitions
        may still be silent: no lines then does not mean no more lines (a
        fresh broker delays a group's first assignment by seconds), so the
        pipeline does not count it as idle."""
        return not self._joined or time.monotonic() < self._hold_until

    # -- rebalance callbacks (run inside poll) ---------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        try:
            committed = consumer.committed(partitions, timeout=30)
        except KafkaException as error:
            raise SourceError(
                f"{self._where}: cannot read committed offsets: {_reason(error)}"
            ) from None
        for tp, done in zip(partitions, committed, strict=True):
            tp.offset = self._start_offset(tp, done)
            self._assigned.add(tp.partition)
            self._silent.add(tp.partition)
        self._hold_until = time.monotonic() + FIRST_DATA_WAIT_S
        self._joined = True
        consumer.incremental_assign(partitions)
        logger.info(
            "kafka: assigned %s",
            ", ".join(
                f"{tp.topic}/{tp.partition}@{_show(tp.offset)}" for tp in partitions
            )
            or "nothing",
        )

    def _start_offset(self, tp: TopicPartition, committed: TopicPartition) -> int:
        """Where an assigned partition starts (see the module docstring)."""
        stream = stream_name(tp.topic, tp.partition)
        # Where this consumer's output of the partition ends: its checkpoint
        # on a first assignment, what it has handed out since (and the
        # pipeline writes) when the partition comes back within one run.
        local = self._next.get(stream)
        ours = _committer(committed.metadata) == self.consumer_id
        if local is not None and (committed.offset < 0 or ours):
            return local
        if local is not None and local > committed.offset:
            # Our checkpoint went past the group's commit, and another
            # consumer committed since: our output has [committed, local),
            # so go on from there; whatever of that range the other one
            # read is in both outputs, and `logweir merge` keeps it once.
            logger.warning(
                "kafka: %s offsets %d to %d are in this consumer's checkpoint, "
                "but %s committed %d since; lines of that range it read are "
                "in both outputs (logweir merge counts them once)",
                stream,
                committed.offset,
                local,
                _committer(committed.metadata) or "another consumer",
                committed.offset,
            )
            return local
        if local is not None:
            logger.info(
                "kafka: %s moved on to %d under another consumer (ours was %d)",
                stream,
                committed.offset,
                local,
            )
        # Lines read since our checkpoint belong to whoever read them now.
        self._next.pop(stream, None)
        return committed.offset if committed.offset >= 0 else OFFSET_INVALID

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        streams = [stream_name(tp.topic, tp.partition) for tp in partitions]
        logger.info("kafka: revoking %s", ", ".join(streams) or "nothing")
        if self._handler is not None and partitions:
            self._handler(streams)
        for tp in partitions:
            self._assigned.discard(tp.partition)
            self._silent.discard(tp.partition)
        consumer.incremental_unassign(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Lost, not revoked: the group already gave them to someone else, so
        # committing is too late. What the pipeline holds of them stays in
        # its checkpoint; their new owner starts from the last commit.
        streams = [stream_name(tp.topic, tp.partition) for tp in partitions]
        logger.warning(
            "kafka: lost %s (session expired); lines read since the last commit "
            "will be read again by their new owner",
            ", ".join(streams),
        )
        for tp in partitions:
            self._assigned.discard(tp.partition)
            self._silent.discard(tp.partition)
        consumer.incremental_unassign(partitions)

    # -- errors ------------------------------------------------------------

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            logger.error("kafka: fatal: %s", error.str())
        else:
            logger.warning("kafka: %s", error.str())

    def _on_message_error(self, message: Message) -> None:
        error = message.error()
        assert error is not None
        if error.code() == KafkaError._PARTITION_EOF:
            return
        if error.fatal():
            raise SourceError(f"{self._where}: {error.str()}")
        logger.warning("kafka: %s: %s", self._where, error.str())


def _check_positions(positions: Positions) -> dict[str, int]:
    checked: dict[str, int] = {}
    for stream, offset in positions.items():
        split_stream(stream)
        if not isinstance(offset, int) or offset < 0:
            raise SourceError(f"bad Kafka position for {stream}: {offset!r}")
        checked[stream] = offset
    return checked


def _exit_at_commit() -> int | None:
    value = os.environ.get(EXIT_AT_COMMIT_ENV, "")
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{EXIT_AT_COMMIT_ENV}={value!r}: give a positive number")
    return int(value)


def _committer(metadata: str | None) -> str | None:
    """The consumer id a commit's metadata names, if logweir made it."""
    if not metadata:
        return None
    try:
        value = json.loads(metadata)
    except ValueError:
        return None
    if isinstance(value, dict):
        committer = value.get(_METADATA_KEY)
        return committer if isinstance(committer, str) else None
    return None


def _reason(error: KafkaException) -> str:
    kafka_error = error.args[0] if error.args else None
    if isinstance(kafka_error, KafkaError):
        return str(kafka_error.str())
    return str(error)


def _show(offset: int) -> str:
    return "committed" if offset < 0 else str(offset)
