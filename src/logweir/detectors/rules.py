"""Rules: which series to watch, with which detector, and when to speak up.

A rule looks at each closed window (:class:`~.series.WindowView`) and
gives :class:`~.alerts.Finding` objects for what it finds anomalous. Rules
run in stages, so that later rules can use what earlier ones found in the
same window (:class:`WindowContext`): client rules first, then series
rules (which leave an alerting client's requests out of the traffic, so a
scanner is one alert, not a scanner alert plus a traffic spike), then the
user-agent rule (which folds a new agent into the alert of the client that
sent it).

:class:`SeriesRule` watches one metric (of the overall row, or of every
kept key of one dimension) with one detector. For the z-score family it
re-scores the detector's verdict against a noise floor that the window's
own volume sets: a share of ``n`` requests cannot be known better than
``sqrt(p (1 - p) / n)``, a count ``c`` no better than ``sqrt(c)``. That is
what keeps a quiet night, when a window holds twenty requests, from
raising alarms over one error more than usual.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, ClassVar

from logweir.detectors._config import build_config, config_to_dict, require
from logweir.detectors.alerts import (
    Finding,
    Severity,
    format_bytes,
    format_number,
    format_span,
)
from logweir.detectors.base import (
    DETECTORS,
    Detector,
    Direction,
    Score,
    build_detector,
    detector_from_state,
)
from logweir.detectors.seasonal import SeasonalBaseline, SeasonalConfig
from logweir.detectors.series import (
    METRIC_LABELS,
    METRICS,
    OVERALL,
    SHARE_METRICS,
    Metric,
    Row,
    WindowView,
)
from logweir.errors import ConfigError

#: Detectors whose score is a deviation in spreads, which a rule may
#: re-score against the window's own noise floor.
Z_DETECTORS = frozenset({"zscore", "robust_zscore", "ewma", "seasonal"})


@dataclass
class WindowContext:
    """What earlier rules found in the current window, for later ones.

    ``clients`` maps a client address that a client rule alerts on to the
    requests it sent; ``client_findings`` to the rule and key of that
    alert; ``agents`` maps such a client to the new user agent it used.
    """

    clients: dict[str, float] = field(default_factory=dict)
    client_findings: dict[str, tuple[str, str]] = field(default_factory=dict)
    agents: dict[str, str] = field(default_factory=dict)


class Rule(ABC):
    """A rule: a name, a config, a stage, and learned state per series."""

    #: Rules run in increasing stage within each window.
    stage: ClassVar[int]
    #: The ``kind`` a config table names to build this rule.
    kind: ClassVar[str]

    def __init__(self, name: str, config: Any) -> None:
        self.name = name
        self.config = config

    @abstractmethod
    def evaluate(self, view: WindowView, context: WindowContext) -> list[Finding]:
        """Score one window (and learn it); give what is anomalous."""

    def table(self) -> dict[str, Any]:
        """The config table that rebuilds this rule (see :func:`build_rule`)."""
        return {"kind": self.kind, **config_to_dict(self.config)}

    @abstractmethod
    def learned(self) -> dict[str, Any]:
        """What the rule has learned, JSON-ready."""

    @abstractmethod
    def load_learned(self, learned: dict[str, Any]) -> None:
        """Restore :meth:`learned`."""


# -- series rules -----------------------------------------------------------


@dataclass(frozen=True)
class SeriesRuleConfig:
    """Settings of a :class:`SeriesRule` (see ``docs/detectors.md``).

    ``threshold``, ``direction``, ``window``, ``min_history``,
    ``min_volume``, ``min_change`` and ``min_spread`` go to the detector when
    it has such a setting. ``seasonal`` adds a same-time-of-day/week
    baseline that takes over once two earlier days (weeks) exist.
    ``min_ratio`` asks the value to be at least that many times the
    baseline (``up``), or at most its inverse (``down``).
    ``min_relative_spread`` floors the spread at that share of the baseline.
    A per-dimension rule (``dimension`` other than ``"all"``) keeps state
    for at most ``max_keys`` keys, the least recently seen going first.
    """

    metric: Metric = "request_rate"
    dimension: str = OVERALL
    detector: str = "robust_zscore"
    direction: Direction = "up"
    threshold: float = 6.0
    window: int = 60
    min_history: int = 10
    seasonal: bool = False
    min_volume: float = 0.0
    min_change: float = 0.0
    min_ratio: float = 1.0
    min_spread: float = 0.0
    min_relative_spread: float = 0.0
    critical_score: float = 12.0
    max_keys: int = 200
    enabled: bool = True

    def __post_init__(self) -> None:
        require(
            self.metric in METRICS, "metric", f"must be one of {METRICS}", self.metric
        )
        require(
            self.detector in DETECTORS,
            "detector",
            f"must be one of {sorted(DETECTORS)}",
            self.detector,
        )
        require(self.threshold > 0, "threshold", "must be > 0", self.threshold)
        require(self.window >= 2, "window", "must be >= 2", self.window)
        require(
            2 <= self.min_history <= self.window,
            "min_history",
            "must be between 2 and window",
            self.min_history,
        )
        require(self.min_ratio >= 1, "min_ratio", "must be >= 1", self.min_ratio)
        for name in ("min_volume", "min_change", "min_spread", "min_relative_spread"):
            value = getattr(self, name)
            require(value >= 0, name, "must be >= 0", value)
        require(
            self.critical_score >= self.threshold,
            "critical_score",
            "must be >= threshold",
            self.critical_score,
        )
        require(self.max_keys >= 1, "max_keys", "must be >= 1", self.max_keys)


class _Watch:
    """The detectors behind one series: a primary one, maybe a seasonal one.

    Both learn every point; the seasonal verdict wins once it exists.
    """

    def __init__(
        self, primary: Detector[Any], seasonal: SeasonalBaseline | None
    ) -> None:
        self.primary = primary
        self.seasonal = seasonal

    def update(
        self, ts_us: int, value: float, volume: float | None
    ) -> tuple[Score | None, str]:
        """The verdict on a point and the name of the detector that gave it."""
        by_season = None
        if self.seasonal is not None:
            by_season = self.seasonal.update(ts_us, value, volume)
        by_history = self.primary.update(ts_us, value, volume)
        if by_season is not None:
            return by_season, self.seasonal.name  # type: ignore[union-attr]
        return by_history, self.primary.name

    def state(self) -> dict[str, Any]:
        return {
            "primary": self.primary.state(),
            "seasonal": None if self.seasonal is None else self.seasonal.state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> _Watch:
        seasonal = None
        if state["seasonal"] is not None:
            seasonal = SeasonalBaseline.from_state(state["seasonal"])
        return cls(detector_from_state(state["primary"]), seasonal)


class SeriesRule(Rule):
    """One metric, one detector, per overall row or per key of a dimension."""

    stage = 2
    kind = "series"
    config: SeriesRuleConfig

    def __init__(
        self, name: str, config: SeriesRuleConfig, params: dict[str, Any] | None = None
    ) -> None:
        super().__init__(name, config)
        self.params = dict(params or {})
        self._watches: OrderedDict[str, _Watch] = OrderedDict()
        self._size_s: int | None = None
        self._new_watch(60)  # fail now, not at the first window, on a bad config

    def table(self) -> dict[str, Any]:
        table = super().table()
        if self.params:
            table["params"] = dict(self.params)
        return table

    # -- building detectors ----------------------------------------------

    def _new_watch(self, size_s: int) -> _Watch:
        config = self.config
        where = f"detect.rules.{self.name}"
        shared = {
            "threshold": config.threshold,
            "direction": config.direction,
            "window": config.window,
            "min_history": config.min_history,
            "min_volume": config.min_volume,
            "min_change": config.min_change,
            "min_spread": config.min_spread,
        }
        accepted = {
            f.name for f in dataclasses.fields(DETECTORS[config.detector].config_type)
        }
        table = {k: v for k, v in shared.items() if k in accepted} | self.params
        primary = build_detector(config.detector, table, f"{where}.params")
        seasonal = None
        if config.seasonal:
            seasonal = SeasonalBaseline(
                SeasonalConfig(
                    threshold=config.threshold,
                    direction=config.direction,
                    min_volume=config.min_volume,
                    min_change=config.min_change,
                    min_spread=config.min_spread,
                    bucket_s=_season_bucket(size_s),
                )
            )
        return _Watch(primary, seasonal)

    def _watch(self, key: str, size_s: int) -> _Watch:
        watch = self._watches.get(key)
        if watch is None:
            watch = self._new_watch(size_s)
            self._watches[key] = watch
            if len(self._watches) > self.config.max_keys:
                self._watches.popitem(last=False)
        else:
            self._watches.move_to_end(key)
        return watch

    # -- evaluating --------------------------------------------------------

    def evaluate(self, view: WindowView, context: WindowContext) -> list[Finding]:
        config = self.config
        if self._size_s is None:
            self._size_s = view.size_s
        if config.dimension == OVERALL:
            rows: list[tuple[str, Row]] = [("", view.overall)]
        else:
            rows = sorted(view.dimensions.get(config.dimension, {}).items())
        findings = []
        for key, row in rows:
            finding = self._evaluate_row(view, context, key, row)
            if finding is not None:
                findings.append(finding)
        return findings

    def _evaluate_row(
        self, view: WindowView, context: WindowContext, key: str, row: Row
    ) -> Finding | None:
        config = self.config
        row, excluded = self._attributed(row, key, context)
        value = row.metric(config.metric, view.size_s)
        if value is None or not math.isfinite(value):
            return None
        volume = row.requests if config.metric in SHARE_METRICS | {"p95_ms"} else None
        watch = self._watch(key, view.size_s)
        score, detector = watch.update(view.start_us, value, volume)
        if score is None:
            return None
        spread, z = self._rescore(score, row, view.size_s, detector)
        if not self._alarming(score, z):
            return None
        severity: Severity = (
            "critical" if abs(z) >= config.critical_score else "warning"
        )
        return Finding(
            rule=self.name,
            key=key,
            series=self._series_name(key),
            detector=detector,
            value=value,
            baseline=score.baseline,
            spread=spread,
            score=z,
            severity=severity,
            summary=self._summary(view, key, value, score.baseline, spread, excluded),
            detail={"dimension": config.dimension, "key": key} if key else {},
        )

    def _attributed(
        self, row: Row, key: str, context: WindowContext
    ) -> tuple[Row, list[str]]:
        """The overall row without the requests of clients already alerted on."""
        config = self.config
        counted = config.metric in ("request_rate", "requests")
        if not (counted and config.dimension == OVERALL and context.clients):
            return row, []
        excluded = sorted(context.clients)
        remaining = max(row.requests - sum(context.clients.values()), 0.0)
        return dataclasses.replace(row, requests=remaining), excluded

    def _rescore(
        self, score: Score, row: Row, size_s: int, detector: str
    ) -> tuple[float, float]:
        """The spread with the noise floors, and the score against it."""
        config = self.config
        if detector not in Z_DETECTORS:
            return score.spread, score.score
        floors = [
            score.spread,
            config.min_spread,
            config.min_relative_spread * abs(score.baseline),
        ]
        noise = 0.0
        if config.metric in SHARE_METRICS and row.requests > 0:
            share = min(max(score.baseline, 1.0 / max(row.requests, 1.0)), 1.0)
            noise = math.sqrt(share * (1.0 - share) / row.requests)
        elif config.metric in ("request_rate", "requests"):
            per = size_s if config.metric == "request_rate" else 1
            noise = math.sqrt(max(score.baseline * per, 1.0)) / per
        spread = math.hypot(max(floors), noise)
        if spread <= 0:
            return 0.0, score.score
        return spread, (score.value - score.baseline) / spread

    def _alarming(self, score: Score, z: float) -> bool:
        config = self.config
        value, baseline = score.value, score.baseline
        if abs(value - baseline) < config.min_change:
            return False
        up = z >= config.threshold and value >= config.min_ratio * baseline
        down = z <= -config.threshold and value * config.min_ratio <= baseline
        if config.direction == "up":
            return up
        if config.direction == "down":
            return down
        return up or down

    def _series_name(self, key: str) -> str:
        config = self.config
        if config.dimension == OVERALL:
            return config.metric
        return f"{config.metric}[{config.dimension}={key}]"

    def _summary(
        self,
        view: WindowView,
        key: str,
        value: float,
        baseline: float,
        spread: float,
        excluded: list[str],
    ) -> str:
        metric = self.config.metric
        label = METRIC_LABELS[metric]
        if key:
            label = f"{label} of {self.config.dimension} {key}"
        text = (
            f"{label} {format_value(metric, value)}"
            f" in {format_span(view.start, view.end)}"
            f" against a usual {format_value(metric, baseline)}"
            f" ± {format_spread(metric, spread)}"
        )
        if excluded:
            text += f" (not counting client {', '.join(excluded)})"
        return text

    # -- state -------------------------------------------------------------

    def learned(self) -> dict[str, Any]:
        return {
            "size_s": self._size_s,
            "watches": [[key, watch.state()] for key, watch in self._watches.items()],
        }

    def load_learned(self, learned: dict[str, Any]) -> None:
        self._size_s = learned["size_s"]
        self._watches = OrderedDict(
            (key, _Watch.from_state(state)) for key, state in learned["watches"]
        )


def _season_bucket(size_s: int) -> int:
    """The seasonal bucket for windows of ``size_s``: the window, if it fits."""
    return size_s if size_s > 0 and 86_400 % size_s == 0 else 60


def format_value(metric: Metric, value: float) -> str:
    """A metric value with its unit, as alert lines write it."""
    if metric in SHARE_METRICS:
        return f"{value * 100:.1f} %"
    if metric == "request_rate":
        return f"{format_number(value)} req/s"
    if metric == "byte_rate":
        return f"{format_bytes(value)}/s"
    if metric == "p95_ms":
        return f"{format_number(value)} ms"
    return format_number(value)


def format_spread(metric: Metric, spread: float) -> str:
    """A spread in the metric's unit, without the unit (percentage points)."""
    if metric in SHARE_METRICS:
        return f"{spread * 100:.1f}"
    if metric == "byte_rate":
        return format_bytes(spread)
    return format_number(spread)


