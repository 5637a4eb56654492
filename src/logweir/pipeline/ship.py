"""``logweir ship``: follow log files and produce their lines to Kafka.

:class:`Shipper` polls a :class:`~logweir.sources.stream.StreamSource`
(the :class:`~logweir.sources.follow.Follower`, tail -F over files and
globs) and produces every line as one message, keyed by the line's client
IP, so that one client's lines stay in one partition, in order. The key
comes from parsing the batch with the format (``--format``, or detected
from the first lines); a line the format cannot parse, or one without a
client IP (syslog, an application log), is keyed by its file's identity
(the line's ``source``, ``"<path>#<id>"``), so those lines of a file stay
together instead of being spread at random.

*Exactly once into the topic.* The producer is transactional (which makes
it idempotent too): lines go out in transactions of about
``commit_interval_s`` (or ``commit_lines``), and each transaction also
holds one record of the follower's positions, written to the checkpoint
topic (compacted, keyed by the shipper's id). The transaction commits the
lines and the positions together or neither, so:

* a crash before the commit aborts the transaction (the broker does it
  when the restarted shipper calls ``init_transactions``, or when the
  transaction times out): consumers reading ``read_committed`` never see
  those lines, and the restart reads them again from the positions of the
  last committed transaction;
* a crash after the commit loses nothing either: the positions it holds
  are the ones the restart reads.

A line therefore lands in the topic exactly once, and its Kafka offset is
a stable identity for the consumers (:mod:`logweir.sources.kafka`), whose
own commits make the lake exactly-once. Delivery reports are taken per
transaction: ``commit_transaction`` returns only once every message of it
is acknowledged by the broker, and fails otherwise.

Without transactions (``--no-transactions``, for brokers that refuse
them) the positions are still written only after every line up to them
was acknowledged (``flush``) and none was refused: librdkafka reports each
failed delivery (``delivery.report.only.error``, so a good message costs
no callback), and one refused line stops the shipper with an error naming
the broker's reason, its positions not advanced. A crash between the lines
and the record, or that stop, sends the lines since the last record again
on the next start: at-least-once, with duplicates that the lake cannot
tell apart (they have new offsets). See docs/kafka.md.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from logweir.errors import FormatError, SinkError, SourceError
from logweir.formats.base import ParseOptions, Parser
from logweir.pipeline.worker import compiled_parser
from logweir.sources.kafka import KafkaUrl
from logweir.sources.stream import Positions, SourceBatch, StreamSource

logger = logging.getLogger(__name__)

#: The compacted topic holding every shipper's positions, keyed by its id.
CHECKPOINT_TOPIC = "logweir-ship-checkpoints"
#: Lines sampled to detect the format when none is given.
DETECT_LINES = 200
#: Seconds the broker may take for one transactional call.
TRANSACTION_TIMEOUT_S = 60.0
COMPRESSIONS = ("zstd", "lz4", "snappy", "gzip", "none")


@dataclass(frozen=True)
class ShipConfig:
    """What one shipper does; see the module docstring."""

    url: KafkaUrl
    shipper_id: str
    format: str | None = None
    timezone: str = "UTC"
    compression: str = "zstd"
    linger_ms: int = 50
    commit_interval_s: float = 1.0
    commit_lines: int = 500_000
    exit_when_idle_s: float | None = None
    transactions: bool = True
    partitions: int | None = None
    checkpoint_topic: str = CHECKPOINT_TOPIC
    producer_config: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class ShipSummary:
    """What a shipper run did."""

    lines: int = 0
    bytes: int = 0
    transactions: int = 0
    aborted: int = 0
    unkeyed: int = 0
    elapsed_s: float = 0.0
    format: str | None = None

    @property
    def lines_per_s(self) -> float:
        return self.lines / self.elapsed_s if self.elapsed_s > 0 else 0.0


def default_shipper_id() -> str:
    """This machine's name: stable across restarts, one shipper per host."""
    return _safe_id(socket.gethostname() or "shipper")


def _safe_id(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)[:200]


