"""Format detection: the winner, ties explained, unknown logs explained."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from logweir.formats.detect import candidates, detect_format, detect_paths

COMBINED = [
    '10.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.0" 200 2326 "-" "curl/8"',
    '10.0.0.2 - bob [10/Oct/2000:13:55:37 -0700] "POST /b HTTP/1.1" 201 12 '
    '"http://x/" "Mozilla/5.0"',
]
JSON = ['{"ts": "2024-03-01T12:00:00Z", "level": "info", "msg": "started"}'] * 3
SYSLOG = ["Nov  3 09:23:38 veridian automount[7998]: lookup(file): lookup failed"] * 3
LOGFMT = ['ts=2024-03-01T12:00:00Z level=info msg="started"'] * 3
RFC5424 = ["<13>1 2020-03-13T20:45:38.119Z host app 1 ID - hello"] * 2


def test_agent_and_aliases_are_not_candidates() -> None:
    names = candidates()
    assert names[:2] == ["combined", "common"]
    assert "agent" not in names
    assert "nginx_combined" not in names
    assert {"json", "syslog", "logfmt"} <= set(names)


@pytest.mark.parametrize(
    ("lines", "name"),
    [(JSON, "json"), (SYSLOG, "syslog"), (LOGFMT, "logfmt"), (RFC5424, "syslog")],
)
def test_structured_formats_are_recognised(lines: list[str], name: str) -> None:
    detection = detect_format(lines)
    assert (detection.name, detection.match_rate, detection.ambiguous_with) == (
        name,
        1.0,
        (),
    )
    assert detection.explanation == (
        f"{name}: parses 100.0% of {len(lines)} sampled lines "
        f"({len(lines)}/{len(lines)})"
    )


def test_combined_and_its_twins_are_an_explained_tie() -> None:
    detection = detect_format(COMBINED)
    assert detection.name == "combined"
    assert set(detection.ambiguous_with) >= {"nginx"}
    assert "Ambiguous:" in detection.explanation
    assert "combined is chosen as the first in logweir's preference order" in (
        detection.explanation
    )


def test_partial_match_names_the_first_reject() -> None:
    detection = detect_format([*JSON, "not json at all"])
    assert detection.name == "json"
    assert detection.match_rate == 0.75
    assert detection.explanation == (
        "json: parses 75.0% of 4 sampled lines (3/4); the rest will be rejected "
        "(first: line 4: not JSON: Expecting value (column 1))"
    )


def test_unknown_format_is_explained_not_guessed() -> None:
    lines = ["I0505 17:59:40.692994   28133 klog.go:70] hello from klog"] * 4
    detection = detect_format(lines)
    assert detection.name is None
    assert detection.explanation.startswith(
        "unknown format: no candidate parses any of 4 sampled lines"
    )
    assert "--format" in detection.explanation


def test_mostly_unknown_names_the_closest() -> None:
    detection = detect_format([JSON[0], "x", "y", "z"])
    assert detection.name is None
    assert detection.explanation.startswith(
        "unknown format: no candidate parses 50% of the sample; the closest, json, "
        "parses 25.0% of 4 sampled lines (1/4)"
    )


def test_blank_sample() -> None:
    detection = detect_format(["", "  "], source="empty.log")
    assert (detection.name, detection.sampled) == (None, 0)
    assert detection.explanation == "empty.log: no lines to look at"


def test_detect_paths_reads_compressed_files_and_samples(tmp_path: Path) -> None:
    plain = tmp_path / "app.log"
    plain.write_text("\n".join(SYSLOG * 100) + "\n")
    packed = tmp_path / "app.json.gz"
    packed.write_bytes(gzip.compress(("\n".join(JSON) + "\n").encode()))
    found = detect_paths([str(plain), str(packed)], sample_lines=10)
    assert [(path, d.name, d.sampled) for path, d in found] == [
        (str(plain), "syslog", 10),
        (str(packed), "json", 3),
    ]
