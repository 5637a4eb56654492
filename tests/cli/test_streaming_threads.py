"""Streaming commands run Polars on one thread (see logweir.cli)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from logweir.cli import is_streaming


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "--follow", "access.log"], True),
        (["-v", "run", "access.log", "--source=kafka://h:9092/t"], True),
        (["ship", "--to", "kafka://h:9092/t", "a.log"], True),
        (["--verbose", "run", "--fol", "access.log"], True),
        (["run", "--sou", "kafka://h:9092/t"], True),
        (["run", "access.log"], False),
        (["run", "--", "--follow"], False),
        (["run", "--format=--follow", "access.log"], False),
        (["query", "SELECT 1"], False),
        ([], False),
    ],
)
def test_streaming_runs_are_told_from_the_command_line(
    argv: list[str], expected: bool
) -> None:
    assert is_streaming(argv) is expected


def test_a_config_file_that_follows_makes_a_streaming_run(tmp_path: Path) -> None:
    follows = tmp_path / "follow.toml"
    follows.write_text('follow = ["/var/log/nginx/access.log"]\n')
    batch = tmp_path / "batch.toml"
    batch.write_text('inputs = ["access.log"]\n')
    broken = tmp_path / "broken.toml"
    broken.write_text("follow = [\n")
    assert is_streaming(["run", "--config", str(follows)])
    assert is_streaming(["run", f"--config={follows}"])
    assert not is_streaming(["run", "--config", str(batch)])
    assert not is_streaming(["run", "--config", str(broken)])
    assert not is_streaming(["run", "--config", str(tmp_path / "missing.toml")])
    assert is_streaming(["run", "--conf", str(follows)])
    # argparse takes the last --config
    assert not is_streaming(["run", "--config", str(follows), "--config", str(batch)])
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'follow = ["a.log"]\n# caf\xe9\n')
    assert not is_streaming(["run", "--config", str(latin)])


def test_a_config_from_a_pipe_is_left_whole_for_the_command(tmp_path: Path) -> None:
    """``--config <(...)``: a pipe can be read once; sniffing it would leave
    the command an empty file."""
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    assert not is_streaming(["run", "--config", str(fifo)])  # (and does not block)


#: Runs the CLI's main in a fresh interpreter, stopped just before it builds
#: the parser (whose modules import Polars), then prints Polars' pool size.
PROBE = """
import sys
import logweir.cli as cli
def stop():
    raise SystemExit(0)
cli.build_parser = stop
try:
    cli.main(sys.argv[1:])
except SystemExit:
    pass
import polars
print(polars.thread_pool_size())
"""


def _threads(argv: list[str], **env: str) -> int:
    clean = {k: v for k, v in os.environ.items() if k != "POLARS_MAX_THREADS"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.split()[-1])


def test_polars_gets_one_thread_before_it_is_imported(tmp_path: Path) -> None:
    argv = ["run", "--follow", str(tmp_path / "a.log"), "--out", str(tmp_path)]
    assert _threads(argv) == 1
    # a setting of the user's own wins
    assert _threads(argv, POLARS_MAX_THREADS="2") == 2
