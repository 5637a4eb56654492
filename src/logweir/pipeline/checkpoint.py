"""Follow mode's checkpoint: where to resume, and what to throw away first.

A checkpoint is one file, ``OUT/checkpoint/state``, replaced whole
(:func:`~logweir.sinks.atomic.write_atomically`: temporary name, fsync,
rename, fsync of the folder) after every commit of the streaming pipeline
(:mod:`.stream`). It holds::

    b"LWCKPT\\x00\\x01"  magic and version
    u32 little-endian    length of the JSON header
    JSON header          seq, written_at, positions (the source's own
                         value), streams ({stream: {"name", "end",
                         "max_us"}}), format, settings, counters, detector
                         state
    window state         WindowAggregator.to_bytes(), to the end

The header and the window state are written together so that neither can
be newer than the other.

*When*: the pipeline writes the checkpoint only after the lake, rejects,
late output and store have committed everything up to ``positions``, and
tells the source to commit after that. On start, :func:`recover` loads the
checkpoint and deletes every output file that a stream wrote at or past its
checkpointed end (written after the last checkpoint, so the replay that
follows writes those lines again under the same or other names), then the
source is built from ``positions``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logweir.errors import ConfigError, SinkError
from logweir.sinks.atomic import write_atomically
from logweir.sources.stream import Positions

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILE = "state"
#: Folders of OUT that hold the files a stream writes.
STREAM_OUTPUTS = ("events", "late", "rejects")

_MAGIC = b"LWCKPT\x00\x01"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.@+=,-]")
#: ``{stream name}-{start}-{end}``: a file a stream wrote (16-digit positions;
#: batch runs use 12 digits, so their files never match).
_FILE_NAME = re.compile(r"^(?P<name>.+)-(?P<start>\d{16})-(?P<end>\d{16})$")


def stream_file_name(stream: str) -> str:
    """``stream`` as the first part of an output file name.

    Characters a file name may not hold (see
    :func:`~logweir.sinks.lake.check_name`) become ``_``; when any had to
    change, a short hash of the real name follows, so two streams never
    share a name (``orders/0`` and ``orders_0`` differ).
    """
    cleaned = _UNSAFE.sub("_", stream)
    if cleaned.startswith("."):
        cleaned = "_" + cleaned
    if cleaned != stream or not cleaned:
        digest = hashlib.sha1(stream.encode("utf-8", "surrogateescape")).hexdigest()
        cleaned = f"{cleaned}={digest[:8]}"
    return cleaned


def output_name(stream_name: str, start: int, end: int) -> str:
    """The name (without ``.parquet``) of a stream's files for ``[start, end)``."""
    return f"{stream_name}-{start:016d}-{end:016d}"


@dataclass
class StreamMark:
    """How far one stream's output is committed."""

    name: str
    end: int
    max_us: int | None = None


@dataclass
class Checkpoint:
    """What a restarted follow run continues from (see the module docstring)."""

    positions: Positions
    streams: dict[str, StreamMark]
    window_state: bytes
    format: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, Any] = field(default_factory=dict)
    detector_state: dict[str, Any] | None = None
    seq: int = 0
    written_at: float = 0.0

    def to_bytes(self) -> bytes:
        header = json.dumps(
            {
                "seq": self.seq,
                "written_at": self.written_at,
                "positions": self.positions,
                "streams": {
                    stream: {"name": mark.name, "end": mark.end, "max_us": mark.max_us}
                    for stream, mark in self.streams.items()
                },
                "format": self.format,
                "settings": self.settings,
                "counters": self.counters,
                "detector_state": self.detector_state,
            },
            separators=(",", ":"),
        ).encode()
        return b"".join(
            [_MAGIC, struct.pack("<I", len(header)), header, self.window_state]
        )

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "checkpoint") -> Checkpoint:
        """Read :meth:`to_bytes`; raises :class:`SinkError` naming ``where``."""
        start = len(_MAGIC) + 4
        if not data.startswith(_MAGIC) or len(data) < start:
            raise SinkError(f"{where}: not a logweir checkpoint (bad header)")
        (size,) = struct.unpack_from("<I", data, len(_MAGIC))
        try:
            header = json.loads(data[start : start + size])
        except ValueError as error:
            raise SinkError(f"{where}: unreadable checkpoint ({error})") from None
        return cls(
            positions=header["positions"],
            streams={
                stream: StreamMark(mark["name"], int(mark["end"]), mark["max_us"])
                for stream, mark in header["streams"].items()
            },
            window_state=data[start + size :],
            format=header["format"],
            settings=header["settings"],
            counters=header["counters"],
            detector_state=header["detector_state"],
            seq=int(header["seq"]),
            written_at=float(header["written_at"]),
        )


