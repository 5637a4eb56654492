"""Which format each input is in: the one given, or one detected from a sample.

With ``--format`` every input uses it, compiled here once so that a bad
format stops the run before any file is read. Without it, each input's
first lines (:data:`SAMPLE_BYTES`, at most :data:`SAMPLE_LINES` lines) go
to :func:`logweir.formats.detect.detect_format`, and the choice and how
well it fit are kept for the report.

Standard input can be sampled only by reading it; :class:`RewoundStdin`
keeps the sampled bytes and gives them back in front of the rest, so the
run still reads every line once.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from typing import IO, Any, cast

from logweir.errors import FormatError, SourceError
from logweir.formats.base import ParseOptions
from logweir.formats.registry import compile_format
from logweir.sources import STDIN, Chunk, InputFile, read_chunk, read_stream

#: How much of each input detection reads.
SAMPLE_BYTES = 256 * 1024

#: How many lines detection looks at, at most.
SAMPLE_LINES = 1000


@dataclass(frozen=True)
class FormatChoice:
    """The format an input is parsed with, and why.

    ``spec`` is what the parser is compiled from; ``matched`` and
    ``sample_lines`` say how many sampled lines it parsed (detection only).
    """

    spec: str
    name: str
    detected: bool
    matched: int = 0
    sample_lines: int = 0

    @property
    def match_share(self) -> float | None:
        if not self.detected or not self.sample_lines:
            return None
        return self.matched / self.sample_lines

    def describe(self) -> str:
        """One phrase for the report: ``combined (detected: 998/1000 lines)``."""
        if not self.detected:
            return f"{self.spec} (given)"
        return f"{self.name} (detected: {self.matched}/{self.sample_lines} lines fit)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "name": self.name,
            "detected": self.detected,
            "matched": self.matched,
            "sample_lines": self.sample_lines,
        }


class _Rejoined(io.RawIOBase):
    """``head`` followed by the rest of ``rest``, as one raw stream."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if len(self._head):
            count = min(len(view), len(self._head))
            view[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        # Standard input is a buffered reader, which has readinto.
        rest = cast(io.BufferedIOBase, self._rest)
        return rest.readinto(view)


class RewoundStdin:
    """Standard input that can be sampled and then read from its start."""

    def __init__(self, raw: IO[bytes] | None = None) -> None:
        self._raw = raw
        self._head = b""
        self._taken = False

    def _source(self) -> IO[bytes]:
        return self._raw if self._raw is not None else sys.stdin.buffer

    def peek(self, size_bytes: int) -> bytes:
        """The first ``size_bytes`` of the stream (fewer at its end)."""
        if self._taken:
            raise SourceError("standard input was already read")
        source = self._source()
        parts = [self._head]
        have = len(self._head)
        while have < size_bytes:
            part = source.read(size_bytes - have)
            if not part:
                break
            parts.append(part)
            have += len(part)
        self._head = b"".join(parts)
        return self._head

    def stream(self) -> IO[bytes]:
        """The whole stream, sampled bytes first; can be taken once."""
        if self._taken:
            raise SourceError("standard input was already read")
        self._taken = True
        return io.BufferedReader(_Rejoined(self._head, self._source()))


#: The process's standard input, shared by sampling and reading.
STANDARD_INPUT = RewoundStdin()


def sample_lines(inp: InputFile, stdin: RewoundStdin = STANDARD_INPUT) -> list[str]:
    """The first lines of ``inp``, blank ones left out, for detection."""
    if inp.path == STDIN:
        head = stdin.peek(SAMPLE_BYTES)
        batches = read_stream(io.BytesIO(head), STDIN, SAMPLE_BYTES)
        partial_tail = len(head) == SAMPLE_BYTES
    else:
        end = None
        partial_tail = False
        if inp.is_plain and inp.size_bytes is not None:
            end = min(inp.size_bytes, SAMPLE_BYTES)
            partial_tail = end < inp.size_bytes
        chunk = Chunk(inp, 0, 0, end, 1)
        batches = read_chunk(chunk, batch_bytes=SAMPLE_BYTES)
    lines: list[str] = []
    try:
        for batch in batches:
            lines.extend(batch.lines.to_list())
            if len(lines) > SAMPLE_LINES:
                break
    except SourceError:
        if not lines:  # a sample cut inside compressed data still has lines
            raise
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    if partial_tail and lines:
        lines.pop()  # the sample ended inside this line
    return [line for line in lines if line.strip()][:SAMPLE_LINES]


def _detect(inp: InputFile, options: ParseOptions) -> FormatChoice:
    from logweir.formats.detect import detect_format

    lines = sample_lines(inp)
    if not lines:
        return FormatChoice(spec="combined", name="combined", detected=True)
    detection = detect_format(lines, options, source=inp.path)
    if detection.name is None:
        why = " ".join(detection.explanation.split())
        raise FormatError(f"cannot detect the format of {inp.path!r}: {why}")
    return FormatChoice(
        spec=detection.name,
        name=detection.name,
        detected=True,
        matched=round(detection.match_rate * detection.sampled),
        sample_lines=detection.sampled,
    )


def choose_formats(
    inputs: list[InputFile], spec: str | None, options: ParseOptions
) -> dict[str, FormatChoice]:
    """The format of every input, by path.

    Raises :class:`FormatError` for a bad ``spec``, or for an input whose
    format cannot be detected.
    """
    if spec is not None:
        parser = compile_format(spec, options)
        choice = FormatChoice(spec=spec, name=parser.name, detected=False)
        return {inp.path: choice for inp in inputs}
    return {inp.path: _detect(inp, options) for inp in inputs}
