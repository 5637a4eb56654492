"""Read bytes in large blocks and cut them into :class:`LineBatch` es.

This is the hot path of every run, so a block is handled whole: numpy finds
its newlines, Arrow wraps its bytes as one string array without copying them
line by line, and Polars drops the newline of every line at once. Lines
holding bytes that are not UTF-8 take a slower road, one by one: each bad
sequence becomes U+FFFD, while offsets still count raw bytes.

:class:`LineSplitter` keeps the state between blocks (the partial last
line, the offset and the line number reached), so one splitter serves a
chunk of a file, a whole compressed file, standard input, and a file being
followed: the follow mode feeds it what was appended and never calls
:meth:`~LineSplitter.finish`, so a partial last line waits for its ``\\n``,
and :attr:`~LineSplitter.position` is the offset to checkpoint.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import logging
import lzma
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa
import zstandard

from logweir.errors import SourceError
from logweir.schema import LineBatch
from logweir.sources.chunks import Chunk
from logweir.sources.inputs import (
    STDIN,
    Compression,
    os_error_message,
    sniff_compression,
)

logger = logging.getLogger(__name__)

DEFAULT_BATCH_BYTES = 16 * 1024 * 1024

#: The most bytes of an unfinished line held while waiting for its newline:
#: when more arrive, the first this many are handed out as a line of their
#: own (and so, most likely, a reject). A binary file or a log without
#: newlines must not exhaust memory; a long line read whole is kept whole.
DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024

_NEWLINE = 10

#: Enough leading bytes to recognise every supported compression.
_SNIFF_BYTES = 16

ReadInto = Callable[[memoryview], int]


class LineSplitter:
    """Cuts a byte stream into batches of complete lines.

    ``position`` is the offset, in the raw (decompressed) stream, of the
    first byte not yet handed out as part of a line, and ``line_number``
    the number the next line will get. Bytes after the last ``\\n`` are
    held until more bytes or :meth:`finish` arrive.

    >>> splitter = LineSplitter("app.log")
    >>> batch = splitter.feed(b"one\\ntw")
    >>> batch.lines.to_list(), splitter.position
    (['one'], 4)
    >>> splitter.finish().lines.to_list()
    ['tw']
    """

    def __init__(
        self,
        source: str,
        position: int = 0,
        line_number: int = 1,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    ) -> None:
        self.source = source
        self.position = position
        self.line_number = line_number
        self.max_line_bytes = max_line_bytes
        self._pending = b""
        # Where the newline test writes its answer, reused block after block:
        # a fresh 32 MiB mask per block cost 5 % of a whole run in page
        # faults alone (perf).
        self._mask = np.empty(0, dtype=np.bool_)

    @property
    def pending_bytes(self) -> int:
        """Bytes held back as the start of a line not yet complete."""
        return len(self._pending)

    def feed(self, data: bytes | bytearray | memoryview) -> LineBatch | None:
        """Add ``data``; return the lines it completes, if any."""
        carry = len(self._pending)
        buffer = np.empty(carry + len(data), np.uint8)
        buffer[:carry] = np.frombuffer(self._pending, np.uint8)
        buffer[carry:] = np.frombuffer(data, np.uint8)
        return self.cut(buffer)

    def read(self, read_into: ReadInto, batch_bytes: int) -> Iterator[LineBatch]:
        """Read through ``read_into`` until it returns 0; yield full lines.

        Each read asks for ``batch_bytes`` more bytes, placed after the
        pending bytes, so a block is never copied to be joined to them.
        """
        while True:
            carry = len(self._pending)
            # np.empty, not bytearray: zero-filling 16 MiB costs as much as
            # reading it from the page cache.
            buffer = np.empty(carry + batch_bytes, np.uint8)
            buffer[:carry] = np.frombuffer(self._pending, np.uint8)
            length = carry + _fill(read_into, buffer.data[carry:])
            if length == carry:
                return
            batch = self.cut(buffer[:length])
            if batch is not None:
                yield batch

    def cut(self, block: np.ndarray) -> LineBatch | None:
        """Split ``block`` (uint8), which starts with the pending bytes.

        Complete lines become the returned batch; the rest is kept pending.
        ``block`` must not be changed afterwards: the batch may share it.
        Bytes of lines that are not UTF-8 may be overwritten in it.
        """
        if self._mask.size < block.size:
            self._mask = np.empty(block.size, dtype=np.bool_)
        mask = self._mask[: block.size]
        np.equal(block, _NEWLINE, out=mask)
        newlines = np.flatnonzero(mask)
        if newlines.size:
            end = int(newlines[-1]) + 1
            self._pending = block[end:].tobytes()
            return self._batch(block[:end], newlines)
        if block.size < self.max_line_bytes:
            self._pending = block.tobytes()
            return None
        logger.warning(
            "line longer than %d bytes cut into pieces source=%s offset=%d",
            self.max_line_bytes,
            self.source,
            self.position,
        )
        self._pending = block[self.max_line_bytes :].tobytes()
        return self._last_line(block[: self.max_line_bytes])

    def finish(self) -> LineBatch | None:
        """End of input: the pending bytes, if any, are a last line."""
        if not self._pending:
            return None
        block = np.frombuffer(self._pending, np.uint8)
        self._pending = b""
        return self._last_line(block)

    def _last_line(self, block: np.ndarray) -> LineBatch:
        """``block`` as one line that has no newline of its own."""
        closed = np.empty(block.size + 1, np.uint8)
        closed[:-1] = block
        closed[-1] = _NEWLINE  # virtual: offsets count only the real bytes
        batch = self._batch(closed, np.array([block.size]))
        self.position -= 1
        return batch

    def _batch(self, block: np.ndarray, newlines: np.ndarray) -> LineBatch:
        """The lines of ``block``, which ends with the last of ``newlines``."""
        count = newlines.size
        starts = np.empty(count, np.int64)
        starts[0] = 0
        starts[1:] = newlines[:-1] + 1
        batch = LineBatch(
            source=self.source,
            lines=_decode_lines(block, starts),
            offsets=pl.Series("offset", starts + self.position, dtype=pl.UInt64),
            line_numbers=pl.Series(
                "line_number",
                np.arange(self.line_number, self.line_number + count, dtype=np.uint64),
                dtype=pl.UInt64,
            ),
        )
        self.position += block.size
        self.line_number += count
        return batch


def _decode_lines(block: np.ndarray, starts: np.ndarray) -> pl.Series:
    """Lines of ``block``, each ending in ``\\n``, as a String series without it."""
    array = _string_array(block, starts)
    try:
        array.validate(full=True)
    except pa.ArrowInvalid:
        return _decode_with_replacement(block, starts)
    series = pl.from_arrow(array)
    assert isinstance(series, pl.Series)
    # Every line still ends in its newline, one byte: drop it in one pass.
    return series.str.head(-1).alias("line")


def _decode_with_replacement(block: np.ndarray, starts: np.ndarray) -> pl.Series:
    """The slow road, for a block with bytes that are not UTF-8.

    Only the lines holding such bytes are decoded one by one, with U+FFFD
    for each bad sequence; the rest of the block still goes through Arrow.
    To get there, the bad lines' non-ASCII bytes are masked (same length,
    so every offset holds) in the block itself when it is writable, which
    :meth:`LineSplitter.cut` allows, and their decoded text is put back in
    afterwards.
    """
    ends = np.append(starts[1:], block.size)
    bad = _lines_not_utf8(block, starts)
    masked = block if block.flags.writeable else block.copy()
    texts = []
    for line in bad:
        piece = masked[starts[line] : ends[line]]
        texts.append(piece.tobytes().decode("utf-8", "replace"))
        piece[piece >= 0x80] = ord("?")
    series = pl.from_arrow(_string_array(masked, starts))
    assert isinstance(series, pl.Series)
    series = series.scatter(bad, pl.Series(texts, dtype=pl.String))
    return series.str.head(-1).alias("line")


def _lines_not_utf8(block: np.ndarray, starts: np.ndarray) -> list[int]:
    """Indices of the lines of ``block`` that are not valid UTF-8.

    Only lines holding a byte above 0x7F can be bad; each of those is
    decoded on its own. (Resuming a whole-block decode after each error
    costs a pass over the rest of the block per bad line.)
    """
    # A megabyte at a time: one comparison over the whole block would need a
    # fresh mask of its size (and the page faults to zero it).
    step = 1 << 20
    high = np.concatenate(
        [
            np.flatnonzero(block[first : first + step] >= 0x80) + first
            for first in range(0, block.size, step)
        ]
        or [np.empty(0, dtype=np.int64)]
    )
    candidates = np.unique(np.searchsorted(starts, high, "right") - 1)
    ends = np.append(starts[1:], block.size)
    bad = []
    for line in candidates.tolist():
        try:
            codecs.utf_8_decode(block.data[starts[line] : ends[line]], "strict", True)
        except UnicodeDecodeError:
            bad.append(line)
    return bad


def _string_array(block: np.ndarray, starts: np.ndarray) -> pa.Array:
    """An Arrow string array over ``block`` itself, cut at ``starts``."""
    offsets = np.empty(starts.size + 1, np.int64)
    offsets[:-1] = starts
    offsets[-1] = block.size
    return pa.LargeStringArray.from_buffers(
        starts.size, pa.py_buffer(offsets), pa.py_buffer(block)
    )


def _read_into_of(stream: Any) -> ReadInto:
    """``stream.readinto`` where it exists, else the same built on ``read``."""
    method = getattr(stream, "readinto", None)
    if method is not None:

        def read_into(view: memoryview) -> int:
            return int(method(view) or 0)

        return read_into

    def read_into_by_read(view: memoryview) -> int:
        data = stream.read(len(view))
        view[: len(data)] = data
        return len(data)

    return read_into_by_read


def _fill(read_into: ReadInto, view: memoryview) -> int:
    """Read into ``view`` until it is full or the input ends; return bytes read."""
    total = 0
    while total < len(view):
        got = read_into(view[total:])
        if not got:
            break
        total += got
    return total


def read_chunk(
    chunk: Chunk,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Iterator[LineBatch]:
    """Yield the lines of ``chunk`` in batches of about ``batch_bytes``.

    Raises :class:`SourceError` if the file cannot be read, changed since
    the chunk was planned, or holds corrupt compressed data (after yielding
    the lines read before the damage).
    """
    inp = chunk.input
    if inp.is_stream and inp.path == STDIN:
        raise SourceError("standard input is read with read_stream, not read_chunk")
    try:
        with open(inp.path, "rb", buffering=0) as raw:
            if inp.is_stream or inp.compression is not None:
                yield from read_stream(
                    raw,
                    inp.path,
                    batch_bytes,
                    compression=inp.compression,
                    max_line_bytes=max_line_bytes,
                )
                return
            yield from _read_range(raw, chunk, batch_bytes, max_line_bytes)
    except OSError as error:
        raise SourceError(os_error_message(inp.path, error)) from error


def _read_range(
    raw: IO[bytes], chunk: Chunk, batch_bytes: int, max_line_bytes: int
) -> Iterator[LineBatch]:
    path = chunk.input.path
    assert chunk.end is not None
    if chunk.start > 0:
        raw.seek(chunk.start - 1)
        if raw.read(1) != b"\n":
            raise SourceError(
                f"cannot read {path!r}: the file changed since it was planned "
                f"(byte {chunk.start} no longer starts a line)"
            )
    remaining = chunk.end - chunk.start
    read_raw = _read_into_of(raw)

    def read_into(view: memoryview) -> int:
        nonlocal remaining
        got = read_raw(view[: min(len(view), remaining)])
        remaining -= got
        return got

    splitter = LineSplitter(path, chunk.start, chunk.first_line, max_line_bytes)
    # Never ask for more than the range holds: a small file needs no 16 MiB
    # buffer.
    yield from splitter.read(read_into, max(1, min(batch_bytes, remaining)))
    if remaining:
        raise SourceError(
            f"cannot read {path!r}: the file shrank while being read "
            f"(ended at byte {chunk.end - remaining}, expected {chunk.end})"
        )
    last = splitter.finish()
    if last is not None:
        yield last


def read_stream(
    binary_file: IO[bytes],
    source: str = STDIN,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    *,
    compression: Compression | Literal["auto"] | None = "auto",
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Iterator[LineBatch]:
    """Yield the lines of a binary stream (standard input, a pipe, a file).

    ``compression="auto"`` recognises gzip, bzip2, xz and zstd from the
    first bytes; offsets are positions in the decompressed text. The stream
    is read in blocks of ``batch_bytes``, so lines from a slow pipe appear
    when a block fills or the pipe closes.
    """
    if compression == "auto":
        head = bytearray(_SNIFF_BYTES)
        got = _fill(_read_into_of(binary_file), memoryview(head))
        del head[got:]
        stream: IO[bytes] = io.BufferedReader(_Prefixed(bytes(head), binary_file))
        compression = sniff_compression(bytes(head))
    else:
        stream = binary_file
    splitter = LineSplitter(source, max_line_bytes=max_line_bytes)
    decompressed = _decompress(stream, compression)
    try:
        yield from splitter.read(_read_into_of(decompressed), batch_bytes)
    except (EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError) as error:
        raise SourceError(_corrupt(source, compression, splitter, error)) from error
    except OSError as error:
        if compression is None:  # an I/O error of the stream, not bad data
            raise SourceError(os_error_message(source, error)) from error
        raise SourceError(_corrupt(source, compression, splitter, error)) from error
    last = splitter.finish()
    if last is not None:
        yield last


def _corrupt(
    source: str,
    compression: Compression | None,
    splitter: LineSplitter,
    error: BaseException,
) -> str:
    reached = splitter.position + splitter.pending_bytes
    return (
        f"cannot read {source!r}: corrupt or truncated {compression} data after "
        f"{reached} bytes of text ({error})"
    )


def _decompress(stream: IO[bytes], compression: str | None) -> Any:
    """A file object that yields the decompressed bytes of ``stream``."""
    if compression is None:
        return stream
    if compression == "gzip":
        return gzip.GzipFile(fileobj=stream, mode="rb")
    if compression == "bz2":
        return bz2.BZ2File(stream, mode="rb")
    if compression == "xz":
        return lzma.LZMAFile(stream, mode="rb")
    if compression == "zstd":
        return _ZstdReader(stream)
    raise SourceError(f"unknown compression {compression!r}")


class _Prefixed(io.RawIOBase):
    """A stream whose first bytes were already read to sniff them."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            count = min(len(view), len(self._head))
            view[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        return _read_into_of(self._rest)(view)


class _ZstdReader(io.RawIOBase):
    """Decompresses every zstd frame of a stream, and notices truncation.

    Not ``zstandard``'s ``stream_reader``: it ends quietly when the data
    stops in the middle of a frame, and a cut file must be an error, not a
    short read. Files written by parallel compressors hold many frames.
    """

    _INPUT_BYTES = 1 << 20

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._context = zstandard.ZstdDecompressor()
        self._frame: Any = None  # the decompressor of the frame in progress
        self._out = b""
        self._out_position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while self._out_position == len(self._out):
            data = self._raw.read(self._INPUT_BYTES)
            if not data:
                if self._frame is not None:
                    raise EOFError("the data ends in the middle of a zstd frame")
                return 0
            self._out = self._decompress(data)
            self._out_position = 0
        count = min(len(view), len(self._out) - self._out_position)
        view[:count] = self._out[self._out_position : self._out_position + count]
        self._out_position += count
        return count

    def _decompress(self, data: bytes) -> bytes:
        pieces = []
        while data:
            if self._frame is None:
                self._frame = self._context.decompressobj()
            pieces.append(self._frame.decompress(data))
            if self._frame.eof:
                data = self._frame.unused_data
                self._frame = None
            else:
                data = b""
        return b"".join(pieces)
