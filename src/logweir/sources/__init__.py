"""Sources: find the inputs, split them, and read them as line batches.

>>> from logweir.sources import expand_inputs, plan_chunks, read_chunk
>>> for inp in expand_inputs(["logs/"]):  # doctest: +SKIP
...     for chunk in plan_chunks(inp):
...         for batch in read_chunk(chunk):
...             ...

Standard input (``-``) is one stream: read it with :func:`read_stream`.
Growing files are followed, ``tail -F`` style, by :class:`Follower`, a
:class:`StreamSource` (see ``docs/follow.md``).
"""

from logweir.sources.chunks import DEFAULT_CHUNK_BYTES, Chunk, plan_chunks
from logweir.sources.follow import Follower
from logweir.sources.inputs import (
    HEAD_BYTES,
    STDIN,
    Compression,
    InputFile,
    describe_file,
    expand_inputs,
    sniff_compression,
    stdin_input,
)
from logweir.sources.reader import (
    DEFAULT_BATCH_BYTES,
    DEFAULT_MAX_LINE_BYTES,
    LineSplitter,
    read_chunk,
    read_stream,
)
from logweir.sources.stream import Positions, SourceBatch, StreamSource

__all__ = [
    "DEFAULT_BATCH_BYTES",
    "DEFAULT_CHUNK_BYTES",
    "DEFAULT_MAX_LINE_BYTES",
    "HEAD_BYTES",
    "STDIN",
    "Chunk",
    "Compression",
    "Follower",
    "InputFile",
    "LineSplitter",
    "Positions",
    "SourceBatch",
    "StreamSource",
    "describe_file",
    "expand_inputs",
    "plan_chunks",
    "read_chunk",
    "read_stream",
    "sniff_compression",
    "stdin_input",
]
