"""What a live source hands the streaming pipeline, and what it is told back.

A batch run knows its input in advance and splits it into chunks. A live
source does not: a followed file grows, rotates and is truncated; a Kafka
topic's partitions move between consumers. Both are polled for
:class:`SourceBatch` es and told when the sinks have committed, so the
pipeline above them is the same (``logweir.pipeline.stream``).

Positions are opaque to the pipeline: a source returns them from
:meth:`StreamSource.positions` as a JSON-compatible value, the pipeline
stores that value in its checkpoint only after every sink has committed
the batches handed out before the call, and a restarted source is built
from it again. Kafka sources also commit offsets to the broker in
:meth:`StreamSource.commit`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from logweir.schema import LineBatch

#: A JSON-compatible value: what a source needs to resume.
Positions = dict[str, Any]


@dataclass(frozen=True)
class SourceBatch:
    """Complete lines from one stream of a source, and where they lie.

    ``stream`` names what the positions count within for good: a followed
    file's identity (its fingerprint, not its name) or a Kafka
    ``topic/partition``. ``start`` and ``end`` are the positions of the
    first line and just past the last one (bytes for a file, offsets for a
    partition); output files derive their names from ``stream``, ``start``
    and ``end``, so replaying the same lines writes the same files.
    ``lines.source`` is what lands in the events' ``source`` column and
    ``lines.offsets`` their ``offset``: together unique for every line ever
    read, across rotations and partitions.
    """

    stream: str
    start: int
    end: int
    lines: LineBatch


#: Called by a source when it is about to lose some streams (a Kafka
#: rebalance): the pipeline flushes and commits what it holds of them
#: before the call returns.
RevokeHandler = Callable[[list[str]], None]


class StreamSource(Protocol):
    """A source the streaming pipeline polls (see the module docstring)."""

    def poll(self, timeout_s: float) -> list[SourceBatch]:
        """Batches that are ready, waiting at most ``timeout_s`` for the first."""
        ...

    def positions(self) -> Positions:
        """Where every stream stands after the batches handed out so far."""
        ...

    def commit(self, positions: Positions) -> None:
        """The sinks have committed everything up to ``positions``."""
        ...

    def on_revoke(self, handler: RevokeHandler) -> None:
        """Register the pipeline's flush-and-commit hook (may never be called)."""
        ...

    def close(self) -> None:
        """Release files, watches and connections."""
        ...


# A source may also have a boolean ``settling`` attribute: true while it
# cannot deliver yet (a Kafka consumer joining its group). ``exit_when_idle``
# counts idle time only once it is false; sources without it never settle.
