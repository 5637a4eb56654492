"""Run the detectors over a batch run's windows and keep their alerts.

The engine is built from the ``[detect]`` table before the run reads
anything, so a bad detector setting stops the run at once. After the
windows are merged, they go through the engine in one batch; every
incident becomes one row of the store's ``alerts`` table in its final
state (keyed by the alert id, so a re-run replaces its rows), and its
events go to the outputs of the ``[alerts]`` table: a JSON lines file
(appended: a re-run appends its events again) and a webhook.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from logweir.detectors.alerts import Alert
from logweir.detectors.engine import AlertEngine
from logweir.pipeline.config import AlertSettings
from logweir.sinks.alerts import JsonLinesOutput, WebhookOutput, alerts_table

__all__ = ["alerts_table", "build_engine", "deliver", "detect_alerts"]


def build_engine(options: Mapping[str, Any]) -> AlertEngine:
    """The alert engine for the ``[detect]`` table (``enabled`` left out).

    Raises :class:`~logweir.errors.ConfigError` naming the bad key.
    """
    return AlertEngine.from_config(options)


def detect_alerts(engine: AlertEngine, windows: pl.DataFrame) -> list[Alert]:
    """Run ``engine`` over every closed window of the run; every alert event.

    An incident gives an event when it opens and one when it resolves;
    :func:`alerts_table` keeps the last state of each.
    """
    alerts = engine.update(windows)
    alerts.extend(engine.finish())
    return alerts


def deliver(alerts: list[Alert], settings: AlertSettings, out: Path) -> None:
    """Send ``alerts`` to the outputs ``settings`` names (file, webhook).

    Raises :class:`~logweir.errors.SinkError` when the file cannot be
    written; a webhook that fails is logged and skipped.
    """
    if not alerts:
        return
    if settings.jsonl is not None:
        output = JsonLinesOutput(out / settings.jsonl)
        try:
            output.write(alerts)
        finally:
            output.close()
    if settings.webhook is not None:
        WebhookOutput(
            settings.webhook,
            timeout_s=settings.webhook_timeout_s,
            retries=settings.webhook_retries,
        ).write(alerts)
