"""An in-memory :class:`~logweir.sources.stream.StreamSource` for pipeline tests.

Lines are handed out from lists, a few per poll and stream, with byte
offsets as a file would have them; positions are ``{stream: offset}``,
so a source rebuilt from them continues exactly where the committed ones
end. ``append`` adds lines while the pipeline runs; ``slow_poll_s``
delays every poll.
"""

from __future__ import annotations

import threading
import time

from logweir.schema import LineBatch
from logweir.sources.stream import Positions, RevokeHandler, SourceBatch


class MemorySource:
    def __init__(
        self,
        streams: dict[str, list[str]],
        positions: Positions | None = None,
        batch_lines: int = 50,
    ) -> None:
        self._lock = threading.Lock()
        self._lines = {name: list(lines) for name, lines in streams.items()}
        self._next = {name: 0 for name in streams}
        self._offsets: dict[str, list[int]] = {}
        for name, lines in self._lines.items():
            self._offsets[name] = _offsets(lines)
        if positions:
            for name, offset in positions.items():
                self._next[name] = self._offsets[name].index(offset)
        self.batch_lines = batch_lines
        #: At this poll, call the revoke handler first (as a Kafka rebalance
        #: does, inside poll); what was committed when it returned is kept.
        self.revoke_at_poll: int | None = None
        self.handed_out_at_revoke: Positions | None = None
        self.committed_at_revoke: list[Positions] = []
        self.revoke: RevokeHandler | None = None
        self.committed: list[Positions] = []
        self.closed = False
        self.polls = 0

    def append(self, stream: str, lines: list[str]) -> None:
        with self._lock:
            self._lines.setdefault(stream, []).extend(lines)
            self._next.setdefault(stream, 0)
            self._offsets[stream] = _offsets(self._lines[stream])

    def poll(self, timeout_s: float) -> list[SourceBatch]:
        self.polls += 1
        if self.polls == self.revoke_at_poll and self.revoke is not None:
            self.handed_out_at_revoke = self.positions()
            self.revoke(list(self._lines))
            self.committed_at_revoke = list(self.committed)
        batches = []
        with self._lock:
            for name, lines in self._lines.items():
                first = self._next[name]
                last = min(len(lines), first + self.batch_lines)
                if first == last:
                    continue
                offsets = self._offsets[name]
                batch = LineBatch.from_strings(
                    f"mem:{name}", lines[first:last], offsets[first], first + 1
                )
                batches.append(SourceBatch(name, offsets[first], offsets[last], batch))
                self._next[name] = last
        if not batches:
            time.sleep(min(timeout_s, 0.01))
        return batches

    def positions(self) -> Positions:
        with self._lock:
            return {name: self._offsets[name][i] for name, i in self._next.items()}

    def commit(self, positions: Positions) -> None:
        self.committed.append(dict(positions))

    def on_revoke(self, handler: RevokeHandler) -> None:
        self.revoke = handler

    def close(self) -> None:
        self.closed = True


def _offsets(lines: list[str]) -> list[int]:
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line.encode()) + 1)
    return offsets
