"""Rules about single clients and user agents, read from the top lists.

The windows stage keeps, per window, the busiest clients overall
(``top_clients`` of the overall row), the clients that drew the most
responses of each status class (``top_clients`` of each ``status_class``
row) and the busiest user agents (``top_user_agents``). When windows are
also broken down by ``client_ip``, its rows give exact per-client counts
and are used instead. Three rules read them:

``client_flood`` (:class:`ClientFloodRule`)
    One client sends far more than its peers (``peer_factor`` × the average
    other client), a far larger share of the traffic than it usually does
    (``surge_factor`` × its median share over the last ``history`` windows
    it appeared in; a client never seen before has no usual share), and at
    least ``min_rate`` requests per second. Judging the share, not the
    count, keeps a busy client quiet when all traffic rises together.
``client_4xx_storm`` (:class:`ErrorStormRule`)
    The window's 4xx responses jump to ``surge_factor`` × their median and
    one client drew at least ``min_share`` of them, at least ``min_rate``
    per second: a scanner walking a word list, or a brute force against a
    login. Such a client is not reported again as a flood.
``new_user_agent`` (:class:`NewUserAgentRule`)
    A user agent not among those seen in earlier windows' top lists sends at
    least ``min_share`` of the window's requests and ``min_rate`` per
    second. An agent stays "new" for ``fresh_windows`` windows after it is
    first seen. When a client alerted on in the same window sent about as
    many requests as the agent, the agent is written into that client's
    alert instead of raising its own.

Known shortcoming: the windows only count status *classes*, so the storm
rule speaks of 4xx responses, not of 404s alone.
"""

from __future__ import annotations

import statistics
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from logweir.detectors._config import require
from logweir.detectors.alerts import Finding, Severity, format_number, format_span
from logweir.detectors.rules import Rule, WindowContext, register_rule_kind
from logweir.detectors.series import TopEntry, WindowView

#: An agent's requests match a client's when within this ratio of them.
_SAME_TRAFFIC = 0.3


@dataclass(frozen=True)
class ClientFloodConfig:
    """Settings of :class:`ClientFloodRule`."""

    min_rate: float = 2.0
    peer_factor: float = 20.0
    surge_factor: float = 3.0
    history: int = 15
    min_history: int = 5
    max_keys: int = 1000
    critical_factor: float = 200.0
    enabled: bool = True

    def __post_init__(self) -> None:
        _positive(self, "min_rate", "peer_factor", "surge_factor", "critical_factor")
        _at_least_one(self, "history", "min_history", "max_keys")


@dataclass(frozen=True)
class ErrorStormConfig:
    """Settings of :class:`ErrorStormRule`."""

    min_rate: float = 1.0
    min_share: float = 0.5
    surge_factor: float = 3.0
    history: int = 30
    min_history: int = 5
    critical_factor: float = 30.0
    enabled: bool = True

    def __post_init__(self) -> None:
        _positive(self, "min_rate", "surge_factor", "critical_factor")
        require(
            0 < self.min_share <= 1, "min_share", "must be in (0, 1]", self.min_share
        )
        _at_least_one(self, "history", "min_history")


@dataclass(frozen=True)
class NewUserAgentConfig:
    """Settings of :class:`NewUserAgentRule`."""

    min_rate: float = 1.0
    min_share: float = 0.1
    min_history: int = 10
    fresh_windows: int = 60
    memory: int = 2000
    enabled: bool = True

    def __post_init__(self) -> None:
        _positive(self, "min_rate")
        require(
            0 < self.min_share <= 1, "min_share", "must be in (0, 1]", self.min_share
        )
        _at_least_one(self, "min_history", "fresh_windows", "memory")


