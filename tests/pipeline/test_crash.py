"""Kill ``logweir run --follow`` with SIGKILL again and again; lose nothing.

A generated log grows between runs; each run is killed at a random moment
(while starting, reading, writing files or the checkpoint) and started
again. At the end, the lake holds exactly one row per event line, by
``(source, offset)``, and the store's windows equal those of one clean run
over the same file.
"""

from __future__ import annotations

import io
import random
import signal
import time
from pathlib import Path

import pytest
from follow_helpers import (
    assert_same_windows,
    follow_until_idle,
    lake,
    start_follow,
    store_windows,
)

from logweir.gen import generate

ROUNDS = 20
LINES_PER_ROUND = 2500

#: Small batches and frequent commits: many checkpoints per run, so kills
#: land between and inside them.
CONFIG = """
batch_size = "32KiB"
commit_interval = "50ms"
windows = ["1m", "5m"]
lateness = "1m"
"""


def generated(lines: int) -> list[bytes]:
    buffer = io.BytesIO()
    generate(lines, buffer, seed=11, rate_per_s=40.0)
    return buffer.getvalue().splitlines(keepends=True)


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_and_repeats_nothing(tmp_path: Path) -> None:
    rng = random.Random(20240301)
    lines = generated(ROUNDS * LINES_PER_ROUND)
    log = tmp_path / "access.log"
    log.write_bytes(b"")
    config = tmp_path / "logweir.toml"
    config.write_text(CONFIG)
    out = tmp_path / "out"
    kills = 0
    for round_number in range(ROUNDS):
        chunk = lines[
            round_number * LINES_PER_ROUND : (round_number + 1) * LINES_PER_ROUND
        ]
        with log.open("ab") as handle:
            handle.write(b"".join(chunk))
        process = start_follow([log], out, config=config)
        time.sleep(rng.uniform(0.3, 3.0))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(timeout=60)
        assert process.stderr is not None
        process.stderr.close()
    assert kills >= ROUNDS
    follow_until_idle([log], out, config=config)

    clean = tmp_path / "clean"
    follow_until_idle([log], clean, config=config)

    events = lake(out)
    reference = lake(clean)
    assert events.height == reference.height > ROUNDS * LINES_PER_ROUND * 0.9
    assert events.select("source", "offset").unique().height == events.height
    assert sorted(events.get_column("offset")) == sorted(reference.get_column("offset"))
    assert_same_windows(store_windows(out), store_windows(clean))
