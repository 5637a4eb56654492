"""Run the detectors over a batch run's windows and keep their alerts.

The engine is built from the ``[detect]`` table before the run reads
anything, so a bad detector setting stops the run at once. After the
windows are merged, they go through the engine in one batch; every
incident becomes one row of the store's ``alerts`` table in its final
state (keyed by the alert id, so a re-run replaces its rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from logweir.detectors.engine import AlertEngine
from logweir.sinks.alerts import alerts_table


def build_engine(options: Mapping[str, Any]) -> AlertEngine:
    """The alert engine for the ``[detect]`` table (``enabled`` left out).

    Raises :class:`~logweir.errors.ConfigError` naming the bad key.
    """
    return AlertEngine.from_config(options)


def detect_alerts(engine: AlertEngine, windows: pl.DataFrame) -> pl.DataFrame:
    """Run ``engine`` over every closed window of the run.

    Returns one row per incident (the ``alerts`` table's columns), in
    order of start.
    """
    alerts = engine.update(windows)
    alerts.extend(engine.finish())
    return alerts_table(alerts)
