"""AlertEngine: built-in rules over closed windows, config, gaps, state."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from logweir.detectors.engine import BUILTIN_RULES, AlertEngine
from logweir.errors import ConfigError

T0 = datetime(2024, 5, 1, 14, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
SCANNER = "203.0.113.7"


def minute(
    i: int,
    *,
    requests: int = 1000,
    scanner: int = 0,
    agent: str | None = None,
    client: tuple[str, int] | None = None,
) -> list[dict[str, Any]]:
    """The rows of one window of steady traffic, with optional trouble."""
    start = T0 + i * MINUTE
    base = requests + (10 if i % 2 else -10)
    clients = [("10.0.0.1", 30), ("10.0.0.2", 25), ("10.0.0.3", 20)]
    if client is not None:
        clients = [client, *clients]
    agents = [("Mozilla A", base // 2), ("Mozilla B", base // 3)]
    if agent is not None:
        agents = [(agent, scanner), *agents]
    total = base + scanner + (client[1] if client else 0)
    four = 25 + scanner
    rows = [
        {
            "start": start,
            "requests": total,
            "status_5xx": 6,
            "status_4xx": four,
            "p95": 100.0,
            "unique_clients": 200,
            "top_clients": ([(SCANNER, scanner)] if scanner else []) + clients,
            "top_user_agents": agents,
        },
        {
            "start": start,
            "dimension": "status_class",
            "key": "4xx",
            "requests": four,
            "status_4xx": four,
            "top_clients": ([(SCANNER, scanner)] if scanner else [])
            + [("10.0.0.9", 3)],
        },
    ]
    return rows


def frame(window_frame, minutes: list[list[dict[str, Any]]]) -> pl.DataFrame:
    return window_frame([row for rows in minutes for row in rows])


def opened(alerts: list) -> list[tuple[str, str]]:
    return [(a.rule, a.key) for a in alerts if a.status == "open"]


def test_steady_traffic_raises_nothing(window_frame) -> None:
    engine = AlertEngine()
    alerts = engine.update(frame(window_frame, [minute(i) for i in range(60)]))
    assert alerts + engine.finish() == []


def test_scanner_is_one_alert_not_a_traffic_spike_too(window_frame) -> None:
    minutes = [minute(i) for i in range(30)]
    minutes += [minute(i, scanner=3000, agent="sqlmap/1.7") for i in range(30, 33)]
    minutes += [minute(i) for i in range(33, 40)]
    engine = AlertEngine()
    alerts = engine.update(frame(window_frame, minutes)) + engine.finish()
    assert opened(alerts) == [("client_4xx_storm", SCANNER)]
    storm = alerts[0]
    assert storm.message == (
        f"client {SCANNER} drew 3,000 4xx responses in 14:30–14:31 (99 % of all 4xx) "
        "against a usual 25.0 4xx per window from everyone, as user agent 'sqlmap/1.7'"
    )
    assert storm.detail == {
        "client_ip": SCANNER,
        "requests": 3000.0,
        "user_agent": "sqlmap/1.7",
    }
    assert alerts[1].status == "resolved" and alerts[1].windows == 3


def test_client_far_above_its_peers(window_frame) -> None:
    minutes = [minute(i) for i in range(30)]
    minutes += [minute(30, client=("198.51.100.4", 900)), minute(31)]
    alerts = AlertEngine().update(frame(window_frame, minutes))
    assert opened(alerts) == [("client_flood", "198.51.100.4")]
    # peers: the other 990 requests over the other 199 clients
    assert alerts[0].baseline == pytest.approx(990 / 199)


def test_new_user_agent_surge(window_frame) -> None:
    minutes = [minute(i) for i in range(30)]
    minutes += [minute(30, scanner=0, agent="NewBot/0.1")]
    minutes[-1][0]["top_user_agents"] = [("NewBot/0.1", 400), ("Mozilla A", 500)]
    minutes += [minute(31)]
    alerts = AlertEngine().update(frame(window_frame, minutes))
    assert opened(alerts) == [("new_user_agent", "NewBot/0.1")]
    assert alerts[0].message.startswith("new user agent 'NewBot/0.1' sent 400 requests")


def test_missing_windows_count_as_empty(window_frame) -> None:
    # traffic stops: no window rows at all for minutes 30..34
    minutes = [minute(i) for i in range(30)] + [minute(35), minute(36)]
    alerts = AlertEngine().update(frame(window_frame, minutes))
    assert opened(alerts) == [("traffic_drop", "")]
    assert alerts[0].start == T0 + 30 * MINUTE and alerts[0].value == 0.0


def test_reemitted_windows_are_skipped(window_frame) -> None:
    engine = AlertEngine()
    engine.update(frame(window_frame, [minute(i) for i in range(31)]))
    # minute 29 again, now with a spike: already judged, so ignored
    assert (
        engine.update(frame(window_frame, [minute(29, requests=9000), minute(31)]))
        == []
    )


def test_the_newest_window_waits_and_a_new_copy_replaces_it(window_frame) -> None:
    engine = AlertEngine()
    assert engine.update(frame(window_frame, [minute(i) for i in range(30)])) == []
    # minute 30 comes cut short (the input ended in it): held, not judged
    assert engine.update(frame(window_frame, [minute(30, requests=100)])) == []
    # late events complete it; its new copy replaces the held one
    assert engine.update(frame(window_frame, [minute(30), minute(31)])) == []
    assert engine.finish() == []


def test_the_last_window_of_an_input_is_not_judged(window_frame) -> None:
    engine = AlertEngine()
    minutes = [minute(i) for i in range(30)] + [minute(30, requests=50)]
    assert engine.update(frame(window_frame, minutes)) + engine.finish() == []


def test_shortest_tumbling_window_is_watched(window_frame) -> None:
    engine = AlertEngine()
    hourly = window_frame([{"start": T0, "requests": 60000}], size_s=3600)
    hopping = window_frame([{"start": T0, "requests": 5000, "step_s": 60}], size_s=300)
    engine.update(pl.concat([hourly, hopping, frame(window_frame, [minute(0)])]))
    assert engine.window_s == 60


def test_restored_engine_continues_exactly(window_frame) -> None:
    minutes = [minute(i) for i in range(30)]
    minutes += [minute(i, scanner=3000, agent="sqlmap/1.7") for i in range(30, 33)]
    minutes += [minute(i, requests=200) for i in range(33, 40)]
    whole = frame(window_frame, minutes)
    engine = AlertEngine()
    uninterrupted = engine.update(whole) + engine.finish()
    first = AlertEngine()
    cut = T0 + 31 * MINUTE
    before = first.update(whole.filter(pl.col("window_start") < cut))
    restored = AlertEngine.from_state(json.loads(json.dumps(first.state())))
    after = (
        restored.update(whole.filter(pl.col("window_start") >= cut)) + restored.finish()
    )
    assert before + after == uninterrupted
    assert len(uninterrupted) == 4  # the storm and the drop, each opened and resolved


def test_builtin_rules_are_all_on_by_default() -> None:
    assert [rule.name for rule in AlertEngine().rules] == [
        "client_4xx_storm",
        "client_flood",
        "traffic_spike",
        "traffic_drop",
        "error_5xx_spike",
        "latency_regression",
        "new_user_agent",
    ]
    assert set(BUILTIN_RULES) == {rule.name for rule in AlertEngine().rules}


def test_config_overrides_disables_and_adds_rules() -> None:
    engine = AlertEngine.from_config(
        {
            "cooldown_windows": 5,
            "rules": {
                "traffic_spike": {"threshold": 9.0},
                "new_user_agent": {"enabled": False},
                "host_errors": {
                    "metric": "share_5xx",
                    "dimension": "host",
                    "detector": "ewma",
                    "params": {"alpha": 0.2},
                },
            },
        }
    )
    rules = {rule.name: rule for rule in engine.rules}
    assert "new_user_agent" not in rules
    assert rules["traffic_spike"].config.threshold == 9.0
    assert rules["traffic_spike"].config.min_ratio == 2.0  # the rest stays built-in
    assert rules["host_errors"].params == {"alpha": 0.2}
    assert engine.config.cooldown_windows == 5


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"cooldown_windows": 0}, "detect.cooldown_windows: must be >= 1, got 0"),
        (
            {"windows": 60},
            "detect.windows: unknown key (known keys: cooldown_windows, ",
        ),
        (
            {"rules": {"traffic_spike": {"threshhold": 3}}},
            "detect.rules.traffic_spike.threshhold: unknown key "
            "(known keys: critical_score, ",
        ),
        (
            {"rules": {"mine": {"metric": "speed"}}},
            "detect.rules.mine.metric: expected one of 'request_rate', ",
        ),
        (
            {"rules": {"mine": {"kind": "magic"}}},
            "detect.rules.mine.kind: unknown rule kind 'magic' "
            "(known: client_4xx_storm, ",
        ),
        (
            {"rules": {"mine": {"detector": "ewma", "params": {"alpha": 2}}}},
            "detect.rules.mine.params.alpha: must be in (0, 1], got 2.0",
        ),
        (
            {"rules": {"client_flood": {"peer_factor": -1}}},
            "detect.rules.client_flood.peer_factor: must be > 0, got -1.0",
        ),
        (
            {"rules": {"traffic_drop": {"kind": "client_flood"}}},
            "detect.rules.traffic_drop.kind: a built-in rule keeps its kind 'series'",
        ),
    ],
)
def test_bad_config_names_the_key(table: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        AlertEngine.from_config(table)
    assert str(caught.value).startswith(message)


def test_window_rows_without_needed_columns_are_refused() -> None:
    with pytest.raises(ValueError, match="window rows lack columns: window_size_s"):
        AlertEngine().update(pl.DataFrame({"requests": [1]}))
