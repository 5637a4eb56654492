"""Rejected lines, with their reasons, as ``OUT/rejects/{name}.parquet``.

One file per input batch, named like the batch's lake files, written
atomically (:mod:`.atomic`) so a replay replaces it. A batch without
rejects writes nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl
from polars._typing import ParquetCompression

from logweir.schema import REJECT_SCHEMA, conform_rejects
from logweir.sinks.atomic import write_atomically
from logweir.sinks.lake import check_name

logger = logging.getLogger(__name__)


class RejectWriter:
    """Writes rejects batches (:data:`~logweir.schema.REJECT_SCHEMA`)."""

    def __init__(
        self, out_dir: Path | str, compression: ParquetCompression = "zstd"
    ) -> None:
        self.root = Path(out_dir) / "rejects"
        self.compression = compression
        self.rows_written = 0

    def write(self, rejects: pl.DataFrame, name: str) -> list[Path]:
        """Write ``rejects`` to ``rejects/{name}.parquet``; return the path.

        Returns no path when ``rejects`` is empty. Raises
        :class:`~logweir.errors.SinkError` when the file cannot be written.
        """
        check_name(name)
        if rejects.is_empty():
            return []
        frame = conform_rejects(rejects)
        path = self.root / f"{name}.parquet"
        write_atomically(
            path,
            lambda target: frame.write_parquet(target, compression=self.compression),
        )
        self.rows_written += frame.height
        logger.debug("rejects: %d rows to %s", frame.height, path)
        return [path]

    def flush(self) -> None:
        """Nothing is buffered: every ``write`` is on disk when it returns."""

    def close(self) -> None:
        """Nothing to release; here for the common sink verbs."""


__all__ = ["REJECT_SCHEMA", "RejectWriter"]
