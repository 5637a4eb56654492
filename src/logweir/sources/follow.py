"""Follow growing log files like ``tail -F``, without losing or repeating a line.

:class:`Follower` is a :class:`~logweir.sources.stream.StreamSource` over
files and globs. It watches the directories that hold them with inotify
(``inotify_simple``), so an appended line is handed out within
milliseconds, and it checks every file and pattern again every
``poll_interval_s`` seconds: that slow pass is the whole mechanism where
inotify is missing or out of watches, and a safety net where it works.

A file is known by its *identity*, not its name: device, inode, a hash of
its first line (at most :data:`~logweir.sources.inputs.HEAD_BYTES` bytes)
and a generation, bumped each time the same inode starts over (truncated,
or reused by a new file). The identity's short hex id is the
:attr:`SourceBatch.stream` and, after the name the file had when it was
first seen, its lines' ``source`` (``"/var/log/app.log#1f2e3d4c5b6a7988"``).
The first *line* is hashed, not the first 4 KiB, because a young file grows:
its first line never changes once written, so the id is the same whenever
the file is first seen. Whether the file still starts with the bytes
already read (up to 4 KiB) is checked on every read, which catches a
truncation that was written over before it was noticed.

Rotation:

* **rename and create**: the renamed file is read through its open
  descriptor to its end, the new one from byte 0, side by side.
* **copytruncate**: a file shorter than the position reached (or whose
  first bytes changed) starts a new generation read from byte 0.
* **deleted**: the open descriptor is read to its end, then closed.
* **inode reused**: a different first line means a different identity,
  read from its start.

See ``docs/follow.md`` for the rules, the positions format and the limits.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import glob
import hashlib
import logging
import os
import stat
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

import numpy as np
from inotify_simple import INotify, flags  # type: ignore[import-untyped]

from logweir.errors import SourceError
from logweir.sources.inputs import HEAD_BYTES, os_error_message, sniff_compression
from logweir.sources.reader import (
    DEFAULT_BATCH_BYTES,
    DEFAULT_MAX_LINE_BYTES,
    LineSplitter,
)
from logweir.sources.stream import Positions, RevokeHandler, SourceBatch

logger = logging.getLogger(__name__)

#: How often, without inotify, files are checked for growth and patterns
#: for new matches; with inotify, how often the same pass runs as a net.
DEFAULT_POLL_INTERVAL_S = 0.25

#: After handing out lines, how long to let more arrive before reading
#: again. Writers append a line or a few per write; reading after each one
#: would build a batch per line, and a batch costs a fixed ~0.3 ms, which
#: at 10K lines/s is most of a core. A line after a quiet spell is still
#: read at once; a file with more than a batch waiting is read on at once.
DEFAULT_COALESCE_S = 0.01

#: How long a file that no longer matches (renamed away, deleted) is kept
#: open after it last grew: a writer may still finish a line into it before
#: it reopens its log.
DEFAULT_GRACE_S = 2.0

#: How often files that no longer match are checked: inotify on their old
#: directory no longer names them.
_ORPHAN_CHECK_S = 0.05

#: Identities no longer open that are remembered (and kept in positions),
#: so that a file coming back, a copy of a truncated one, or its inode
#: reused, is recognised. Each costs about 400 bytes of every checkpoint.
_MAX_RETIRED = 256

#: Enough leading bytes to recognise a compressed file.
_SNIFF_BYTES = 16

_COUNT_BLOCK_BYTES = 16 << 20
_TAIL_BLOCK_BYTES = 64 << 10

_GLOB_CHARS = frozenset("*?[")

_WATCH_MASK = (
    flags.MODIFY
    | flags.ATTRIB
    | flags.CLOSE_WRITE
    | flags.CREATE
    | flags.DELETE
    | flags.MOVED_FROM
    | flags.MOVED_TO
    | flags.DELETE_SELF
    | flags.MOVE_SELF
    | flags.ONLYDIR
    | flags.EXCL_UNLINK
)

_POSITION_FIELDS: dict[str, type] = {
    "source": str,
    "path": str,
    "device": int,
    "inode": int,
    "head_hash": str,
    "head_bytes": int,
    "generation": int,
    "offset": int,
    "line_number": int,
    "check_bytes": int,
    "check_hash": str,
    "active": bool,
}

#: Optional fields of a position, and their value when missing.
_POSITION_DEFAULTS: dict[str, Any] = {"truncated": False}

StartAt = Literal["beginning", "end"]
_Key = tuple[int, int]


@dataclass
class _Stream:
    """One identity and how far its lines have been handed out."""

    id: str
    source: str
    path: str
    device: int
    inode: int
    head_hash: str
    head_bytes: int
    generation: int
    offset: int
    line_number: int
    check_bytes: int
    check_hash: str
    active: bool
    #: Ended because its file started over (copytruncate): a copy of it that
    #: turns up is read from ``offset`` on, as the rest of this identity.
    truncated: bool = False
    #: The first ``check_bytes`` bytes, when known in this process.
    check: bytes = b""

    def to_json(self) -> dict[str, Any]:
        fields = {**_POSITION_FIELDS, **_POSITION_DEFAULTS}
        return {name: getattr(self, name) for name in fields}

    @classmethod
    def from_json(cls, stream_id: str, value: Any) -> _Stream:
        if not isinstance(value, dict):
            raise SourceError(f"bad follow positions: {stream_id!r} is not an object")
        fields: dict[str, Any] = {}
        for name, kind in _POSITION_FIELDS.items():
            item = value.get(name)
            if not isinstance(item, kind) or (kind is int and isinstance(item, bool)):
                raise SourceError(
                    f"bad follow positions: {stream_id!r} has no valid {name!r}"
                )
            fields[name] = item
        for name, default in _POSITION_DEFAULTS.items():
            fields[name] = value.get(name, default)
            if not isinstance(fields[name], type(default)):
                raise SourceError(
                    f"bad follow positions: {stream_id!r} has no valid {name!r}"
                )
        return cls(id=stream_id, **fields)


@dataclass(eq=False)
class _File:
    """An open descriptor of a followed file.

    ``stream`` is None while the file is too young to be identified (no
    complete first line yet) or while it is a copy of a followed file
    (``copy_of``). ``read_offset`` is the next byte to read: the
    splitter's position plus the partial line it holds (some of it in
    ``unfed``). ``check`` is the file's first bytes as read, up to
    HEAD_BYTES: a file that no longer starts with them was truncated and
    written over.
    """

    fd: int
    path: str
    device: int
    inode: int
    orphan_since_s: float | None
    grew_s: float
    from_end: bool
    stream: _Stream | None = None
    splitter: LineSplitter | None = None
    read_offset: int = 0
    check: bytes = b""
    copy_of: str | None = None
    #: Bytes read after the splitter's pending ones that hold no newline:
    #: kept aside, not fed, so a line written in many pieces is joined once.
    unfed: list[bytes] = field(default_factory=list)
    unfed_bytes: int = 0

    @property
    def key(self) -> _Key:
        return (self.device, self.inode)


class Follower:
    """Hands out the complete lines appended to files matching ``patterns``.

    ``patterns`` are paths or globs (``**`` spans directories); a directory
    stands for the files in it. A pattern may match nothing yet, but the
    directory it lives in must exist. ``resume`` is a value returned by
    :meth:`positions`: every identity in it continues at its offset,
    wherever its file now is. Without it, files present at the start are
    read from their beginning, or from their end with ``start_at="end"``;
    files that appear later are always read from their beginning.

    :meth:`poll` returns at most about ``batch_bytes`` per call, so a slow
    consumer slows the reading. ``use_inotify=False`` forces the polling
    path. Not thread-safe: one consumer polls.

    >>> with Follower(["/var/log/nginx/access.log*"]) as follower:  # doctest: +SKIP
    ...     for batch in follower.poll(0.1):
    ...         print(batch.stream, batch.start, batch.end, len(batch.lines))
    """

    def __init__(
        self,
        patterns: Sequence[str],
        *,
        resume: Positions | None = None,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        start_at: StartAt = "beginning",
        poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
        grace_s: float = DEFAULT_GRACE_S,
        coalesce_s: float = DEFAULT_COALESCE_S,
        use_inotify: bool = True,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    ) -> None:
        if not patterns:
            raise SourceError("nothing to follow: name files or globs")
        if start_at not in ("beginning", "end"):
            raise SourceError(
                f"start_at must be 'beginning' or 'end', not {start_at!r}"
            )
        if batch_bytes < 1 or poll_interval_s <= 0 or min(grace_s, coalesce_s) < 0:
            raise SourceError(
                "batch_bytes and poll_interval_s must be positive, grace_s and "
                "coalesce_s not negative"
            )
        self._patterns = list(dict.fromkeys(_normalise(p) for p in patterns))
        self._batch_bytes = batch_bytes
        self._poll_interval_s = poll_interval_s
        self._grace_s = grace_s
        self._coalesce_s = coalesce_s
        self._quiet_until_s = 0.0
        self._max_line_bytes = max_line_bytes
        self._streams: dict[str, _Stream] = {}
        self._files: dict[_Key, _File] = {}
        self._by_path: dict[str, _File] = {}
        self._dirty: set[_Key] = set()
        self._skipped: dict[_Key, int] = {}  # compressed: key -> mtime when seen
        self._unreadable: set[str] = set()
        self._moved: set[str] = set()  # names a matched file was renamed to
        self._cookies: dict[int, bool] = {}
        self._watches: dict[str, int] = {}
        self._watched: dict[int, str] = {}
        self._watch_failed = False
        self._resumed: set[str] = set()  # ids that were open when positions were taken
        self._turn = 0
        self._closed = False
        self._revoke: RevokeHandler | None = None
        if resume:
            for stream_id, value in resume.items():
                stream = _Stream.from_json(stream_id, value)
                if stream.active:
                    self._resumed.add(stream_id)
                stream.active = False
                self._streams[stream_id] = stream
        self._inotify: Any = None
        if use_inotify:
            try:
                self._inotify = INotify(nonblocking=True)
            except OSError as error:
                logger.warning(
                    "inotify unavailable (%s): checking files every %.2f s",
                    error.strerror,
                    poll_interval_s,
                )
        try:
            now = time.monotonic()
            self._rescan(now, from_end=start_at == "end" and not resume)
            if resume:
                self._find_moved_while_stopped(now)
            self._next_tick_s = now + poll_interval_s
        except BaseException:
            self.close()
            raise

    # -- the StreamSource protocol ------------------------------------------

    def poll(self, timeout_s: float) -> list[SourceBatch]:
        """Batches of complete lines, waiting at most ``timeout_s`` for the first."""
        if self._closed:
            raise SourceError("cannot poll a closed follower")
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            now = time.monotonic()
            if now < self._quiet_until_s:  # let lines gather (DEFAULT_COALESCE_S)
                time.sleep(min(self._quiet_until_s, deadline) - now)
                if self._quiet_until_s > deadline:
                    return []
            self._take_events(0)
            now = time.monotonic()
            if now >= self._next_tick_s:
                self._tick(now)
            batches = self._read_some(now)
            now = time.monotonic()
            if batches and not self._dirty:  # else a backlog: read on at once
                self._quiet_until_s = now + self._coalesce_s
            if batches or now >= deadline:
                return batches
            if self._dirty:
                continue
            wait = min(deadline, self._next_tick_s) - now
            if any(f.orphan_since_s is not None for f in self._files.values()):
                wait = min(wait, _ORPHAN_CHECK_S)
            self._wait(max(0.0, wait))

    def positions(self) -> Positions:
        """Every identity seen (open or not) and how far it has been handed out."""
        return {stream.id: stream.to_json() for stream in self._streams.values()}

    def commit(self, positions: Positions) -> None:
        """Nothing to do: the pipeline keeps the positions in its checkpoint."""

    def on_revoke(self, handler: RevokeHandler) -> None:
        """Kept, never called: a follower does not lose files to anyone."""
        self._revoke = handler

    def close(self) -> None:
        """Close every file and the inotify descriptor; positions stay readable."""
        if self._closed:
            return
        self._closed = True
        for file in list(self._files.values()):
            os.close(file.fd)
        self._files.clear()
        self._by_path.clear()
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None

    def __enter__(self) -> Follower:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def watching(self) -> bool:
        """Whether inotify watches every directory (else changes wait for a poll)."""
        return self._inotify is not None and not self._watch_failed

    # -- waiting -------------------------------------------------------------

    def _wait(self, seconds: float) -> None:
        if self._inotify is None:
            time.sleep(seconds)
            return
        self._take_events(max(1, int(seconds * 1000 + 0.999)))

    def _take_events(self, timeout_ms: int) -> None:
        """Read pending inotify events; mark files to look at, rescan if needed."""
        if self._inotify is None:
            return
        rescan = False
        for event in self._inotify.read(timeout=timeout_ms):
            rescan |= self._on_event(event.wd, event.mask, event.cookie, event.name)
        if rescan:
            self._rescan(time.monotonic())

    def _on_event(self, wd: int, mask: int, cookie: int, name: str) -> bool:
        """Note one event; return whether the patterns must be globbed again."""
        if mask & flags.Q_OVERFLOW:
            self._next_tick_s = 0.0
            return False
        directory = self._watched.get(wd)
        if directory is None:
            return False
        if mask & flags.IGNORED:
            del self._watched[wd]
            self._watches.pop(directory, None)
            return True
        if mask & (flags.DELETE_SELF | flags.MOVE_SELF) or mask & flags.ISDIR:
            return True
        path = os.path.join(directory, name)
        known = self._by_path.get(path)
        if mask & (flags.MODIFY | flags.CLOSE_WRITE | flags.ATTRIB):
            if known is not None:
                self._dirty.add(known.key)
                return False
            return self._matches(path)
        if mask & flags.MOVED_FROM:
            # A matched file renamed before it was opened (two rotations
            # between polls) is still ours: follow its new name.
            self._cookies[cookie] = (
                known is not None or path in self._moved or self._matches(path)
            )
            self._moved.discard(path)
            if len(self._cookies) > 4096:
                self._cookies.clear()
            return known is not None
        if mask & flags.MOVED_TO:
            if self._cookies.pop(cookie, False):
                self._moved.add(path)
                return True
            self._moved.discard(path)
            return self._matches(path)
        if mask & flags.DELETE:
            self._moved.discard(path)
            return known is not None
        return self._matches(path)  # CREATE

    def _matches(self, path: str) -> bool:
        return any(fnmatch.fnmatchcase(path, p) for p in self._patterns)

    def _tick(self, now: float) -> None:
        """The slow pass: glob every pattern, look at every open file."""
        self._rescan(now)
        self._dirty.update(self._files)
        self._next_tick_s = now + self._poll_interval_s

    # -- finding files ---------------------------------------------------------

    def _rescan(self, now: float, *, from_end: bool = False) -> None:
        """Open new matches and renamed-to names; mark open files that left."""
        matched = _glob_files(self._patterns)
        names = [(path, True) for path in matched]
        names += [(path, False) for path in sorted(self._moved) if path not in matched]
        self._moved.clear()
        seen: set[_Key] = set()
        for path, is_match in names:
            try:
                info = os.stat(path)
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode):
                continue
            key = (info.st_dev, info.st_ino)
            file = self._files.get(key)
            if file is None:
                if self._skipped.get(key) == info.st_mtime_ns:
                    continue
                file = self._open(path, now, from_end)
                if file is None:
                    continue
                key = file.key
            if is_match:
                seen.add(key)
            if is_match or key not in seen:
                file.path = path
                if file.stream is not None:
                    file.stream.path = path
            self._dirty.add(key)
        for key, file in self._files.items():
            if key in seen:
                file.orphan_since_s = None
            elif file.orphan_since_s is None:
                file.orphan_since_s = now
                logger.info(
                    "%s no longer matches (renamed or deleted): reading it to its end",
                    file.path,
                )
        self._by_path = {file.path: file for file in self._files.values()}
        self._update_watches()

    def _open(self, path: str, now: float, from_end: bool) -> _File | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as error:
            if error.errno != errno.ENOENT and path not in self._unreadable:
                self._unreadable.add(path)
                logger.warning("skipping %s", os_error_message(path, error))
            return None
        info = os.fstat(fd)
        key = (info.st_dev, info.st_ino)
        if key in self._files or not stat.S_ISREG(info.st_mode):
            os.close(fd)  # renamed under us onto a file already open
            return self._files.get(key)
        self._unreadable.discard(path)
        file = _File(fd, path, key[0], key[1], now, now, from_end)
        self._files[key] = file
        if not self._identify(file):
            if key not in self._files:
                return None  # compressed: skipped
            file.from_end = False  # too young to have an end worth skipping to
        logger.debug("opened %s device=%d inode=%d", path, key[0], key[1])
        return file

    def _find_moved_while_stopped(self, now: float) -> None:
        """Resumed identities not found by the patterns: look beside their path."""
        for stream in list(self._streams.values()):
            key = (stream.device, stream.inode)
            if stream.active or stream.id not in self._resumed:
                continue
            found = _find_inode(os.path.dirname(stream.path), *key)
            file = self._open(found, now, False) if found is not None else None
            if file is not None and file.stream is stream:
                file.orphan_since_s = now
                logger.info(
                    "resuming %s, renamed to %s while stopped", stream.source, found
                )
                continue
            logger.warning(
                "%s was not found (deleted or moved away while stopped): lines "
                "written to it after byte %d were not read",
                stream.source,
                stream.offset,
            )

    def _update_watches(self) -> None:
        if self._inotify is None:
            return
        wanted = _watch_dirs(self._patterns)
        wanted.update(
            os.path.dirname(f.path)
            for f in self._files.values()
            if f.orphan_since_s is None
        )
        for directory in wanted.difference(self._watches):
            try:
                wd = self._inotify.add_watch(directory, _WATCH_MASK)
            except OSError as error:
                if not self._watch_failed:
                    logger.warning(
                        "cannot watch %s (%s): its files are checked every %.2f s",
                        directory,
                        error.strerror,
                        self._poll_interval_s,
                    )
                self._watch_failed = True
                continue
            self._watches[directory] = wd
            self._watched[wd] = directory
        for directory in set(self._watches).difference(wanted):
            wd = self._watches.pop(directory)
            self._watched.pop(wd, None)
            # The directory may have gone away and taken its watch with it.
            with contextlib.suppress(OSError):
                self._inotify.rm_watch(wd)

    # -- identity ------------------------------------------------------------

    def _identify(self, file: _File) -> bool:
        """Give ``file`` its identity once its first line is complete.

        Returns False while it is too young, and for a compressed file,
        which is closed and skipped (it is a rotated log already read).
        """
        head = os.pread(file.fd, HEAD_BYTES, 0)
        newline = head.find(b"\n")
        if newline >= 0 or len(head) >= _SNIFF_BYTES:
            compression = sniff_compression(head)
            if compression is not None:
                self._skip(file, compression)
                return False
        if newline >= 0:
            first = head[: newline + 1]
        elif len(head) >= HEAD_BYTES:
            first = head
        else:
            return False
        head_hash = hashlib.blake2b(first, digest_size=16).hexdigest()
        stream = self._revive(file, head_hash)
        if stream is None:
            original = self._original_of(file, head)
            if original is not None:
                if not self._continues(file, original):
                    if file.copy_of != original.id:
                        logger.info(
                            "%s is a copy of %s: its lines are not read twice",
                            file.path,
                            original.source,
                        )
                    file.copy_of = original.id
                    return False
                stream = self._adopt(file, original)
            file.copy_of = None
        if stream is None:
            stream = self._new_stream(file, head_hash, len(first))
            file.check = head[: max(len(first), min(len(head), stream.offset))]
            _set_check(stream, file.check)
        else:
            file.check = stream.check or os.pread(file.fd, stream.check_bytes, 0)
            stream.check = file.check
        file.stream = stream
        file.splitter = LineSplitter(
            stream.source, stream.offset, stream.line_number, self._max_line_bytes
        )
        file.read_offset = stream.offset
        return True

    def _revive(self, file: _File, head_hash: str) -> _Stream | None:
        """The known identity ``file`` continues, if it is one that is closed."""
        same_inode = [
            s
            for s in self._streams.values()
            if (s.device, s.inode) == file.key and not s.active
        ]
        if not same_inode:
            return None
        stream = max(same_inode, key=lambda s: s.generation)
        if stream.head_hash != head_hash:
            return None
        check = os.pread(file.fd, stream.check_bytes, 0)
        if _hash(check) != stream.check_hash or os.fstat(file.fd).st_size < (
            stream.offset
        ):
            return None
        stream.active = True
        stream.path = file.path
        logger.info("continuing %s at byte %d", stream.source, stream.offset)
        return stream

    def _original_of(self, file: _File, head: bytes) -> _Stream | None:
        """The followed file ``file`` is a copy of, if it is one.

        A copy starts with the same bytes as its original, as far as the
        original was read: the whole of ``head`` (up to HEAD_BYTES) must
        lie within the bytes known of the original. A truncated original
        (copytruncate) is preferred to one still open. Of a young original
        less than ``head`` may have been read when the copy turns up; it is
        still the original if its own file starts with all of ``head``, or
        if that file was truncated since (copytruncate in progress).
        """
        found: list[_Stream] = []
        digest = ""
        for stream in self._streams.values():
            if (stream.device, stream.inode) == file.key or not head:
                continue
            if stream.check_bytes < len(head):
                if self._outgrown_by_copy(stream, head):
                    found.append(stream)
                continue
            if stream.check:
                if stream.check[: len(head)] != head:
                    continue
            else:
                digest = digest or _hash(head)
                if stream.check_bytes != len(head) or stream.check_hash != digest:
                    continue
            found.append(stream)
        found.sort(key=lambda s: (not (s.truncated and not s.active), not s.active))
        return found[0] if found else None

    def _outgrown_by_copy(self, stream: _Stream, head: bytes) -> bool:
        """Whether ``head``, longer than what is known of ``stream``, copies it."""
        if not stream.check or not head.startswith(stream.check):
            return False
        if stream.truncated and not stream.active:
            return True  # copytruncate noticed; the copy holds what was lost
        original = self._files.get((stream.device, stream.inode))
        if original is None or original.stream is not stream:
            return False
        size = os.fstat(original.fd).st_size
        now = os.pread(original.fd, len(head), 0)
        # starts with the whole head: a copy; truncated meanwhile: most
        # likely copytruncate, decided once the truncation is taken in
        return now == head or size < original.read_offset or not self._intact(original)

    def _continues(self, file: _File, original: _Stream) -> bool:
        """Whether the copy ``file`` holds lines of ``original`` not yet read.

        Only the copy of a truncated file does: the lines written between
        the last read and the truncation. A copy no longer than what was
        read of its original holds nothing new.
        """
        if original.active or not original.truncated:
            return False
        return os.fstat(file.fd).st_size >= original.offset

    def _adopt(self, file: _File, stream: _Stream) -> _Stream:
        """Read the copy of a truncated file from where its reading stopped."""
        logger.info(
            "reading %s from byte %d: the copy of %s made before it was truncated",
            file.path,
            stream.offset,
            stream.source,
        )
        stream.truncated, stream.active = False, True
        stream.device, stream.inode, stream.path = file.device, file.inode, file.path
        return stream

    def _new_stream(self, file: _File, head_hash: str, head_bytes: int) -> _Stream:
        generation = 1 + max(
            (
                s.generation
                for s in self._streams.values()
                if (s.device, s.inode) == file.key
            ),
            default=-1,
        )
        stream_id = _stream_id(file.device, file.inode, head_hash, generation)
        while stream_id in self._streams:  # an identity moved onto a copy's inode
            generation += 1
            stream_id = _stream_id(file.device, file.inode, head_hash, generation)
        offset, line_number = 0, 1
        if file.from_end:
            offset, line_number = _last_line_end(file.fd)
        stream = _Stream(
            id=stream_id,
            source=f"{file.path}#{stream_id}",
            path=file.path,
            device=file.device,
            inode=file.inode,
            head_hash=head_hash,
            head_bytes=head_bytes,
            generation=generation,
            offset=offset,
            line_number=line_number,
            check_bytes=0,
            check_hash="",
            active=True,
        )
        self._streams[stream_id] = stream
        logger.info("following %s from byte %d", stream.source, offset)
        return stream

    def _skip(self, file: _File, compression: str) -> None:
        logger.info(
            "skipping %s: %s-compressed, a rotated log read before it was compressed",
            file.path,
            compression,
        )
        self._skipped[file.key] = os.fstat(file.fd).st_mtime_ns
        self._forget(file)

    # -- reading -------------------------------------------------------------

    def _read_some(self, now: float) -> list[SourceBatch]:
        """Read the files that may have news, about ``batch_bytes`` in all."""
        keys = list(self._dirty)
        keys += [
            key
            for key, file in self._files.items()
            if file.orphan_since_s is not None and key not in self._dirty
        ]
        if keys:
            start = self._turn % len(keys)
            keys = keys[start:] + keys[:start]
            self._turn += 1
        budget = self._batch_bytes
        batches: list[SourceBatch] = []
        for key in keys:
            if budget <= 0:
                break
            self._dirty.discard(key)
            file = self._files.get(key)
            if file is None:
                continue
            try:
                budget -= self._read_file(file, budget, now, batches)
            except OSError as error:
                logger.warning(
                    "dropping %s: %s", file.path, os_error_message(file.path, error)
                )
                batches.extend(self._retire(file))
        return batches

    def _read_file(
        self, file: _File, budget: int, now: float, batches: list[SourceBatch]
    ) -> int:
        """Read what ``file`` has (at most ``budget`` bytes); return bytes read."""
        size = os.fstat(file.fd).st_size
        if file.stream is None and not self._identify(file):
            self._retire_if_done(file, size, now, batches)
            return 0
        if size < file.read_offset or not self._intact(file):
            batches.extend(self._start_over(file, size))
            if file.stream is None:
                return 0
        if size > file.read_offset:
            file.grew_s = now
        want = min(budget, size - file.read_offset)
        data = os.pread(file.fd, want, file.read_offset) if want > 0 else b""
        if data:
            self._extend_check(file, data)
            file.read_offset += len(data)
            batch = self._feed(file, data)
            if batch is not None:
                batches.append(batch)
        if file.read_offset < size:
            self._dirty.add(file.key)
        else:
            self._retire_if_done(file, size, now, batches)
        return len(data)

    def _feed(self, file: _File, data: bytes) -> SourceBatch | None:
        stream, splitter = file.stream, file.splitter
        assert stream is not None and splitter is not None
        held = splitter.pending_bytes + file.unfed_bytes + len(data)
        if b"\n" not in data and held < self._max_line_bytes:
            file.unfed.append(data)  # feeding would copy the pending bytes again
            file.unfed_bytes += len(data)
            return None
        if file.unfed:
            data = b"".join([*file.unfed, data])
            file.unfed.clear()
            file.unfed_bytes = 0
        start = splitter.position
        lines = splitter.feed(data)
        if lines is None:
            return None
        stream.offset = splitter.position
        stream.line_number = splitter.line_number
        logger.debug(
            "read source=%s offset=%d lines=%d", stream.source, start, len(lines.lines)
        )
        return SourceBatch(stream.id, start, splitter.position, lines)

    def _intact(self, file: _File) -> bool:
        """Whether ``file`` still starts with the bytes read from it."""
        return not file.check or os.pread(file.fd, len(file.check), 0) == file.check

    def _extend_check(self, file: _File, data: bytes) -> None:
        have, start = len(file.check), file.read_offset
        if have >= HEAD_BYTES or not start <= have < start + len(data):
            return
        file.check += data[have - start : HEAD_BYTES - start]
        assert file.stream is not None
        _set_check(file.stream, file.check)

    def _start_over(self, file: _File, size: int) -> list[SourceBatch]:
        """``file`` was truncated (copytruncate): end its identity, start anew."""
        assert file.stream is not None
        old = file.stream
        batches = self._finish(file)
        logger.warning(
            "%s was truncated at byte %d (now %d bytes): reading it again from "
            "byte 0 as a new generation; lines written just before the truncation "
            "and not yet read are only in the rotated copy",
            old.source,
            file.read_offset,
            size,
        )
        old.active, old.truncated = False, True
        for other in self._files.values():  # a copy of it waits for this
            if other.copy_of == old.id:
                self._dirty.add(other.key)
        file.stream, file.splitter = None, None
        file.read_offset, file.check, file.from_end = 0, b"", False
        self._identify(file)
        self._trim_retired()
        return batches

    def _finish(self, file: _File) -> list[SourceBatch]:
        """Hand out a partial last line: its file will not complete it."""
        stream, splitter = file.stream, file.splitter
        if stream is None or splitter is None:
            return []
        if file.unfed:
            splitter.feed(b"".join(file.unfed))  # no newline: stays pending
            file.unfed.clear()
            file.unfed_bytes = 0
        if not splitter.pending_bytes:
            return []
        start = splitter.position
        lines = splitter.finish()
        assert lines is not None
        logger.warning(
            "%s ends without a newline at byte %d: its last %d bytes are handed out "
            "as a line",
            stream.source,
            splitter.position,
            splitter.position - start,
        )
        stream.offset = splitter.position
        stream.line_number = splitter.line_number
        return [SourceBatch(stream.id, start, splitter.position, lines)]

    def _retire_if_done(
        self, file: _File, size: int, now: float, batches: list[SourceBatch]
    ) -> None:
        """Close a file that left the patterns once it is read and quiet."""
        if file.orphan_since_s is None:
            return
        if file.stream is not None and file.read_offset < size:
            return
        if now - max(file.orphan_since_s, file.grew_s) >= self._grace_s:
            if file.stream is None and size and file.copy_of is None:
                logger.warning(
                    "%s left without a complete first line: its %d bytes are not read",
                    file.path,
                    size,
                )
            batches.extend(self._retire(file))

    def _retire(self, file: _File) -> list[SourceBatch]:
        batches = self._finish(file)
        if file.stream is not None:
            file.stream.active = False
            logger.info(
                "done with %s at byte %d", file.stream.source, file.stream.offset
            )
        self._forget(file)
        self._trim_retired()
        return batches

    def _forget(self, file: _File) -> None:
        os.close(file.fd)
        del self._files[file.key]
        self._dirty.discard(file.key)
        if self._by_path.get(file.path) is file:
            del self._by_path[file.path]

    def _trim_retired(self) -> None:
        retired = [s.id for s in self._streams.values() if not s.active]
        for stream_id in retired[: max(0, len(retired) - _MAX_RETIRED)]:
            del self._streams[stream_id]


# -- helpers -----------------------------------------------------------------


def _normalise(pattern: str) -> str:
    """``pattern`` as an absolute glob; a directory stands for its files."""
    path = os.path.abspath(pattern)
    if os.path.lexists(path):
        if os.path.isdir(path):
            return os.path.join(glob.escape(path), "*")
        return glob.escape(path)
    root = _static_root(path)
    if not os.path.isdir(root):
        raise SourceError(
            f"cannot follow {pattern!r}: directory {root!r} does not exist"
        )
    return path


def _static_root(pattern: str) -> str:
    """The deepest directory of ``pattern`` above its first glob character."""
    parts = os.path.dirname(pattern).split(os.sep)
    for index, part in enumerate(parts):
        if _GLOB_CHARS.intersection(part):
            return os.sep.join(parts[:index]) or os.sep
    return os.sep.join(parts) or os.sep


def _glob_files(patterns: list[str]) -> dict[str, None]:
    found: dict[str, None] = {}
    for pattern in patterns:
        for path in sorted(glob.glob(pattern, recursive=True)):
            found[path] = None
    return found


def _watch_dirs(patterns: list[str]) -> set[str]:
    dirs = set()
    for pattern in patterns:
        dirs.add(_static_root(pattern))
        parent = os.path.dirname(pattern)
        if _GLOB_CHARS.intersection(parent):
            dirs.update(glob.glob(parent, recursive=True))
            if "**" in pattern:
                dirs.update(glob.glob(os.path.join(parent, "**", ""), recursive=True))
    return {d.rstrip(os.sep) or os.sep for d in dirs if os.path.isdir(d)}


def _find_inode(directory: str, device: int, inode: int) -> str | None:
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return None
    for entry in entries:
        if entry.inode() != inode:
            continue
        try:
            info = entry.stat()
        except OSError:
            continue
        if info.st_dev == device and stat.S_ISREG(info.st_mode):
            return entry.path
    return None


def _stream_id(device: int, inode: int, head_hash: str, generation: int) -> str:
    key = f"{device}:{inode}:{head_hash}:{generation}".encode()
    return hashlib.blake2b(key, digest_size=8).hexdigest()


def _hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _set_check(stream: _Stream, check: bytes) -> None:
    stream.check = check
    stream.check_bytes = len(check)
    stream.check_hash = _hash(check)


def _last_line_end(fd: int) -> tuple[int, int]:
    """Offset just past the file's last newline, and the next line's number."""
    size = os.fstat(fd).st_size
    end = size
    while end > 0:
        start = max(0, end - _TAIL_BLOCK_BYTES)
        block = os.pread(fd, end - start, start)
        newline = block.rfind(b"\n")
        if newline >= 0:
            end = start + newline + 1
            break
        end = start
    return end, 1 + sum(_count_newlines(fd, end))


def _count_newlines(fd: int, end: int) -> Iterator[int]:
    offset = 0
    while offset < end:
        block = os.pread(fd, min(_COUNT_BLOCK_BYTES, end - offset), offset)
        if not block:
            return
        yield int(np.count_nonzero(np.frombuffer(block, np.uint8) == 10))
        offset += len(block)