class Shipper:
    """Produces a stream source's lines to a topic; see the module docstring.

    ``make_source`` builds the source from the positions of the last
    committed transaction (``None`` on a first start); it is called again
    after an aborted transaction, to read those lines once more.
    """

    def __init__(
        self,
        config: ShipConfig,
        make_source: Callable[[Positions | None], StreamSource],
    ) -> None:
        if config.compression not in COMPRESSIONS:
            raise SinkError(
                f"--compression: {config.compression!r} is not one of "
                f"{', '.join(COMPRESSIONS)}"
            )
        self.config = config
        self._make_source = make_source
        self._options = ParseOptions(timezone=config.timezone)
        self._parser: Parser | None = None
        self._format = config.format
        if self._format is not None:
            self._parser = compiled_parser(self._format, self._options)
        self._where = f"{config.url} (shipper {config.shipper_id})"
        self.summary = ShipSummary(format=self._format)
        #: Deliveries the broker refused since the last commit, and why.
        self._refused = 0
        self._refusal: KafkaError | None = None
        self._producer = Producer(self._producer_settings())
        self._pending_lines = 0
        self._sample: list[str] = []

    def _producer_settings(self) -> dict[str, Any]:
        config = self.config
        settings: dict[str, Any] = {
            "bootstrap.servers": config.url.bootstrap,
            "client.id": f"logweir-ship-{config.shipper_id}",
            "enable.idempotence": True,
            "compression.type": config.compression,
            "linger.ms": config.linger_ms,
            "batch.size": 1 << 20,
            # A transaction holds up to commit_lines messages in flight.
            "queue.buffering.max.messages": max(100_000, 2 * config.commit_lines),
            "error_cb": self._on_error,
            # Reports for failed deliveries only: a callback per good line
            # would cost more than producing it.
            "delivery.report.only.error": True,
            "on_delivery": self._on_delivery,
        }
        if config.transactions:
            settings["transactional.id"] = f"logweir-ship-{config.shipper_id}"
            settings["transaction.timeout.ms"] = int(TRANSACTION_TIMEOUT_S * 1000)
        settings.update(config.producer_config)
        return settings

    # -- running -------------------------------------------------------------

    def run(self, stop: threading.Event) -> ShipSummary:
        """Ship until ``stop`` is set (or idle for ``exit_when_idle_s``).

        Commits what was produced before returning. Raises
        :class:`SinkError` when the broker refuses for good (a fenced
        shipper: another one runs with the same id).
        """
        started = time.perf_counter()
        self._prepare()
        positions = read_positions(
            self.config.url.bootstrap,
            self.config.checkpoint_topic,
            self.config.shipper_id,
        )
        if positions is not None:
            logger.info("ship: resuming %s from its last commit", self._where)
        source = self._make_source(positions)
        try:
            self._loop(source, stop)
        finally:
            source.close()
            self.summary.elapsed_s = time.perf_counter() - started
        return self.summary

    def _prepare(self) -> None:
        """Create the topics if needed; fence an older shipper with our id."""
        admin = AdminClient({"bootstrap.servers": self.config.url.bootstrap})
        ensure_topic(
            admin,
            self.config.checkpoint_topic,
            partitions=1,
            settings={"cleanup.policy": "compact"},
        )
        if self.config.partitions is not None:
            ensure_topic(admin, self.config.url.topic, self.config.partitions)
        if self.config.transactions:
            # Aborts whatever an earlier run of this id left open.
            self._call(self._producer.init_transactions, TRANSACTION_TIMEOUT_S)
            self._producer.begin_transaction()

    def _loop(self, source: StreamSource, stop: threading.Event) -> None:
        idle_s = self.config.exit_when_idle_s
        last_commit = last_data = time.monotonic()
        while not stop.is_set():
            batches = source.poll(0.1)
            now = time.monotonic()
            if batches:
                last_data = now
                for batch in batches:
                    try:
                        self._produce(batch)
                    except KafkaException as error:
                        # The transaction failed (a batch the broker
                        # refused): the rest of the poll is read again.
                        source = self._recover(source, error)
                        break
            due = now - last_commit >= self.config.commit_interval_s
            if self._pending_lines and (
                due or self._pending_lines >= self.config.commit_lines
            ):
                source = self._commit(source)
                last_commit = time.monotonic()
            if idle_s is not None and now - last_data >= idle_s:
                logger.info("ship: no new lines for %.1f s; stopping", idle_s)
                break
        if self._pending_lines or self.config.transactions:
            self._commit(source, final=True)

    def _produce(self, batch: SourceBatch) -> None:
        lines = batch.lines
        keys = self._keys(batch)
        topic = self.config.url.topic
        produce = self._producer.produce
        for value, key in zip(lines.lines.to_list(), keys.to_list(), strict=True):
            while True:
                try:
                    produce(topic, value, key)
                    break
                except BufferError:
                    # The local queue is full: let librdkafka send some.
                    self._producer.poll(0.05)
        self._producer.poll(0)
        self._pending_lines += len(lines)
        self.summary.lines += len(lines)
        self.summary.bytes += batch.end - batch.start

    def _keys(self, batch: SourceBatch) -> pl.Series:
        """The client IP of each line; the line's source where there is none."""
        lines = batch.lines
        parser = self._parser_for(batch)
        fallback = pl.lit(lines.source)
        if parser is None:
            self.summary.unkeyed += len(lines)
            return pl.select(fallback.repeat_by(len(lines)).explode()).to_series()
        events = parser.parse(lines).events.select("offset", "client_ip")
        keyed = (
            pl.DataFrame({"offset": lines.offsets})
            .join(events, on="offset", how="left", maintain_order="left")
            .get_column("client_ip")
        )
        self.summary.unkeyed += keyed.null_count()
        return keyed.fill_null(lines.source)

    def _parser_for(self, batch: SourceBatch) -> Parser | None:
        """The given format's parser, or one detected from the first lines.

        Detection waits for :data:`DETECT_LINES` lines (gathered over the
        first batches, which are keyed by file meanwhile) before it gives up.
        """
        if self._parser is not None or self._format == "":
            return self._parser
        from logweir.formats.detect import detect_format

        room = DETECT_LINES - len(self._sample)
        self._sample.extend(
            line for line in batch.lines.lines.head(room).to_list() if line.strip()
        )
        detection = detect_format(
            self._sample, self._options, source=batch.lines.source
        )
        if detection.name is None:
            if len(self._sample) < DETECT_LINES:
                return None  # too few lines to judge yet
            logger.warning(
                "ship: cannot detect the format of %s (%s); lines are keyed by "
                "file, not client",
                batch.lines.source,
                " ".join(detection.explanation.split()),
            )
            self._format = ""  # do not try again
            return None
        logger.info("ship: detected format %s", detection.name)
        self._format = self.summary.format = detection.name
        self._parser = compiled_parser(detection.name, self._options)
        self._sample = []
        return self._parser

    # -- committing ----------------------------------------------------------

    def _commit(self, source: StreamSource, final: bool = False) -> StreamSource:
        """Commit the lines produced so far with the source's positions.

        Returns the source to go on with: the same one, or (after an
        aborted transaction) a new one built from the last committed
        positions, which hands the aborted lines out again.
        """
        positions = source.positions()
        record = json.dumps(
            {"positions": positions, "lines": self.summary.lines}, separators=(",", ":")
        )
        try:
            if not self.config.transactions:
                # Every line acknowledged, and none refused, before the
                # positions are written.
                self._flush()
                self._check_delivered()
            self._producer.produce(
                self.config.checkpoint_topic,
                record.encode(),
                self.config.shipper_id.encode(),
                partition=0,
            )
            if self.config.transactions:
                self._call(self._producer.commit_transaction, TRANSACTION_TIMEOUT_S)
            else:
                self._flush()
        except KafkaException as error:
            return self._recover(source, error)
        self.summary.transactions += 1
        logger.debug(
            "ship: committed %d lines (%d in all)",
            self._pending_lines,
            self.summary.lines,
        )
        self._pending_lines = 0
        source.commit(positions)
        if self.config.transactions and not final:
            self._producer.begin_transaction()
        return source

    def _recover(self, source: StreamSource, error: KafkaException) -> StreamSource:
        """After ``error`` from the producer: abort the transaction and rewind
        (:meth:`_abort`) where that is the cure, else raise :class:`SinkError`.

        Once a message of the transaction has failed, librdkafka refuses
        further ``produce`` calls with ``_STATE`` ("Erroneous state") until
        the transaction is aborted; that error is as abortable as the one
        ``commit_transaction`` reports. Were the producer fenced or broken
        for good, ``abort_transaction`` itself fails, and :meth:`_abort`
        says so.
        """
        if self.config.transactions and (_abortable(error) or _state_error(error)):
            return self._abort(source, error)
        raise SinkError(f"{self._where}: {_reason(error)}") from None

    def _abort(self, source: StreamSource, error: KafkaException) -> StreamSource:
        logger.warning(
            "ship: transaction aborted (%s); its %d lines go out again",
            _reason(error),
            self._pending_lines,
        )
        try:
            self._call(self._producer.abort_transaction, TRANSACTION_TIMEOUT_S)
        except KafkaException as fatal:
            raise SinkError(
                f"{self._where}: cannot abort the failed transaction: {_reason(fatal)}"
            ) from None
        self.summary.aborted += 1
        self.summary.lines -= self._pending_lines
        self._pending_lines = 0
        self._refused, self._refusal = 0, None
        source.close()
        positions = read_positions(
            self.config.url.bootstrap,
            self.config.checkpoint_topic,
            self.config.shipper_id,
        )
        self._producer.begin_transaction()
        return self._make_source(positions)

    def _on_delivery(self, error: KafkaError | None, message: Any) -> None:
        """librdkafka's report of a failed delivery (called from ``poll``)."""
        if error is not None:
            self._refused += 1
            if self._refusal is None:
                self._refusal = error

    def _check_delivered(self) -> None:
        """Raise :class:`SinkError` if the broker refused any line since
        the last commit (the positions then stay where they were)."""
        if not self._refused:
            return
        assert self._refusal is not None
        raise SinkError(
            f"{self._where}: {self._refused} lines were not delivered "
            f"({_reason(KafkaException(self._refusal))}); positions not "
            "advanced, so the next start sends them again"
        )

    def _flush(self) -> None:
        left = self._producer.flush(TRANSACTION_TIMEOUT_S)
        if left:
            raise SinkError(
                f"{self._where}: {left} messages not acknowledged after "
                f"{TRANSACTION_TIMEOUT_S:.0f} s"
            )

    def _call(self, method: Callable[[float], None], timeout_s: float) -> None:
        """A transactional call, retried while the broker says it may be."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                method(timeout_s)
                return
            except KafkaException as error:
                kafka_error = error.args[0]
                if kafka_error.retriable() and time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                raise

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            logger.error("ship: fatal: %s", error.str())
        else:
            logger.warning("ship: %s", error.str())


def _abortable(error: KafkaException) -> bool:
    kafka_error = error.args[0] if error.args else None
    return isinstance(kafka_error, KafkaError) and bool(
        kafka_error.txn_requires_abort()
    )


def _state_error(error: KafkaException) -> bool:
    kafka_error = error.args[0] if error.args else None
    return isinstance(kafka_error, KafkaError) and kafka_error.code() == (
        KafkaError._STATE
    )


def _reason(error: KafkaException) -> str:
    kafka_error = error.args[0] if error.args else None
    if isinstance(kafka_error, KafkaError):
        return str(kafka_error.str())
    return str(error)


def ensure_topic(
    admin: AdminClient,
    topic: str,
    partitions: int,
    settings: dict[str, str] | None = None,
) -> None:
    """Create ``topic`` unless it exists (then its settings are left alone)."""
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, config=settings or {})],
        operation_timeout=30,
    )
    try:
        futures[topic].result(timeout=60)
    except KafkaException as error:
        if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise SinkError(
                f"cannot create topic {topic!r}: {_reason(error)}"
            ) from None
    else:
        logger.info("ship: created topic %s (%d partitions)", topic, partitions)


def read_positions(
    bootstrap: str, topic: str, shipper_id: str, timeout_s: float = 60.0
) -> Positions | None:
    """The positions of ``shipper_id``'s last committed transaction, if any.

    Reads the checkpoint topic ``read_committed`` to its end: the last
    record keyed by ``shipper_id`` wins (compaction keeps only that one).
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"logweir-ship-{shipper_id}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        return _read_last(consumer, topic, shipper_id.encode(), timeout_s)
    except KafkaException as error:
        code = error.args[0].code() if error.args else None
        if code in (KafkaError._UNKNOWN_PARTITION, KafkaError.UNKNOWN_TOPIC_OR_PART):
            return None  # no shipper has committed yet
        raise SourceError(f"cannot read {topic}: {_reason(error)}") from None
    finally:
        consumer.close()


def _read_last(
    consumer: Consumer, topic: str, key: bytes, timeout_s: float
) -> Positions | None:
    partition = TopicPartition(topic, 0)
    low, high = consumer.get_watermark_offsets(partition, timeout=timeout_s)
    if high <= low:
        return None
    consumer.assign([TopicPartition(topic, 0, low)])
    deadline = time.monotonic() + timeout_s
    last: bytes | None = None
    while True:
        for message in consumer.consume(10_000, 0.2):
            if message.error() is None and message.key() == key:
                last = message.value()
        (at,) = consumer.position([partition])
        if at.offset >= high:
            break
        if time.monotonic() > deadline:
            raise SourceError(
                f"{topic}: read to offset {at.offset} of {high} in "
                f"{timeout_s:.0f} s (a transaction left open?)"
            )
    if last is None:
        return None
    try:
        value = json.loads(last)
        positions = value["positions"]
    except (ValueError, KeyError, TypeError):
        raise FormatError(f"{topic}: bad checkpoint record for {key!r}") from None
    if not isinstance(positions, dict):
        raise FormatError(f"{topic}: bad checkpoint record for {key!r}")
    return positions
