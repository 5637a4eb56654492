"""Syslog: RFC 5424 and RFC 3164 told apart per line, years, continuations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from logweir.formats import ParseOptions
from logweir.formats.syslog import SyslogParser
from logweir.schema import LineBatch


def fixed_clock(zone: str) -> datetime:
    """10 January 2026, for year inference."""
    del zone
    return datetime(2026, 1, 10, 12, tzinfo=UTC)


def parse(lines: list[str], **options: Any) -> Any:
    parser = SyslogParser(ParseOptions(**options), clock=fixed_clock)
    return parser.parse(LineBatch.from_strings("messages", lines))


def events(lines: list[str], **options: Any) -> list[dict[str, Any]]:
    result = parse(lines, **options)
    assert result.rejects.height == 0, result.rejects.to_dicts()
    columns = ["ts", "host", "service", "level", "message", "extra"]
    return [
        dict(zip(columns, row, strict=True))
        for row in result.events.select(columns).rows()
    ]


def kv(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in pairs]


def test_rfc5424_with_structured_data() -> None:
    line = (
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
        '[exampleSDID@32473 iut="3" eventSource="App\\"x" eventID="1011"]'
        '[examplePriority@32473 class="high"] \ufeffAn application event'
    )
    assert events([line]) == [
        {
            "ts": datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC),
            "host": "mymachine.example.com",
            "service": "evntslog",
            "level": "notice",
            "message": "An application event",
            "extra": kv(
                ("facility", "local4"),
                ("msgid", "ID47"),
                ("exampleSDID@32473.iut", "3"),
                ("exampleSDID@32473.eventSource", 'App"x'),
                ("exampleSDID@32473.eventID", "1011"),
                ("examplePriority@32473.class", "high"),
            ),
        }
    ]


def test_rfc5424_nilvalues_offsets_and_fractions() -> None:
    lines = [
        "<34>1 2003-10-11T22:14:15.000003-07:00 - su - - - 'su root' failed",
        "<13>1 - - - - - -",
    ]
    assert events(lines) == [
        {
            "ts": datetime(2003, 10, 12, 5, 14, 15, 3, tzinfo=UTC),
            "host": None,
            "service": "su",
            "level": "crit",
            "message": "'su root' failed",
            "extra": kv(("facility", "auth")),
        },
        {
            "ts": None,
            "host": None,
            "service": None,
            "level": "notice",
            "message": None,
            "extra": kv(("facility", "user")),
        },
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "<13>Feb  5 17:32:18 10.0.0.99 myapp[42]: Use the BFG!",
            (
                datetime(2026, 2, 5, 17, 32, 18, tzinfo=UTC),
                "10.0.0.99",
                "myapp",
                "notice",
                "Use the BFG!",
                kv(("facility", "user"), ("pid", "42")),
            ),
        ),
        (
            "Jan  3 09:47:02 veridian sudo: timstack : TTY=pts/6",
            (
                datetime(2026, 1, 3, 9, 47, 2, tzinfo=UTC),
                "veridian",
                "sudo",
                None,
                "timstack : TTY=pts/6",
                [],
            ),
        ),
        (
            "Dec 31 23:59:59 host kernel: [ 0.0] boot",
            (
                datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC),
                "host",
                "kernel",
                None,
                "[ 0.0] boot",
                [],
            ),
        ),
        (
            "Nov  3 09:23:38 veridian lookup for opt failed",
            (
                datetime(2025, 11, 3, 9, 23, 38, tzinfo=UTC),
                "veridian",
                None,
                None,
                "lookup for opt failed",
                [],
            ),
        ),
        (
            "Mar 24 14:26:01 --- last message repeated 2 times ---",
            (
                datetime(2025, 3, 24, 14, 26, 1, tzinfo=UTC),
                None,
                None,
                None,
                "--- last message repeated 2 times ---",
                [],
            ),
        ),
        (
            "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown",
            (
                datetime(2025, 6, 14, 15, 16, 1, tzinfo=UTC),
                "combo",
                "sshd(pam_unix)",
                None,
                "check pass; user unknown",
                kv(("pid", "19939")),
            ),
        ),
        (
            "août 19 11:08:37 nlaptop symphorien[4961]: test",
            (
                datetime(2025, 8, 19, 11, 8, 37, tzinfo=UTC),
                "nlaptop",
                "symphorien",
                None,
                "test",
                kv(("pid", "4961")),
            ),
        ),
        (
            "2024-05-01T10:00:00.123+02:00 web-1 nginx[7]: started",
            (
                datetime(2024, 5, 1, 8, 0, 0, 123000, tzinfo=UTC),
                "web-1",
                "nginx",
                None,
                "started",
                kv(("pid", "7")),
            ),
        ),
        (
            "Feb 10 00:00:00 h cron: in the tolerance window",
            (
                datetime(2026, 2, 10, tzinfo=UTC),
                "h",
                "cron",
                None,
                "in the tolerance window",
                [],
            ),
        ),
    ],
)
def test_rfc3164_variants(line: str, expected: tuple[Any, ...]) -> None:
    assert tuple(events([line])[0].values()) == expected


def test_reference_year_fixes_the_year() -> None:
    [row] = events(["Dec 31 23:59:59 host app: x"], reference_year=2019)
    assert row["ts"] == datetime(2019, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_zone_applies_to_rfc3164_but_not_to_rfc5424_offsets() -> None:
    rows = events(
        [
            "Jul  1 12:00:00 host app: local",
            "<14>1 2024-07-01T12:00:00Z host app - - - utc",
        ],
        timezone="Europe/Berlin",
        reference_year=2024,
    )
    assert [row["ts"] for row in rows] == [
        datetime(2024, 7, 1, 10, tzinfo=UTC),
        datetime(2024, 7, 1, 12, tzinfo=UTC),
    ]


def test_indented_lines_continue_the_message_before_them() -> None:
    result = parse(
        [
            "Aug 16 00:32:15 Tims-Air syslogd[314]: Configuration Notice:",
            '\tASL Module "com.apple.cdscheduler" claims selected messages.',
            "\tThose messages may not appear.",
            "Aug 16 00:32:16 Tims-Air syslogd[314]: next",
        ]
    )
    assert result.events.get_column("message").to_list() == [
        'Configuration Notice:\n\tASL Module "com.apple.cdscheduler" claims selected '
        "messages.\n\tThose messages may not appear.",
        "next",
    ]
    assert result.events.get_column("offset").to_list() == [0, 155]
    assert result.skipped == 2
    assert result.rejects.height == 0


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("Header1: abc", "not syslog: no timestamp at column 1"),
        ("<13", "not syslog: malformed PRI at column 1"),
        ("<13>x", "not syslog: no timestamp at column 5"),
        ("<999>1 2003-10-11T22:14:15Z h a - - -", "pri: 999 is over 191"),
        (
            "<13>1 2003-10-11T22:14:15Z host",
            "not syslog: RFC 5424 line ends before its app-name (column 32)",
        ),
        (
            "<13>1 2003-10-11T22:14:15Z h a p m [broken",
            "not syslog: malformed RFC 5424 structured data at column 36",
        ),
        (
            "Foo 12 10:00:00 host app: x",
            "ts: field 'timestamp' has 'Foo 12 10:00:00', not a timestamp",
        ),
        (
            "Feb 30 10:00:00 host app: x",
            "ts: field 'timestamp' has 'Feb 30 10:00:00', not a timestamp",
        ),
        (
            "  orphan continuation",
            "not syslog: an indented line that continues no syslog line",
        ),
    ],
)
def test_bad_lines_are_rejected_naming_what_failed(line: str, reason: str) -> None:
    result = parse([line])
    assert result.events.height == 0
    assert result.rejects.select("line_number", "raw", "reason").rows() == [
        (1, line, reason)
    ]