def checkpoint_path(out: Path) -> Path:
    return out / CHECKPOINT_DIR / CHECKPOINT_FILE


def save_checkpoint(out: Path, checkpoint: Checkpoint) -> Path:
    """Replace ``OUT/checkpoint/state`` by ``checkpoint``, atomically."""
    checkpoint.written_at = time.time()
    data = checkpoint.to_bytes()
    return write_atomically(
        checkpoint_path(out), lambda target: target.write_bytes(data)
    )


def load_checkpoint(out: Path) -> Checkpoint | None:
    """The checkpoint in ``out``, or None when there is none yet."""
    path = checkpoint_path(out)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise SinkError(f"cannot read checkpoint {path}: {error.strerror}") from None
    return Checkpoint.from_bytes(data, str(path))


def check_settings(checkpoint: Checkpoint, settings: dict[str, Any]) -> None:
    """Refuse to resume with windows, dimensions or lateness other than the
    checkpoint's: its window state would not fit them."""
    for key, value in settings.items():
        saved = checkpoint.settings.get(key)
        if saved is not None and saved != value:
            raise ConfigError(
                f"--{key.replace('_', '-')}: the checkpoint in this output folder "
                f"was written with {saved!r}, not {value!r}; use the same setting "
                "or another --out"
            )


def uncommitted_files(out: Path, checkpoint: Checkpoint | None) -> list[Path]:
    """Stream output files written after ``checkpoint`` (every one if None),
    and temporary files a crash left behind."""
    committed = {
        mark.name: mark.end
        for mark in (checkpoint.streams if checkpoint else {}).values()
    }
    found: list[Path] = []
    for folder in STREAM_OUTPUTS:
        root = out / folder
        if not root.is_dir():
            continue
        for path in root.rglob("*"):
            if not path.is_file():
                continue
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                found.append(path)
                continue
            match = _FILE_NAME.match(path.name.removesuffix(".parquet"))
            if match is None:
                continue  # a batch run's file: not ours to judge
            end = committed.get(match["name"])
            if end is None or int(match["start"]) >= end:
                found.append(path)
    return sorted(found)


def stream_files(out: Path, folder: str, names: set[str]) -> list[Path]:
    """The files in ``OUT/folder`` written by the streams named ``names``
    (their file-name parts), in name order."""
    root = out / folder
    if not root.is_dir():
        return []
    found = []
    for path in root.rglob("*.parquet"):
        match = _FILE_NAME.match(path.name.removesuffix(".parquet"))
        if match is not None and match["name"] in names:
            found.append(path)
    return sorted(found)


def recover(out: Path) -> Checkpoint | None:
    """Load the checkpoint in ``out`` and delete what was written after it.

    Returns the checkpoint (None on a first start). Deleting is safe: a
    file written after the last checkpoint covers lines the source will
    hand out again, since its positions were not committed.
    """
    checkpoint = load_checkpoint(out)
    removed = uncommitted_files(out, checkpoint)
    for path in removed:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as error:
            raise SinkError(f"cannot remove {path}: {error.strerror}") from None
    if removed:
        logger.info(
            "recovery: removed %d files written after the last checkpoint",
            len(removed),
        )
    if checkpoint is not None:
        logger.info(
            "recovery: resuming from checkpoint %d (%d streams)",
            checkpoint.seq,
            len(checkpoint.streams),
        )
    return checkpoint
