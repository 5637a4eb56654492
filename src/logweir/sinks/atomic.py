"""Write a file whole or not at all: temporary name, fsync, rename, fsync.

Every sink writes through :func:`write_atomically`. The temporary file sits
in the target's own directory (a rename across file systems would not be
atomic) under a hidden name ending in ``.tmp``, so readers globbing
``*.parquet`` never see it. If anything fails, the temporary file is
removed and a :class:`~logweir.errors.SinkError` names the target and the
cause in one line; what was renamed into place before stays intact.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from logweir.errors import SinkError

logger = logging.getLogger(__name__)


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary_path)``, then move the result to ``path``.

    The data is fsynced before the rename and the directory after it, so
    after a crash ``path`` holds either the old file or the whole new one.
    Raises :class:`SinkError` (``cannot write PATH: read-only file system``)
    on any ``OSError``, leaving no temporary file behind.
    """
    directory = path.parent
    temporary = directory / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        write(temporary)
        _fsync(temporary, os.O_RDONLY)
        os.replace(temporary, path)
        _fsync(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as error:
        _remove_quietly(temporary)
        raise SinkError(f"cannot write {path}: {describe(error)}") from error
    logger.debug("sinks: wrote %s", path)
    return path


def describe(error: OSError) -> str:
    """The cause of ``error`` in a few lower-case words."""
    if error.errno is not None:
        return os.strerror(error.errno).lower()
    text = str(error).strip().splitlines()
    # pyarrow raises OSError without errno but with the C library's words.
    return text[0] if text else type(error).__name__


def _fsync(path: Path, flags: int) -> None:
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    except OSError as error:
        # Some file systems cannot fsync a directory; the rename is done.
        if error.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(descriptor)


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        logger.warning("sinks: could not remove temporary file %s: %s", path, error)
