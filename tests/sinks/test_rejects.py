"""Reject files: one per batch, reasons kept, replaced on replay."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from logweir.errors import SinkError
from logweir.schema import REJECT_RAW_MAX_CHARS, REJECT_SCHEMA
from logweir.sinks import RejectWriter


def rejects(reason: str = "no timestamp") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "source": ["access.log", "access.log"],
            "line_number": [3, 9],
            "offset": [211, 804],
            "raw": ["GET / HTTP/1.1 garbage", "x" * (REJECT_RAW_MAX_CHARS + 10)],
            "reason": [reason, "line too long"],
        },
        schema=REJECT_SCHEMA,
    )


def test_rejects_keep_their_reasons_and_capped_text(tmp_path: Path) -> None:
    [path] = RejectWriter(tmp_path).write(rejects(), "b-0001")
    assert path == tmp_path / "rejects" / "b-0001.parquet"
    back = pl.read_parquet(path)
    assert back.schema == pl.Schema(REJECT_SCHEMA)
    assert back["reason"].to_list() == ["no timestamp", "line too long"]
    assert back["raw"][1] == "x" * REJECT_RAW_MAX_CHARS + "…[cut]"


def test_replay_replaces_the_file(tmp_path: Path) -> None:
    writer = RejectWriter(tmp_path)
    writer.write(rejects(), "b-0001")
    [path] = writer.write(rejects("bad status"), "b-0001")
    assert_frame_equal(
        pl.read_parquet(path)["reason"].to_frame(),
        pl.DataFrame({"reason": ["bad status", "line too long"]}),
    )
    assert [p.name for p in (tmp_path / "rejects").iterdir()] == ["b-0001.parquet"]


def test_no_rejects_no_file(tmp_path: Path) -> None:
    assert RejectWriter(tmp_path).write(rejects().head(0), "b-0001") == []
    assert not (tmp_path / "rejects").exists()


def test_unwritable_folder_gives_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "rejects").write_text("a file, not a folder")
    with pytest.raises(
        SinkError, match=rf"^cannot write {tmp_path}/rejects/b-0001.parquet: "
    ):
        RejectWriter(tmp_path).write(rejects(), "b-0001")
