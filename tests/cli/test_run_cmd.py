"""``logweir run`` through its command line: output, exit codes, bad input."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from logweir.cli import main
from logweir.formats.registry import PRESETS

SHOP_LOG = "lnav/test/logfile_shop_access_log.0"

GOOD = '203.0.113.9 - - [22/Jan/2019:03:56:14 +0330] "GET /a HTTP/1.1" 200 12 "-" "x"\n'
BAD = "this is not a log line\n"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["run", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _lake_files(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file() and "events" in p.parts)


def _leftovers(out: Path) -> list[Path]:
    """Anything in the lake or rejects that is not a finished Parquet file."""
    return [
        p
        for p in out.rglob("*")
        if p.is_file()
        and ({"events", "rejects"} & set(p.parts))
        and p.suffix != ".parquet"
    ]


def test_json_report_of_the_shop_log(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _run(
        capsys,
        str(corpus / SHOP_LOG),
        "--out",
        str(tmp_path),
        "--workers",
        "1",
        "--no-detect",
        "--json",
    )
    assert (status, err) == (0, "")
    report = json.loads(out)
    assert report["lines"] == 1000
    assert report["events"] == 1000
    assert report["requests"] == 1000
    assert report["status_codes"] == {
        "200": 938,
        "404": 24,
        "302": 20,
        "301": 11,
        "304": 7,
    }
    assert report["first_event"] == "2019-01-22T00:26:14Z"  # +0330 read as UTC
    assert [m["requests"] for m in report["requests_per_minute"]] == [
        242,
        287,
        331,
        140,
    ]
    assert report["outputs"] == {
        "lake": str(tmp_path / "events"),
        "store": str(tmp_path / "logweir.duckdb"),
        "rejects": str(tmp_path / "rejects"),
    }
    assert report["formats"][0]["name"] == "combined"
    assert report["formats"][0]["detected"] is True


def test_terminal_report_has_every_panel(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _run(
        capsys, str(corpus / SHOP_LOG), "--out", str(tmp_path), "-j", "1"
    )
    assert (status, err) == (0, "")
    for title in (
        "logweir run",
        "requests per minute",
        "status codes",
        "rejects by reason",
        "top paths",
        "top clients",
        "top 404s",
        "slowest paths",
        "outputs",
    ):
        assert title in out
    assert str(tmp_path / "logweir.duckdb") in out


def test_quiet_prints_nothing(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _run(
        capsys, str(corpus / SHOP_LOG), "--out", str(tmp_path), "-q", "-j", "1"
    )
    assert (status, out, err) == (0, "", "")
    assert _lake_files(tmp_path)


def test_config_file_and_flags(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "logweir.toml"
    config.write_text(
        f'inputs = ["{corpus / SHOP_LOG}"]\nout = "o"\nwindows = "1h"\n'
        "workers = 1\n[detect]\nenabled = false\n",
        encoding="utf-8",
    )
    status, out, _ = _run(capsys, "--config", str(config), "--windows", "5m", "--json")
    assert status == 0
    assert json.loads(out)["outputs"]["store"] == str(tmp_path / "o/logweir.duckdb")
    assert (
        main(
            [
                "query",
                "SELECT DISTINCT window_size_s FROM windows",
                "--out",
                str(tmp_path / "o"),
                "--format",
                "csv",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out == "window_size_s\n300\n"


def test_config_file_report_and_serve_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """[report] html is read from the file's folder; a flag still wins; a
    [serve] address in a batch run is refused like the flag."""
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "a.log").write_text(GOOD * 3, encoding="utf-8")
    config = folder / "logweir.toml"
    config.write_text(
        'inputs = ["a.log"]\nout = "o"\nformat = "combined"\nworkers = 1\n'
        '[detect]\nenabled = false\n[report]\nhtml = "r.html"\n',
        encoding="utf-8",
    )
    status, _, _ = _run(capsys, "--config", str(config), "--quiet")
    assert status == 0
    assert "<html" in (folder / "r.html").read_text(encoding="utf-8")
    flag_report = tmp_path / "flag.html"
    status, _, _ = _run(
        capsys, "--config", str(config), "--quiet", "--report", str(flag_report)
    )
    assert status == 0 and flag_report.exists()

    config.write_text(
        config.read_text(encoding="utf-8") + '[serve]\naddr = "127.0.0.1:8089"\n',
        encoding="utf-8",
    )
    status, _, err = _run(capsys, "--config", str(config), "--quiet")
    assert status == 2
    assert err == (
        "logweir: --serve needs --follow (to look at a finished run: serve)\n"
    )


def test_rejects_are_counted_by_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "mixed.log"
    log.write_text(GOOD + BAD + GOOD, encoding="utf-8")
    out = tmp_path / "out"
    status, text, _ = _run(
        capsys, str(log), "--out", str(out), "-f", "combined", "-j", "1", "--json"
    )
    assert status == 0
    report = json.loads(text)
    assert (report["events"], report["rejects"]) == (2, 1)
    assert report["rejects_by_reason"] == {
        'time: expected [dd/Mon/yyyy:HH:MM:SS +zzzz] at char 12, got "a"': 1
    }
    assert list((out / "rejects").rglob("*.parquet"))


# -- bad input: one line, exit status 2, nothing half-written ----------------


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.log"
    status, out, err = _run(capsys, str(missing), "--out", str(tmp_path / "out"))
    assert (status, out) == (2, "")
    assert err == f"logweir: cannot read '{missing}': no such file or directory\n"
    assert not (tmp_path / "out").exists()


def test_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Tests run as root, which reads any file whatever its mode; the kernel
    # refuses reading this one at offset 0 to everybody.
    status, _, err = _run(capsys, "/proc/self/mem", "--out", str(tmp_path / "o"))
    assert status == 2
    assert err == "logweir: cannot read '/proc/self/mem': input/output error\n"


def test_unknown_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "a.log"
    log.write_text(GOOD, encoding="utf-8")
    status, _, err = _run(
        capsys, str(log), "--out", str(tmp_path / "o"), "-f", "apache2"
    )
    assert status == 2
    presets = ", ".join(sorted(PRESETS))
    assert err == (
        f"logweir: unknown format 'apache2': not a preset ({presets}), and neither "
        "an Apache LogFormat (%-directives), an Nginx log_format ($variables), "
        "'regex:...' nor 'grok:...'\n"
    )
    assert _lake_files(tmp_path / "o") == []


def test_bad_window_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "a.log"
    log.write_text(GOOD, encoding="utf-8")
    status, _, err = _run(capsys, str(log), "--windows", "1m,5x")
    assert status == 2
    assert err == (
        "logweir: --windows: bad window '5x': size '5x' is not a whole number and "
        "a unit s, m, h or d (such as '30s', '5m' or '1h')\n"
    )


def test_out_under_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "a.log"
    log.write_text(GOOD, encoding="utf-8")
    out = log / "out"
    status, _, err = _run(capsys, str(log), "--out", str(out))
    assert status == 2
    assert err == f"logweir: cannot write to '{out}': not a directory\n"


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A small tmpfs mount point; mounted by the test with its options."""
    point = tmp_path / "mnt"
    point.mkdir()
    mounted: list[str] = []

    def mount(options: str) -> None:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounted.append(options)

    yield point, mount  # type: ignore[misc]
    if mounted:
        # A file handle of a failed write can live on in a traceback's
        # reference cycle until the next collection; unmounting waits for it.
        gc.collect()
        subprocess.run(["umount", str(point)], check=True)


