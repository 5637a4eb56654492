"""Running ``logweir run --follow`` as a process, and reading what it kept."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl

#: The window key, to put store rows in one order.
ORDER = ["window_size_s", "window_step_s", "window_start", "dimension", "key"]


def start_follow(
    paths: list[Path], out: Path, *extra: str, config: Path | None = None
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "logweir",
        "run",
        "--follow",
        *map(str, paths),
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]
    if config is not None:
        command += ["--config", str(config)]
    return subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env()
    )


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("LOGWEIR_CORPUS", None)
    return env


def follow_until_idle(paths: list[Path], out: Path, *extra: str, **kw: object) -> None:
    """One run that stops by itself once no line came for a second."""
    process = start_follow(paths, out, "--exit-when-idle", "1s", *extra, **kw)  # type: ignore[arg-type]
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr.decode()


def wait_for(check: object, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def stop(process: subprocess.Popen[bytes], number: int = signal.SIGTERM) -> int:
    process.send_signal(number)
    process.wait(timeout=120)
    return process.returncode


def store_windows(out: Path) -> pl.DataFrame:
    with duckdb.connect(str(out / "logweir.duckdb"), read_only=True) as db:
        frame = pl.from_arrow(db.sql("SELECT * FROM windows").to_arrow_table())
    assert isinstance(frame, pl.DataFrame)
    return frame.sort(ORDER)


def lake(out: Path, folder: str = "events") -> pl.DataFrame:
    files = sorted((out / folder).rglob("*.parquet"))
    if not files:
        return pl.DataFrame()
    return pl.read_parquet(files, hive_partitioning=False)


#: Misra-Gries capacity behind the top lists (WindowAggregator's default).
TOP_CAPACITY = 128


def assert_same_windows(got: pl.DataFrame, want: pl.DataFrame) -> None:
    """Every column equal, except that the ``top_*`` lists may differ as far
    as their Misra-Gries summaries allow: a summary cut at other batch
    boundaries undercounts by up to ``requests / capacity``, so the counts
    may differ by that much, and the keys are the same up to such ties."""
    assert got.height == want.height, (got.height, want.height)
    got = got.select(want.columns).cast(dict(want.schema))
    tops = [name for name in want.columns if name.startswith("top_")]
    differ = [
        name
        for name in want.columns
        if name not in tops and not got[name].equals(want[name])
    ]
    assert not differ, f"window columns differ: {differ}"
    for name in tops:
        for mine, theirs, requests in zip(
            got[name], want[name], want["requests"], strict=True
        ):
            if mine == theirs:
                continue
            bound = int(requests) // TOP_CAPACITY + 1
            counts = {entry["key"]: entry["count"] for entry in json.loads(theirs)}
            for entry in json.loads(mine):
                if entry["key"] in counts:
                    assert abs(entry["count"] - counts[entry["key"]]) <= bound, name
                else:  # only a key at the bottom can be swapped for a tied one
                    assert entry["count"] <= min(counts.values()) + bound, name
