"""A real Apache Kafka broker for the Kafka tests, started once per session.

The broker is the one ``scripts/kafka/start.sh`` starts (a single-node
KRaft broker from Kafka's published jars, on loopback). Where
``LOGWEIR_KAFKA_BOOTSTRAP`` is set (``.ci/run`` may start one broker for
the whole run), that broker is used and left running. A broker that
cannot start skips these tests on a developer's machine and fails them
under ``CI=true``.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import NewTopic
from kafka_helpers import Broker

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = REPO_ROOT / "scripts" / "kafka"
#: The first start downloads the jars (minutes); later ones take seconds.
START_TIMEOUT_S = 900


def _unavailable(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """The broker's bootstrap address; started here unless one is given."""
    given = os.environ.get("LOGWEIR_KAFKA_BOOTSTRAP")
    if given:
        yield Broker(given, None)
        return
    run_dir = tmp_path_factory.mktemp("kafka-broker")
    try:
        started = subprocess.run(
            [str(SCRIPTS / "start.sh"), str(run_dir)],
            stdout=subprocess.PIPE,
            text=True,
            timeout=START_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        _unavailable(f"cannot start a Kafka broker: {error}")
        raise AssertionError("unreachable") from None
    if started.returncode != 0 or not started.stdout.strip():
        _unavailable(
            f"scripts/kafka/start.sh failed (exit {started.returncode}); "
            "see its output above"
        )
    broker = Broker(started.stdout.strip().splitlines()[-1], run_dir)
    try:
        yield broker
    finally:
        subprocess.run(
            [str(SCRIPTS / "stop.sh"), str(run_dir)], check=False, timeout=120
        )


_names = itertools.count()


@pytest.fixture
def new_topic(kafka_broker: Broker) -> Callable[[int], str]:
    """Creates a topic with a fresh name and ``partitions`` partitions."""

    def create(partitions: int = 4) -> str:
        name = f"t{next(_names)}-{uuid.uuid4().hex[:8]}"
        admin = kafka_broker.admin()  # kept alive until the topic exists
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1)]
        )
        futures[name].result(timeout=60)
        return name

    return create