def _positive(config: object, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        require(value > 0, name, "must be > 0", value)


def _at_least_one(config: object, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        require(value >= 1, name, "must be >= 1", value)


@dataclass(frozen=True)
class _Client:
    ip: str
    requests: float
    errors_4xx: float | None


def _clients(view: WindowView) -> list[_Client]:
    """Per-client counts: exact ``client_ip`` rows if kept, else the top list."""
    rows = view.dimensions.get("client_ip")
    if rows:
        return [_Client(ip, row.requests, row.status_4xx) for ip, row in rows.items()]
    return [
        _Client(entry.key, float(entry.count), None)
        for entry in view.top("top_clients")
    ]


def _clients_4xx(view: WindowView) -> list[TopEntry]:
    rows = view.dimensions.get("client_ip")
    if rows:
        counted = [
            TopEntry(ip, int(row.status_4xx))
            for ip, row in rows.items()
            if row.status_4xx
        ]
        return sorted(counted, key=lambda entry: (-entry.count, entry.key))
    return list(view.status_tops.get("4xx", ()))


def _median(values: deque[float] | list[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


@register_rule_kind
class ErrorStormRule(Rule):
    """One client drawing most of a surge of 4xx responses."""

    stage = 0
    kind = "client_4xx_storm"
    config_type = ErrorStormConfig
    config: ErrorStormConfig

    def __init__(self, name: str, config: ErrorStormConfig) -> None:
        super().__init__(name, config)
        self._totals: deque[float] = deque(maxlen=config.history)

    def evaluate(self, view: WindowView, context: WindowContext) -> list[Finding]:
        config = self.config
        total = view.overall.status_4xx or 0.0
        usual = _median(self._totals)
        ready = len(self._totals) >= config.min_history
        self._totals.append(total)
        if not ready or total < config.surge_factor * max(usual, 1.0):
            return []
        findings = []
        for entry in _clients_4xx(view):
            if entry.count < config.min_rate * view.size_s:
                break
            if entry.count < config.min_share * total:
                continue
            findings.append(self._finding(view, context, entry, total, usual))
        return findings

    def _finding(
        self,
        view: WindowView,
        context: WindowContext,
        entry: TopEntry,
        total: float,
        usual: float,
    ) -> Finding:
        ratio = entry.count / max(usual, 1.0)
        severity: Severity = (
            "critical" if ratio >= self.config.critical_factor else "warning"
        )
        sent = next(
            (c.requests for c in _clients(view) if c.ip == entry.key),
            float(entry.count),
        )
        context.clients[entry.key] = sent
        context.client_findings[entry.key] = (self.name, entry.key)
        share = 100.0 * entry.count / total
        return Finding(
            rule=self.name,
            key=entry.key,
            series=f"status_4xx[client_ip={entry.key}]",
            detector="top_list",
            value=float(entry.count),
            baseline=usual,
            spread=0.0,
            score=ratio,
            severity=severity,
            summary=(
                f"client {entry.key} drew {format_number(entry.count)} 4xx responses"
                f" in "
                f"{format_span(view.start, view.end)} ({share:.0f} % of all 4xx) "
                f"against a usual {format_number(usual)} 4xx per window from everyone"
            ),
            detail={"client_ip": entry.key, "requests": sent},
        )

    def learned(self) -> dict[str, Any]:
        return {"totals": list(self._totals)}

    def load_learned(self, learned: dict[str, Any]) -> None:
        self._totals.extend(float(v) for v in learned["totals"])


@register_rule_kind
class ClientFloodRule(Rule):
    """One client far above its peers and its own usual."""

    stage = 1
    kind = "client_flood"
    config_type = ClientFloodConfig
    config: ClientFloodConfig

    def __init__(self, name: str, config: ClientFloodConfig) -> None:
        super().__init__(name, config)
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._windows = 0

    def evaluate(self, view: WindowView, context: WindowContext) -> list[Finding]:
        config = self.config
        clients = _clients(view)
        ready = self._windows >= config.min_history
        self._windows += 1
        findings = []
        total = max(view.overall.requests, 1.0)
        for client in clients:
            share = client.requests / total
            usual = _median(self._seen.get(client.ip, []))
            self._remember(client.ip, share)
            if not ready or client.ip in context.clients:
                continue
            if client.requests < config.min_rate * view.size_s:
                continue
            peers = self._peer_mean(view, client)
            if client.requests < config.peer_factor * peers:
                continue
            if share < config.surge_factor * usual:
                continue
            findings.append(self._finding(view, context, client, peers))
        return findings

    def _peer_mean(self, view: WindowView, client: _Client) -> float:
        """Requests of the average other client in the window (at least 1)."""
        others = view.overall.requests - client.requests
        count = view.overall.unique_clients
        if count is None or count <= 1:
            count = max(len(view.top("top_clients")), 2)
        return max(others / (count - 1), 1.0)

    def _remember(self, ip: str, share: float) -> None:
        history = self._seen.get(ip)
        if history is None:
            history = deque(maxlen=self.config.history)
            self._seen[ip] = history
            if len(self._seen) > self.config.max_keys:
                self._seen.popitem(last=False)
        else:
            self._seen.move_to_end(ip)
        history.append(share)

    def _finding(
        self, view: WindowView, context: WindowContext, client: _Client, peers: float
    ) -> Finding:
        ratio = client.requests / peers
        severity: Severity = (
            "critical" if ratio >= self.config.critical_factor else "warning"
        )
        context.clients[client.ip] = client.requests
        context.client_findings[client.ip] = (self.name, client.ip)
        rate = client.requests / view.size_s
        return Finding(
            rule=self.name,
            key=client.ip,
            series=f"requests[client_ip={client.ip}]",
            detector="peers",
            value=client.requests,
            baseline=peers,
            spread=0.0,
            score=ratio,
            severity=severity,
            summary=(
                f"client {client.ip} sent {format_number(client.requests)} requests in "
                f"{format_span(view.start, view.end)} ({format_number(rate)} req/s) "
                f"against {format_number(peers)} from a usual client"
            ),
            detail={"client_ip": client.ip, "requests": client.requests},
        )

    def learned(self) -> dict[str, Any]:
        return {
            "windows": self._windows,
            "seen": [[ip, list(history)] for ip, history in self._seen.items()],
        }

    def load_learned(self, learned: dict[str, Any]) -> None:
        self._windows = int(learned["windows"])
        for ip, history in learned["seen"]:
            self._seen[ip] = deque(
                (float(v) for v in history), maxlen=self.config.history
            )


@register_rule_kind
class NewUserAgentRule(Rule):
    """A user agent not seen before that suddenly carries much of the traffic."""

    stage = 3
    kind = "new_user_agent"
    config_type = NewUserAgentConfig
    config: NewUserAgentConfig

    def __init__(self, name: str, config: NewUserAgentConfig) -> None:
        super().__init__(name, config)
        #: agent -> window number it was first seen in; least recently seen first
        self._known: OrderedDict[str, int] = OrderedDict()
        self._windows = 0

    def evaluate(self, view: WindowView, context: WindowContext) -> list[Finding]:
        config = self.config
        number = self._windows
        self._windows += 1
        findings = []
        requests = view.overall.requests
        for entry in view.top("top_user_agents"):
            first = self._known.get(entry.key)
            new = first is None or (
                first >= config.min_history and number - first < config.fresh_windows
            )
            self._remember(entry.key, number)
            if number < config.min_history or not new:
                continue
            if entry.count < config.min_rate * view.size_s:
                continue
            if entry.count < config.min_share * requests:
                continue
            owner = _owner(entry, context)
            if owner is not None:
                context.agents[owner] = entry.key
                continue
            findings.append(self._finding(view, entry, requests))
        return findings

    def _remember(self, agent: str, number: int) -> None:
        if agent in self._known:
            self._known.move_to_end(agent)
            return
        self._known[agent] = number
        if len(self._known) > self.config.memory:
            self._known.popitem(last=False)

    def _finding(self, view: WindowView, entry: TopEntry, requests: float) -> Finding:
        share = entry.count / requests if requests else 1.0
        return Finding(
            rule=self.name,
            key=entry.key,
            series=f"requests[user_agent={entry.key}]",
            detector="first_seen",
            value=float(entry.count),
            baseline=0.0,
            spread=0.0,
            score=share,
            severity="warning",
            summary=(
                f"new user agent {entry.key!r} sent {format_number(entry.count)}"
                " requests "
                f"in {format_span(view.start, view.end)} ({100 * share:.0f} % of all), "
                f"not seen in the top agents before"
            ),
            detail={"user_agent": entry.key},
        )

    def learned(self) -> dict[str, Any]:
        return {
            "windows": self._windows,
            "known": [[a, n] for a, n in self._known.items()],
        }

    def load_learned(self, learned: dict[str, Any]) -> None:
        self._windows = int(learned["windows"])
        self._known = OrderedDict((str(a), int(n)) for a, n in learned["known"])


def _owner(entry: TopEntry, context: WindowContext) -> str | None:
    """The alerting client whose requests match this agent's, if any."""
    for ip, sent in context.clients.items():
        if sent > 0 and abs(entry.count - sent) <= _SAME_TRAFFIC * max(
            entry.count, sent
        ):
            return ip
    return None
