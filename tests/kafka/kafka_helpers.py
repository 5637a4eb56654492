"""Helpers of the Kafka tests (imported by them and by conftest)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient


@dataclass(frozen=True)
class Broker:
    bootstrap: str
    run_dir: Path | None

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap})


def produce_lines(
    bootstrap: str, topic: str, lines: list[bytes], key: Callable[[bytes], bytes]
) -> None:
    """Produce each line as one message (a plain producer, not the shipper)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for line in lines:
        producer.produce(topic, line, key(line))
    assert producer.flush(60) == 0