def test_out_on_a_read_only_disk(
    tmp_path: Path, tmpfs: tuple[Path, object], capsys: pytest.CaptureFixture[str]
) -> None:
    point, mount = tmpfs
    mount("ro,size=1m")  # type: ignore[operator]
    log = tmp_path / "a.log"
    log.write_text(GOOD, encoding="utf-8")
    status, _, err = _run(capsys, str(log), "--out", str(point / "out"))
    assert status == 2
    assert err == f"logweir: cannot write to '{point / 'out'}': read-only file system\n"


def test_out_on_a_full_disk_leaves_no_partial_file(
    tmp_path: Path, tmpfs: tuple[Path, object], capsys: pytest.CaptureFixture[str]
) -> None:
    point, mount = tmpfs
    mount("size=256k")  # type: ignore[operator]
    log = tmp_path / "big.log"
    lines = [
        f"10.0.{i // 250 % 250}.{i % 250} - - [22/Jan/2019:03:{i // 1000 % 60:02d}:"
        f'{i % 60:02d} +0330] "GET /p/{i} HTTP/1.1" 200 {i} "-" "agent {i}"\n'
        for i in range(40_000)
    ]
    log.write_text("".join(lines), encoding="utf-8")
    out = point / "out"
    status, _, err = _run(capsys, str(log), "--out", str(out), "-f", "combined")
    assert status == 2
    assert err.startswith("logweir: cannot write ")
    assert "no space left on device" in err
    assert err.count("\n") == 1
    assert _leftovers(out) == []


def test_strict_stops_at_the_first_bad_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "a.log"
    log.write_text(GOOD + BAD + GOOD, encoding="utf-8")
    status, _, err = _run(
        capsys, str(log), "--out", str(tmp_path / "o"), "-f", "combined", "--strict"
    )
    assert status == 2
    assert err == (
        f"logweir: {log}:2 (byte {len(GOOD)}): time: expected "
        '[dd/Mon/yyyy:HH:MM:SS +zzzz] at char 12, got "a"\n'
    )
    assert _leftovers(tmp_path / "o") == []


def test_strict_with_two_workers_reports_the_first_bad_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "a.log"
    body = GOOD * 3000
    log.write_text(body + BAD + body + BAD + body, encoding="utf-8")
    status, _, err = _run(
        capsys,
        str(log),
        "--out",
        str(tmp_path / "o"),
        "-f",
        "combined",
        "--strict",
        "--workers",
        "2",
        "--chunk-size",
        "64KiB",
    )
    assert status == 2
    assert err.startswith(f"logweir: {log}:3001 (byte {len(body)}): time: expected")


def test_standard_input_with_its_format_detected(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = (corpus / SHOP_LOG).read_bytes()
    command = [sys.executable, "-m", "logweir", "run", "-", "--out", str(tmp_path)]
    result = subprocess.run(
        [*command, "--no-detect", "--json"],
        input=data,
        capture_output=True,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, b"")
    report = json.loads(result.stdout)
    assert (report["lines"], report["events"], report["requests"]) == (1000, 1000, 1000)
    assert report["inputs"] == ["-"]
    assert report["formats"][0]["name"] == "combined"
    query = ["query", "SELECT DISTINCT source FROM events", "--out", str(tmp_path)]
    assert main([*query, "--format", "csv"]) == 0
    assert capsys.readouterr().out == "source\n-\n"