# -- building rules from config ---------------------------------------------

RULE_KINDS: dict[str, type[Rule]] = {"series": SeriesRule}


def register_rule_kind(cls: type[Rule]) -> type[Rule]:
    RULE_KINDS[cls.kind] = cls
    return cls


def build_rule(
    name: str, table: dict[str, Any], defaults: dict[str, Any] | None = None
) -> Rule:
    """A rule from its config table, on top of ``defaults`` (a built-in's).

    ``kind`` picks the rule class (``series`` unless a built-in says
    otherwise); a ``series`` rule takes a ``params`` table of extra detector
    settings. Errors name ``detect.rules.<name>.<key>``.
    """
    where = f"detect.rules.{name}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table, got {type(table).__name__}")
    merged = {**(defaults or {}), **table}
    kind = merged.pop("kind", "series")
    if kind not in RULE_KINDS:
        known = ", ".join(sorted(RULE_KINDS))
        raise ConfigError(f"{where}.kind: unknown rule kind {kind!r} (known: {known})")
    if (
        defaults is not None
        and "kind" in table
        and table["kind"] != defaults.get("kind")
    ):
        raise ConfigError(
            f"{where}.kind: a built-in rule keeps its kind {defaults['kind']!r}"
        )
    cls = RULE_KINDS[kind]
    if cls is SeriesRule:
        params = merged.pop("params", {})
        if not isinstance(params, dict):
            raise ConfigError(f"{where}.params: expected a table")
        config = build_config(SeriesRuleConfig, merged, where)
        return SeriesRule(name, config, params)
    return cls(name, build_config(cls.config_type, merged, where))  # type: ignore[attr-defined]
