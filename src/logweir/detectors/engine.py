"""The alert engine: closed windows in, alerts out, for ``logweir run``.

>>> engine = AlertEngine.from_config({"rules": {"traffic_drop": {"threshold": 8}}})
>>> alerts = engine.update(closed_windows)   # doctest: +SKIP
>>> alerts += engine.finish()                # doctest: +SKIP

*When* things happen: :meth:`AlertEngine.update` takes any batch of closed
window rows (several window sizes, any dimensions, in any order). It
watches one window family, the shortest tumbling one unless ``window_s``
says otherwise, chosen at the first batch that has one and kept.

Windows are judged in time order, each once, and a window is judged only
when a later one has arrived: the newest window is held back, because the
input may have ended inside it, and a window cut short by the end of a log
looks exactly like traffic falling away. So an alert comes one window
after the window that shows it (its ``start`` is still that window's).
A held window that comes again (re-emitted after late data) replaces the
held one; a window at or before the last one judged is skipped. A window
that never came between two that did held no events and counts as an
empty window, so that traffic falling to nothing is seen; gaps longer than
``max_gap_windows`` are not filled (the input stopped, rather than the
traffic). :meth:`AlertEngine.finish` resolves the incidents still open and
leaves the held window unjudged.

Known shortcoming: an incident that starts in the very last window of an
input is not reported, since that window cannot be told from a cut one.

:meth:`AlertEngine.state` snapshots the configuration, every rule's
learned history and the open incidents as JSON-ready data;
:meth:`AlertEngine.from_state` continues from it exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import polars as pl

import logweir.detectors.client_rules  # noqa: F401  (registers the client rule kinds)
from logweir.detectors._config import build_config, config_to_dict, require
from logweir.detectors.alerts import Alert, Finding, IncidentTracker
from logweir.detectors.rules import Rule, WindowContext, build_rule
from logweir.detectors.series import (
    WindowView,
    check_window_frame,
    choose_window_size,
    window_views,
)
from logweir.errors import ConfigError
from logweir.schema import WINDOW_SCHEMA

logger = logging.getLogger(__name__)

#: The rules on by default, with their settings (see ``docs/detectors.md``).
BUILTIN_RULES: dict[str, dict[str, Any]] = {
    "traffic_spike": {
        "kind": "series",
        "metric": "request_rate",
        "direction": "up",
        "seasonal": True,
        "threshold": 6.0,
        "min_ratio": 2.0,
        "min_change": 0.5,
    },
    "traffic_drop": {
        "kind": "series",
        "metric": "request_rate",
        "direction": "down",
        "seasonal": True,
        "threshold": 6.0,
        "min_ratio": 2.0,
        "min_change": 0.5,
    },
    "error_5xx_spike": {
        "kind": "series",
        "metric": "share_5xx",
        "direction": "up",
        "threshold": 6.0,
        "min_volume": 20.0,
        "min_change": 0.02,
        "min_ratio": 2.0,
    },
    "latency_regression": {
        "kind": "series",
        "metric": "p95_ms",
        "direction": "up",
        # A p95 over a hundred or two requests moves a lot by chance.
        "threshold": 8.0,
        "min_volume": 100.0,
        "min_change": 20.0,
        "min_ratio": 1.5,
        "min_relative_spread": 0.05,
    },
    "client_flood": {"kind": "client_flood"},
    "client_4xx_storm": {"kind": "client_4xx_storm"},
    "new_user_agent": {"kind": "new_user_agent"},
}


@dataclass(frozen=True)
class EngineConfig:
    """Settings of the engine itself (the ``[detect]`` table, less ``rules``).

    ``enabled`` is read by the pipeline (``--no-detect`` overrides it).
    ``top_k`` and ``min_key_requests`` bound the per-dimension series: only
    keys with at least that many requests in a window, busiest first.
    """

    enabled: bool = True
    window_s: int | None = None
    cooldown_windows: int = 3
    max_gap_windows: int = 1440
    top_k: int = 20
    min_key_requests: float = 1.0

    def __post_init__(self) -> None:
        if self.window_s is not None:
            require(self.window_s > 0, "window_s", "must be > 0", self.window_s)
        require(
            self.cooldown_windows >= 1,
            "cooldown_windows",
            "must be >= 1",
            self.cooldown_windows,
        )
        require(
            self.max_gap_windows >= 0,
            "max_gap_windows",
            "must be >= 0",
            self.max_gap_windows,
        )
        require(self.top_k >= 1, "top_k", "must be >= 1", self.top_k)
        require(
            self.min_key_requests >= 0,
            "min_key_requests",
            "must be >= 0",
            self.min_key_requests,
        )


def build_rules(tables: Mapping[str, Any] | None = None) -> list[Rule]:
    """The built-in rules, changed and extended by ``[detect.rules.*]`` tables.

    A table named after a built-in rule overrides its settings
    (``enabled = false`` turns it off); any other name adds a rule, whose
    ``kind`` defaults to ``series``.
    """
    tables = dict(tables or {})
    rules = []
    for name in [*BUILTIN_RULES, *(n for n in tables if n not in BUILTIN_RULES)]:
        rule = build_rule(name, tables.get(name, {}), BUILTIN_RULES.get(name))
        if rule.config.enabled:
            rules.append(rule)
    return rules


class AlertEngine:
    """Runs the rules over closed windows and folds findings into alerts."""

    def __init__(
        self, rules: Sequence[Rule] | None = None, config: EngineConfig | None = None
    ) -> None:
        self.config = config or EngineConfig()
        self.rules = sorted(
            build_rules() if rules is None else rules, key=lambda r: r.stage
        )
        names = [rule.name for rule in self.rules]
        if len(set(names)) != len(names):
            raise ConfigError(f"detect.rules: rule names repeat: {names}")
        self._tracker = IncidentTracker(self.config.cooldown_windows)
        self._size_s: int | None = self.config.window_s
        self._last_start: datetime | None = None
        #: rows of the newest window, not judged yet (see the module docstring)
        self._held: pl.DataFrame | None = None

    @classmethod
    def from_config(cls, table: Mapping[str, Any] | None = None) -> AlertEngine:
        """An engine from the ``[detect]`` table; errors name the bad key."""
        settings = dict(table or {})
        rules_table = settings.pop("rules", {})
        if not isinstance(rules_table, Mapping):
            raise ConfigError("detect.rules: expected a table of rules")
        return cls(
            build_rules(rules_table), build_config(EngineConfig, settings, "detect")
        )

    @property
    def window_s(self) -> int | None:
        """The window size watched, once known."""
        return self._size_s

    def update(self, closed_windows: pl.DataFrame) -> list[Alert]:
        """Judge the windows of a batch of closed window rows, in time order."""
        if closed_windows.is_empty():
            return []
        check_window_frame(closed_windows)
        if self._size_s is None:
            self._size_s = choose_window_size(closed_windows)
            if self._size_s is None:
                return []
            logger.info("detecting on %d s windows", self._size_s)
        rows = self._pending(closed_windows, self._size_s)
        if rows.is_empty():
            return []
        newest = rows.get_column("window_start").max()
        self._held = rows.filter(pl.col("window_start") == newest)
        alerts: list[Alert] = []
        views = window_views(
            rows.filter(pl.col("window_start") < newest),
            self._size_s,
            min_requests=self.config.min_key_requests,
            top_k=self.config.top_k,
        )
        for view in views:
            for gap in self._gap_before(view):
                alerts.extend(self._process(gap))
            alerts.extend(self._process(view))
        return alerts

    def _pending(self, frame: pl.DataFrame, size_s: int) -> pl.DataFrame:
        """Rows of windows not judged yet: the held window and the new ones.

        A new copy of the held window replaces it; windows at or before the
        last one judged are dropped.
        """
        rows = frame.filter(
            (pl.col("window_size_s") == size_s) & (pl.col("window_step_s") == size_s)
        ).select(list(WINDOW_SCHEMA))
        if self._last_start is not None:
            late = rows.filter(pl.col("window_start") <= self._last_start)
            if not late.is_empty():
                logger.debug("%d rows of windows already judged; skipped", late.height)
            rows = rows.filter(pl.col("window_start") > self._last_start)
        if self._held is not None:
            held_start = self._held.get_column("window_start")[0]
            if not (rows.get_column("window_start") == held_start).any():
                rows = pl.concat([self._held, rows])
        return rows

    def finish(self) -> list[Alert]:
        """Resolve every open incident: the input has ended.

        The held window is not judged: the input may have ended inside it.
        """
        if self._held is not None:
            start = self._held.get_column("window_start")[0]
            logger.info(
                "last window (%s) not judged: the input may end inside it", start
            )
            self._held = None
        return self._tracker.finish()

    def _gap_before(self, view: WindowView) -> list[WindowView]:
        if self._last_start is None:
            return []
        step = timedelta(seconds=view.size_s)
        missing = int((view.start - self._last_start) / step) - 1
        if missing <= 0:
            return []
        if missing > self.config.max_gap_windows:
            logger.info("%d windows missing before %s: not filled", missing, view.start)
            return []
        starts = [self._last_start + step * (i + 1) for i in range(missing)]
        return [WindowView.empty(start, start + step, view.size_s) for start in starts]

    def _process(self, view: WindowView) -> list[Alert]:
        context = WindowContext()
        findings: list[Finding] = []
        for rule in self.rules:
            findings.extend(rule.evaluate(view, context))
        if context.agents:
            findings = [_with_agent(finding, context) for finding in findings]
        self._last_start = view.start
        return self._tracker.observe(view.start, view.end, findings)

    # -- state -------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Configuration, learned history and open incidents, JSON-ready."""
        return {
            "version": 1,
            "config": config_to_dict(self.config),
            "window_s": self._size_s,
            "last_start": None
            if self._last_start is None
            else self._last_start.isoformat(),
            "rules": [
                {"name": rule.name, "table": rule.table(), "learned": rule.learned()}
                for rule in self.rules
            ],
            "incidents": self._tracker.state(),
            "held": None if self._held is None else _rows_to_state(self._held),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> AlertEngine:
        """Continue from :meth:`state` as if never stopped."""
        if state.get("version") != 1:
            raise ConfigError(
                f"unsupported detector state version {state.get('version')!r}"
            )
        rules = []
        for entry in state["rules"]:
            rule = build_rule(entry["name"], entry["table"])
            rule.load_learned(entry["learned"])
            rules.append(rule)
        engine = cls(rules, build_config(EngineConfig, state["config"], "detect"))
        engine._size_s = state["window_s"]
        last = state["last_start"]
        engine._last_start = None if last is None else datetime.fromisoformat(last)
        engine._tracker = IncidentTracker.from_state(state["incidents"])
        held = state.get("held")
        engine._held = None if held is None else _rows_from_state(held)
        return engine


def _with_agent(finding: Finding, context: WindowContext) -> Finding:
    agent = context.agents.get(finding.key)
    if agent is None or context.client_findings.get(finding.key) != (
        finding.rule,
        finding.key,
    ):
        return finding
    summary = f"{finding.summary}, as user agent {agent!r}"
    return replace(
        finding, summary=summary, detail={**finding.detail, "user_agent": agent}
    )


def _rows_to_state(rows: pl.DataFrame) -> list[dict[str, Any]]:
    """Window rows as JSON-ready dicts (datetimes as ISO text)."""
    return [
        {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
        for row in rows.iter_rows(named=True)
    ]


def _rows_from_state(rows: list[dict[str, Any]]) -> pl.DataFrame:
    times = ("window_start", "window_end")
    parsed = [
        {k: (datetime.fromisoformat(v) if k in times else v) for k, v in row.items()}
        for row in rows
    ]
    return pl.DataFrame(parsed, schema=WINDOW_SCHEMA)
