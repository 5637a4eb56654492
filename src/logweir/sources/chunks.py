"""Split a plain file into line-aligned byte ranges for worker processes.

The boundaries depend only on the file and ``chunk_bytes``, never on the
number of workers: output files are named after the range they cover
(DESIGN, Delivery), so a re-run with another ``--workers`` must cut the
same ranges. Chunk ``k > 0`` starts right after the first ``\\n`` found at
or after byte ``k * chunk_bytes - 1``; so a line that starts exactly at a
multiple of ``chunk_bytes`` starts a chunk, and a line longer than
``chunk_bytes`` simply makes its chunk longer.

Planning reads the file once, up to the start of its last chunk, to count
the lines before each chunk, so that every chunk knows the 1-based number of
its first line and rejects carry exact line numbers. The pass only counts
newlines, several times faster than reading the lines (BENCHMARKS.md,
Sources); a file no larger than one chunk is not read at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from logweir.errors import SourceError
from logweir.sources.inputs import InputFile, os_error_message

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_BYTES = 64 * 1024 * 1024

#: Read size of the planning pass.
_PLAN_BLOCK_BYTES = 8 * 1024 * 1024

_NEWLINE = 10


@dataclass(frozen=True)
class Chunk:
    """A line-aligned piece of one input: bytes ``[start, end)``.

    ``end`` is ``None`` for a stream (standard input, a compressed file):
    those are read whole, from 0, and offsets are positions in the
    decompressed text. ``first_line`` is the 1-based number of the line that
    starts at ``start``.

    ``name`` is stable across runs and machines and unique per input and
    range, so it can be an output file's stem. When a file grows between
    two runs, its earlier chunks keep their names but its last chunk gets a
    longer range and so a new name: whoever writes outputs replaces the
    output of a superseded range (same fingerprint and start).
    """

    input: InputFile
    index: int
    start: int
    end: int | None
    first_line: int

    @property
    def name(self) -> str:
        end = "stream" if self.end is None else f"{self.end:012d}"
        return f"{self.input.fingerprint}-{self.start:012d}-{end}"

    @property
    def size_bytes(self) -> int | None:
        """Length of the range; ``None`` for a stream."""
        return None if self.end is None else self.end - self.start


def plan_chunks(inp: InputFile, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> list[Chunk]:
    """Cut ``inp`` into chunks that cover it exactly once.

    A stream or compressed input is one chunk; an empty file has none.
    The plan covers the file as :func:`~logweir.sources.expand_inputs` saw
    it: bytes appended later are left for the next run.
    """
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be positive, not {chunk_bytes}")
    if not inp.is_plain or inp.size_bytes is None:
        return [Chunk(inp, 0, 0, None, 1)]
    size = inp.size_bytes
    if size == 0:
        return []
    starts = _chunk_starts(inp, size, chunk_bytes)
    ends = [start for start, _ in starts[1:]] + [size]
    return [
        Chunk(inp, index, start, end, first_line)
        for index, ((start, first_line), end) in enumerate(
            zip(starts, ends, strict=True)
        )
    ]


def _chunk_starts(inp: InputFile, size: int, chunk_bytes: int) -> list[tuple[int, int]]:
    """``(start, first_line)`` of every chunk, in one pass over the file."""
    starts = [(0, 1)]
    k = 1  # the chunk whose start is sought
    lines_before = 0  # newlines in the bytes before ``position``
    position = 0
    buffer = bytearray(_PLAN_BLOCK_BYTES)
    try:
        with open(inp.path, "rb", buffering=0) as handle:
            # Stop at the last possible start, or at the end of the file when
            # the last line is longer than a chunk.
            while k * chunk_bytes - 1 < size - 1 and position < size:
                length = handle.readinto(buffer)
                if not length:
                    raise SourceError(
                        f"cannot read {inp.path!r}: the file shrank from "
                        f"{size} to {position} bytes while being planned"
                    )
                block = np.frombuffer(
                    buffer, np.uint8, count=min(length, size - position)
                )
                k = _starts_in_block(
                    block, position, lines_before, size, chunk_bytes, k, starts
                )
                lines_before += int(np.count_nonzero(block == _NEWLINE))
                position += block.size
    except OSError as error:
        raise SourceError(os_error_message(inp.path, error)) from error
    return starts


def _starts_in_block(
    block: np.ndarray,
    position: int,
    lines_before: int,
    size: int,
    chunk_bytes: int,
    k: int,
    starts: list[tuple[int, int]],
) -> int:
    """Append the chunk starts found in ``block``; return the next ``k`` sought."""
    end = position + block.size
    while k * chunk_bytes - 1 < size - 1:
        search_from = max(k * chunk_bytes - 1, position)
        if search_from >= end:
            break
        found = np.flatnonzero(block[search_from - position :] == _NEWLINE)
        if found.size == 0:
            break  # the line goes on in the next block
        newline = search_from + int(found[0])
        start = newline + 1
        if start < size:
            before = lines_before + int(
                np.count_nonzero(block[: newline - position] == _NEWLINE)
            )
            starts.append((start, before + 2))
        # The next chunk is the first whose search begins past this newline;
        # earlier ones would find the same newline (a very long line).
        k = max(k + 1, -(-(start + 1) // chunk_bytes))
    return k
