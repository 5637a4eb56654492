"""Turn what the user named (files, globs, directories, ``-``) into inputs.

:func:`expand_inputs` is called once, before any reading, so that a missing
or unreadable input stops the run before anything is written. Each input
becomes an :class:`InputFile`: its absolute path (the events' ``source``),
its compression, found from its first bytes rather than its name, its size
and its identity.

Rules, in the order they apply to each argument:

* ``-`` is standard input.
* An existing path is taken as it is, even when its name holds ``*``.
* A path with ``*``, ``?`` or ``[`` is a glob (``**`` spans directories);
  hidden names are not matched, as in the shell. No match is an error.
* A directory is walked recursively in name order, following links to
  files but not to directories (no loops). Hidden entries (a name
  starting with ``.``) are skipped, and so are files whose first bytes show
  a binary format that is never a log (Parquet, ZIP, SQLite, DuckDB, ELF,
  PDF, PNG, JPEG), so that pointing logweir at a folder that also holds its
  own output does not feed the lake back into itself. A file named
  explicitly is always read, whatever it holds.
* A FIFO or character device (``/dev/stdin``, a named pipe) is read as a
  stream, like ``-``.

The same file named twice (by two globs, say) is read once, and so is ``-``.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import logging
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from logweir.errors import SourceError

logger = logging.getLogger(__name__)

Compression = Literal["gzip", "bz2", "zstd", "xz"]

#: How many leading bytes a file's identity hashes. Long enough to hold a few
#: timestamped lines, so that two logs of one server rarely share it.
HEAD_BYTES = 4096

STDIN = "-"

_GLOB_CHARS = frozenset("*?[")

#: Magic numbers of the compressions logweir decompresses.
_COMPRESSION_MAGIC: tuple[tuple[bytes, Compression], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
)

_BZ2_BLOCK_MAGIC = (b"\x31\x41\x59\x26\x53\x59", b"\x17\x72\x45\x38\x50\x90")

#: Leading bytes of binary formats that are never logs: skipped when found
#: while walking a directory, read anyway when named explicitly.
_NOT_LOG_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PAR1", "Parquet"),
    (b"PK\x03\x04", "ZIP"),
    (b"SQLite format 3\x00", "SQLite"),
    (b"\x7fELF", "ELF"),
    (b"%PDF-", "PDF"),
    (b"\x89PNG", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
)


@dataclass(frozen=True)
class InputFile:
    """One input to read, as :func:`expand_inputs` found it.

    ``path`` is absolute (``-`` for standard input) and is what the events'
    ``source`` column holds, so an event's identity does not depend on the
    directory logweir ran from. ``compression`` is ``None`` for plain text;
    for standard input and other streams it is found when reading starts.

    Identity: ``head_hash`` is a BLAKE2b digest of the first ``head_bytes``
    raw bytes; ``device`` and ``inode`` say where the file lives. Following a
    file through rotation compares all three. ``fingerprint`` (16 hex digits)
    hashes the path and the head together: it names output files, so two
    inputs never share it, and the same file gives the same one on every
    run. A file shorter than :data:`HEAD_BYTES` that grows between runs gets
    a new fingerprint, because its head changed.
    """

    path: str
    compression: Compression | None
    size_bytes: int | None
    fingerprint: str
    head_hash: str
    head_bytes: int
    device: int | None = None
    inode: int | None = None
    is_stream: bool = False

    @property
    def is_plain(self) -> bool:
        """A regular uncompressed file, which can be split into byte ranges."""
        return not self.is_stream and self.compression is None


def stdin_input() -> InputFile:
    """The :class:`InputFile` for standard input.

    Its content is unknown until read, so its fingerprint is the constant
    ``stdin``: output named after it is replaced by the next run that reads
    standard input into the same place.
    """
    return InputFile(
        path=STDIN,
        compression=None,
        size_bytes=None,
        fingerprint="stdin",
        head_hash="",
        head_bytes=0,
        is_stream=True,
    )


def sniff_compression(head: bytes) -> Compression | None:
    """The compression whose magic number ``head`` starts with, if any."""
    for magic, name in _COMPRESSION_MAGIC:
        if head.startswith(magic):
            return name
    # bzip2: "BZh", a block size digit, then the magic of a block (pi) or of
    # the end of an empty stream (sqrt pi).
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[4:10] in _BZ2_BLOCK_MAGIC:
        return "bz2"
    return None


def expand_inputs(paths: Sequence[str]) -> list[InputFile]:
    """Resolve ``paths`` into the inputs to read, in the order given.

    Raises :class:`SourceError` with a one-line message naming the path as
    the user wrote it and why it cannot be read.

    >>> [i.path for i in expand_inputs(["-"])]
    ['-']
    """
    if not paths:
        raise SourceError("no input given: name files, globs, directories or -")
    found: list[InputFile] = []
    seen: set[str] = set()
    for given in paths:
        for inp in _expand_one(given):
            if inp.path not in seen:
                seen.add(inp.path)
                found.append(inp)
    return found


def _expand_one(given: str) -> Iterator[InputFile]:
    if given == STDIN:
        yield stdin_input()
        return
    if not os.path.lexists(given) and _GLOB_CHARS.intersection(given):
        yield from _expand_glob(given)
        return
    try:
        info = os.stat(given)
    except OSError as error:
        raise SourceError(os_error_message(given, error)) from error
    if stat.S_ISDIR(info.st_mode):
        yield from _expand_directory(given)
    else:
        yield describe_file(given)


def _expand_glob(pattern: str) -> Iterator[InputFile]:
    matches = sorted(glob.glob(pattern, recursive=True))
    if not matches:
        raise SourceError(f"cannot read {pattern!r}: no file matches this pattern")
    for match in matches:
        if os.path.isdir(match):
            yield from _expand_directory(match, must_hold_files=False)
        else:
            yield describe_file(match)


def _expand_directory(root: str, must_hold_files: bool = True) -> Iterator[InputFile]:
    count = 0
    for path in _walk(root):
        inp, head = _describe(path)
        kind = _binary_kind(head)
        if kind is not None:
            logger.info("skipping %s: a %s file, not a log", path, kind)
            continue
        count += 1
        yield inp
    if count == 0 and must_hold_files:
        raise SourceError(f"cannot read {root!r}: the directory holds no log files")


def _walk(root: str) -> Iterator[str]:
    """Non-hidden regular files under ``root``, depth first, in name order."""

    def fail(error: OSError) -> None:
        raise SourceError(os_error_message(error.filename or root, error)) from error

    for directory, subdirs, files in os.walk(root, onerror=fail):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = os.path.join(directory, name)
            if os.path.isfile(path):
                yield path


def _binary_kind(head: bytes) -> str | None:
    """The binary format ``head`` belongs to, if it is one that is never a log."""
    for magic, kind in _NOT_LOG_MAGIC:
        if head.startswith(magic):
            return kind
    if head[8:12] == b"DUCK":
        return "DuckDB"
    return None


def describe_file(given: str) -> InputFile:
    """Open ``given`` and describe it; raise :class:`SourceError` if unreadable."""
    return _describe(given)[0]


def _describe(given: str) -> tuple[InputFile, bytes]:
    path = os.path.abspath(given)
    try:
        info = os.stat(path)
        if stat.S_ISFIFO(info.st_mode) or stat.S_ISCHR(info.st_mode):
            # Opening checks permission without blocking on a pipe with no
            # writer; reading a pipe here would steal its first bytes.
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
            return _stream_input(path, info), b""
        if not stat.S_ISREG(info.st_mode):
            raise SourceError(f"cannot read {given!r}: not a regular file")
        with open(path, "rb") as handle:
            head = handle.read(HEAD_BYTES)
    except OSError as error:
        raise SourceError(os_error_message(given, error)) from error
    inp = InputFile(
        path=path,
        compression=sniff_compression(head),
        size_bytes=info.st_size,
        fingerprint=_fingerprint(path, head),
        head_hash=hashlib.blake2b(head, digest_size=16).hexdigest(),
        head_bytes=len(head),
        device=info.st_dev,
        inode=info.st_ino,
    )
    return inp, head


def _stream_input(path: str, info: os.stat_result) -> InputFile:
    return InputFile(
        path=path,
        compression=None,
        size_bytes=None,
        fingerprint=_fingerprint(path, b""),
        head_hash="",
        head_bytes=0,
        device=info.st_dev,
        inode=info.st_ino,
        is_stream=True,
    )


def _fingerprint(path: str, head: bytes) -> str:
    digest = hashlib.blake2b(digest_size=8)
    digest.update(os.fsencode(path))
    digest.update(b"\x00")
    digest.update(head)
    return digest.hexdigest()


def os_error_message(given: str, error: OSError) -> str:
    """One line: which input and what the system said, in plain words."""
    reasons = {
        errno.ENOENT: "no such file or directory",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOTDIR: "a parent of it is not a directory",
        errno.ELOOP: "too many levels of symbolic links",
    }
    reason = reasons.get(error.errno or 0)
    if reason is None:
        reason = (error.strerror or type(error).__name__).lower()
    return f"cannot read {given!r}: {reason}"
