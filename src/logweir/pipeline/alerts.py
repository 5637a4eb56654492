"""Run the detectors over a batch run's windows and keep their alerts.

The engine is built from the ``[detect]`` table before the run reads
anything, so a bad detector setting stops the run at once. After the
windows are merged, they go through the engine in one batch; every
incident becomes one row of the store's ``alerts`` table (keyed by the
alert id, so a re-run replaces its rows), in its final state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import polars as pl

from logweir.detectors.alerts import Alert
from logweir.detectors.engine import AlertEngine
from logweir.schema import TS_TYPE

#: The store's ``alerts`` table; ``detail`` is JSON text.
ALERT_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "status": pl.String(),
    "rule": pl.String(),
    "series": pl.String(),
    "key": pl.String(),
    "detector": pl.String(),
    "severity": pl.String(),
    "start": TS_TYPE,
    "end": TS_TYPE,
    "window_start": TS_TYPE,
    "window_end": TS_TYPE,
    "value": pl.Float64(),
    "baseline": pl.Float64(),
    "spread": pl.Float64(),
    "score": pl.Float64(),
    "windows": pl.Int64(),
    "message": pl.String(),
    "detail": pl.String(),
}


def build_engine(options: Mapping[str, Any]) -> AlertEngine:
    """The alert engine for the ``[detect]`` table (``enabled`` left out).

    Raises :class:`~logweir.errors.ConfigError` naming the bad key.
    """
    return AlertEngine.from_config(options)


def _row(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "status": alert.status,
        "rule": alert.rule,
        "series": alert.series,
        "key": alert.key,
        "detector": alert.detector,
        "severity": alert.severity,
        "start": alert.start,
        "end": alert.end,
        "window_start": alert.window_start,
        "window_end": alert.window_end,
        "value": alert.value,
        "baseline": alert.baseline,
        "spread": alert.spread,
        "score": alert.score,
        "windows": alert.windows,
        "message": alert.message,
        "detail": json.dumps(alert.detail, sort_keys=True, default=str),
    }


def alerts_frame(alerts: list[Alert]) -> pl.DataFrame:
    """One row per incident, its last state, in order of start."""
    latest: dict[str, Alert] = {}
    for alert in alerts:
        latest[alert.id] = alert
    rows = [_row(alert) for alert in latest.values()]
    frame = pl.DataFrame(rows, schema=ALERT_SCHEMA)
    return frame.sort("start", "id")


def detect_alerts(engine: AlertEngine, windows: pl.DataFrame) -> pl.DataFrame:
    """Run ``engine`` over every closed window of the run; the alerts frame."""
    alerts = engine.update(windows)
    alerts.extend(engine.finish())
    return alerts_frame(alerts)
