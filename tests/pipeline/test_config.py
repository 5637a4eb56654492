"""RunConfig: TOML files and flags, and one-line messages for every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from logweir.errors import ConfigError
from logweir.pipeline.config import RunConfig, load_config, parse_size_bytes


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_when_nothing_is_given() -> None:
    config = load_config(None, {"inputs": ["a.log"]})
    assert config == RunConfig(inputs=["a.log"])
    assert config.windows == ["1m", "5m", "1h"]
    assert config.out == Path("logweir-out")
    assert (config.chunk_bytes, config.batch_bytes) == (64 << 20, 32 << 20)
    assert config.lateness_s == 300
    assert config.detect.enabled is True
    assert config.worker_count >= 1


def test_file_values_are_read_and_converted(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
inputs = ["logs/*.log", "-"]
out = "out"
format = "combined"
timezone = "+03:30"
windows = "1m,10m/5m"
dimensions = ["status_class", "path"]
top_n = 5
workers = 3
chunk_size = "1MiB"
batch_size = 65536
strict = true
lateness = "2m"

[detect]
enabled = false
min_requests = 20

[report]
top = 7
""",
    )
    config = load_config(path)
    assert config.inputs == [str(tmp_path / "logs/*.log"), "-"]
    assert config.out == tmp_path / "out"
    assert config.format == "combined"
    assert config.timezone == "+03:30"
    assert config.windows == ["1m", "10m/5m"]
    assert config.dimensions == ["status_class", "path"]
    assert (config.top_n, config.workers, config.worker_count) == (5, 3, 3)
    assert (config.chunk_bytes, config.batch_bytes) == (1 << 20, 65536)
    assert config.strict is True
    assert config.lateness_s == 120
    assert config.detect.enabled is False
    assert config.detect.options() == {"min_requests": 20}
    assert config.report.top == 7


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path, 'windows = ["1h"]\nworkers = 4\n[detect]\nmin_requests = 3\n'
    )
    config = load_config(
        path,
        {"windows": "5m", "workers": None, "detect": {"enabled": False}, "out": "x"},
    )
    assert config.windows == ["5m"]
    assert config.workers == 4  # None means the flag was not given
    assert config.out == Path("x")  # flags are relative to where logweir runs
    assert config.detect.enabled is False
    assert config.detect.options() == {"min_requests": 3}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'windows = "5x"',
            "config.toml: windows: bad window '5x': size '5x' is not a whole "
            "number and a unit s, m, h or d (such as '30s', '5m' or '1h')",
        ),
        (
            "colour = 1",
            "config.toml: colour: unknown key (known: alerts, batch_size, chunk_size, "
            "commit_interval, commit_size, consumer_id, detect, dimensions, "
            "exit_when_idle, follow, format, group, inputs, lateness, "
            "max_publish_interval, out, publish_interval, report, serve, source, "
            "stats, strict, timezone, top_n, windows, workers)",
        ),
        ("[report]\nbogus = 1", "config.toml: report.bogus: unknown key"),
        (
            'workers = "two"',
            "config.toml: workers: input should be a valid integer, unable to "
            'parse string as an integer, got "two"',
        ),
        (
            "workers = 0",
            "config.toml: workers: input should be greater than or equal to 1, got 0",
        ),
        (
            'dimensions = ["colour"]',
            "config.toml: dimensions: unknown window dimension 'colour'; known: "
            "status_class, host, method, service, level, path, client_ip, "
            "user_agent",
        ),
        (
            'timezone = "Mars/Base"',
            "config.toml: timezone: unknown time zone 'Mars/Base': give an IANA "
            "name such as 'Europe/Berlin', 'UTC', or an offset such as '+02:00'",
        ),
        (
            'chunk_size = "lots"',
            'config.toml: chunk_size: "lots" is not a size (use a number of '
            "bytes, KiB, MiB)",
        ),
        ('format = " "', "config.toml: format: is empty; omit it to detect the format"),
        (
            '[detect]\nenabled = "maybe"',
            "config.toml: detect.enabled: input should be a valid boolean, unable "
            'to interpret input, got "maybe"',
        ),
        (
            "windows = [",
            "config.toml: not valid TOML: Invalid value (at end of document)",
        ),
    ],
)
def test_bad_file_values_name_the_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == message


def test_bad_flag_is_named_as_the_flag(tmp_path: Path) -> None:
    path = _write(tmp_path, 'windows = "1m"')
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"windows": "1m,2x"})
    assert str(caught.value) == (
        "--windows: bad window '2x': size '2x' is not a whole number and a unit "
        "s, m, h or d (such as '30s', '5m' or '1h')"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(None, {"top_n": 0})
    assert str(caught.value) == (
        "--top-n: input should be greater than or equal to 1, got 0"
    )


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.toml")
    assert str(caught.value) == f"{tmp_path / 'nope.toml'}: config file not found"


@pytest.mark.parametrize(
    ("text", "size"),
    [("65536", 65536), ("64MiB", 64 << 20), ("64M", 64 << 20), ("1g", 1 << 30)],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size_bytes(text) == size
