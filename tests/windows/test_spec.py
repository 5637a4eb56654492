"""Window specs: parsing ``--windows`` text and refusing bad parts."""

from __future__ import annotations

import pytest

from logweir.errors import ConfigError
from logweir.windows import WindowSpec, parse_duration, parse_windows
from logweir.windows.spec import format_duration, pane_seconds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1m", [WindowSpec(60, 60)]),
        (
            "1m,5m,1h",
            [WindowSpec(60, 60), WindowSpec(300, 300), WindowSpec(3600, 3600)],
        ),
        ("10m/1m", [WindowSpec(600, 60)]),
        (" 30s , 1d ", [WindowSpec(30, 30), WindowSpec(86400, 86400)]),
        ("1m,1m,60s", [WindowSpec(60, 60)]),
        ("2h/30m,", [WindowSpec(7200, 1800)]),
    ],
)
def test_good_specs(text: str, expected: list[WindowSpec]) -> None:
    assert parse_windows(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0m", "bad window '0m': size '0m' is not longer than zero"),
        (
            "5x",
            "bad window '5x': size '5x' is not a whole number and a unit s, m, h or d "
            "(such as '30s', '5m' or '1h')",
        ),
        ("1m,5", "bad window '5': size '5' is not a whole number"),
        ("1.5m", "bad window '1.5m': size '1.5m' is not a whole number"),
        ("10m/0s", "bad window '10m/0s': step '0s' is not longer than zero"),
        ("10m/x", "bad window '10m/x': step 'x' is not a whole number"),
        (
            "1m/5m",
            "bad window '1m/5m': the step is longer than the size, which would "
            "leave gaps between windows",
        ),
        ("10m/3m", "bad window '10m/3m': the step must divide the size"),
        ("", "no windows in '': give sizes such as '1m,5m,1h'"),
        (
            "1s,1d",
            "windows '1s,1d' need 1s panes, 86400 per 1d window (at most 10080); "
            "use sizes with a larger common divisor",
        ),
    ],
)
def test_bad_specs_name_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_windows(text)
    assert str(caught.value).startswith(message)


def test_labels_round_trip() -> None:
    specs = parse_windows("90s,5m,10m/1m,1d")
    assert [spec.label for spec in specs] == ["90s", "5m", "10m/1m", "1d"]
    assert parse_windows(",".join(spec.label for spec in specs)) == specs


def test_pane_is_the_common_divisor() -> None:
    assert pane_seconds(parse_windows("1m,5m,1h")) == 60
    assert pane_seconds(parse_windows("10m/2m,1h")) == 120
    assert pane_seconds(parse_windows("90s,1m")) == 30


def test_tumbling_and_hopping() -> None:
    assert WindowSpec(60, 60).tumbling
    assert not WindowSpec(600, 60).tumbling


def test_durations() -> None:
    assert parse_duration("5m") == 300
    assert format_duration(90) == "90s"
    assert format_duration(7200) == "2h"
    with pytest.raises(ConfigError, match=r"^bad lateness: '-5m' is not a whole"):
        parse_duration("-5m", what="lateness")
