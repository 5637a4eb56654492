"""``logweir run --follow`` as a process over real files (sources.follow).

Shutdown by signal, resuming, and rotation through the whole pipeline;
the follower's own rotation rules are tested in tests/sources.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from follow_helpers import (
    assert_same_windows,
    follow_until_idle,
    lake,
    start_follow,
    stop,
    store_windows,
    wait_for,
)

from logweir.pipeline.checkpoint import load_checkpoint

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def lines(first: int, count: int) -> bytes:
    """Combined lines numbered ``first`` on, one per 200 ms, path ``/n<number>``."""
    out = []
    for number in range(first, first + count):
        moment = T0 + timedelta(seconds=number / 5)
        stamp = moment.strftime("%d/%b/%Y:%H:%M:%S +0000")
        out.append(
            f'10.1.{number % 5}.{number % 251} - - [{stamp}] "GET /n{number} '
            f'HTTP/1.1" {200 + number % 3} {number % 999} "-" "ua"\n'
        )
    return "".join(out).encode()


def numbers_in_lake(out: Path) -> list[int]:
    paths = lake(out).get_column("path")
    return sorted(int(path[2:]) for path in paths)


def checkpointed_lines(out: Path) -> int:
    checkpoint = load_checkpoint(out)
    return 0 if checkpoint is None else int(checkpoint.counters.get("lines", 0))


def test_sigterm_flushes_checkpoints_exits_0_and_the_next_run_resumes(
    tmp_path: Path,
) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(lines(0, 3000))
    out = tmp_path / "out"
    process = start_follow([log], out)
    wait_for(lambda: checkpointed_lines(out) == 3000)
    with log.open("ab") as handle:
        handle.write(lines(3000, 500))
    assert stop(process, signal.SIGTERM) == 0
    assert process.stderr is not None
    assert b"stopping" in process.stderr.read()
    process.stderr.close()
    follow_until_idle([log], out)
    assert numbers_in_lake(out) == list(range(3500))
    clean = tmp_path / "clean"
    follow_until_idle([log], clean)
    assert_same_windows(store_windows(out), store_windows(clean))


@pytest.mark.slow
def test_a_second_signal_exits_at_once_and_stays_resumable(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(lines(0, 20000))
    out = tmp_path / "out"
    config = tmp_path / "slow.toml"
    config.write_text('batch_size = "16KiB"\ncommit_interval = "20ms"\n')
    process = start_follow([log], out, config=config)
    wait_for(lambda: checkpointed_lines(out) > 0)
    process.send_signal(signal.SIGINT)
    time.sleep(0.05)  # two signals sent at once may arrive as one
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    assert process.stderr is not None
    said = process.stderr.read()
    process.stderr.close()
    # the first stop may have finished before the second signal came
    if process.returncode != 0:
        assert process.returncode == 128 + signal.SIGINT
        assert b"stopped at once" in said
    follow_until_idle([log], out, config=config)
    assert numbers_in_lake(out) == list(range(20000))


def test_rotation_by_rename_and_by_copytruncate_loses_and_repeats_nothing(
    tmp_path: Path,
) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(lines(0, 1000))
    out = tmp_path / "out"
    process = start_follow([log], out)
    try:
        wait_for(lambda: checkpointed_lines(out) == 1000)
        with log.open("ab") as handle:  # written just before the rename
            handle.write(lines(1000, 200))
        os.rename(log, tmp_path / "access.log.1")
        log.write_bytes(lines(1200, 800))
        wait_for(lambda: checkpointed_lines(out) == 2000)
        # copytruncate: the content is copied away, the file emptied in place
        (tmp_path / "access.log.2").write_bytes(log.read_bytes())
        with log.open("r+b") as handle:
            handle.truncate(0)
        time.sleep(0.3)
        with log.open("ab") as handle:
            handle.write(lines(2000, 700))
        wait_for(lambda: checkpointed_lines(out) == 2700)
    finally:
        assert stop(process) == 0
        assert process.stderr is not None
        process.stderr.close()
    assert numbers_in_lake(out) == list(range(2700))
    events = lake(out)
    assert events.select("source", "offset").unique().height == 2700
    # three identities: the renamed file, its successor, its next generation
    assert events.get_column("source").n_unique() == 3
    windows = store_windows(out).filter(
        (pl.col("dimension") == "all") & (pl.col("window_size_s") == 60)
    )
    assert windows.get_column("requests").sum() == 2700


def test_follow_without_paths_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from logweir.cli import main

    assert main(["run", "--follow", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == "logweir: --follow: name the files or globs to follow\n"
