"""The worker's bounded stages: backpressure, order, errors, early stop."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from logweir.errors import SinkError, SourceError
from logweir.pipeline.worker import QUEUE_BATCHES, BoundedStage, prefetch
from logweir.schema import LineBatch


def test_a_slow_stage_blocks_the_feeder() -> None:
    release = threading.Event()
    handled: list[int] = []

    def slow(item: int) -> None:
        release.wait()
        handled.append(item)

    with BoundedStage("slow", slow) as stage:
        # One item in the handler, QUEUE_BATCHES waiting: the queue is full.
        for item in range(1 + QUEUE_BATCHES):
            stage.put(item)
        feeder = threading.Thread(target=stage.put, args=(99,))
        feeder.start()
        feeder.join(timeout=0.3)
        assert feeder.is_alive()  # blocked: the slow stage holds the feeder back
        release.set()
        feeder.join(timeout=10)
        assert not feeder.is_alive()
    assert handled == [*range(1 + QUEUE_BATCHES), 99]


def test_a_stage_error_reaches_the_feeder() -> None:
    def failing(item: int) -> None:
        raise SinkError(f"cannot write item {item}")

    stage = BoundedStage("failing", failing)
    with pytest.raises(SinkError, match="cannot write item 0"), stage:
        stage.put(0)
        stage.put(1)  # may or may not raise here; leaving the block does


def test_leaving_with_an_error_drops_the_queue() -> None:
    handled: list[int] = []
    release = threading.Event()
    busy = threading.Event()

    def handle(item: int) -> None:
        busy.set()
        release.wait()
        handled.append(item)

    # The handler is still busy with item 1 when the feeder fails; item 2 is
    # queued and must be dropped, not handled.
    timer = threading.Timer(0.2, release.set)
    stage = BoundedStage("dropping", handle)
    with pytest.raises(RuntimeError), stage:
        stage.put(1)
        assert busy.wait(10)
        stage.put(2)
        timer.start()
        raise RuntimeError("the feeder failed")
    assert handled == [1]


def _batches(count: int, fail_at: int | None = None) -> Iterator[LineBatch]:
    for index in range(count):
        if index == fail_at:
            raise SourceError(f"cannot read batch {index}")
        yield LineBatch.from_strings("s", [f"line {index}"], first_offset=index)


def test_prefetch_keeps_order() -> None:
    lines = [batch.lines[0] for batch in prefetch(_batches(10))]
    assert lines == [f"line {index}" for index in range(10)]


def test_prefetch_raises_where_the_batch_would_have_come() -> None:
    seen = []
    with pytest.raises(SourceError, match="cannot read batch 3"):
        for batch in prefetch(_batches(10, fail_at=3)):
            seen.append(batch.lines[0])
    assert seen == ["line 0", "line 1", "line 2"]


def test_closing_prefetch_early_stops_the_reader() -> None:
    batches = prefetch(_batches(1000))
    assert next(batches).lines[0] == "line 0"
    batches.close()  # must not hang on the reader's full queue
    assert not any(thread.name == "read" for thread in threading.enumerate())
