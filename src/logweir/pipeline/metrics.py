"""The pipeline's own health as Prometheus metrics (prometheus_client).

Every metric lives in :data:`REGISTRY`, not the library's global one, so
that tests and several pipelines in one process can read and reset them
(:func:`new_registry`). The streaming pipeline updates them as it goes;
``logweir serve`` and ``--serve`` expose them at ``/metrics``.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Batch and write latencies span 100 µs to a minute.
_SECONDS_BUCKETS = (
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


@dataclass
class PipelineMetrics:
    """The metric objects; see :func:`new_registry`."""

    registry: CollectorRegistry
    lines_read: Counter
    lines_parsed: Counter
    lines_rejected: Counter
    bytes_read: Counter
    events_late: Counter
    batch_seconds: Histogram
    write_seconds: Histogram
    event_latency_seconds: Histogram
    watermark_lag_seconds: Gauge
    checkpoint_age_seconds: Gauge
    queue_depth: Gauge
    alerts_fired: Counter


def new_registry() -> PipelineMetrics:
    """A fresh registry holding every pipeline metric at zero."""
    registry = CollectorRegistry()
    return PipelineMetrics(
        registry=registry,
        lines_read=Counter(
            "logweir_lines_read",
            "Lines read from sources.",
            ["source"],
            registry=registry,
        ),
        lines_parsed=Counter(
            "logweir_lines_parsed",
            "Lines parsed into events.",
            ["source"],
            registry=registry,
        ),
        lines_rejected=Counter(
            "logweir_lines_rejected",
            "Lines rejected by the parser, by reason.",
            ["source", "reason"],
            registry=registry,
        ),
        bytes_read=Counter(
            "logweir_bytes_read",
            "Bytes read from sources.",
            ["source"],
            registry=registry,
        ),
        events_late=Counter(
            "logweir_events_late",
            "Events for windows already emitted, sent to the late output.",
            registry=registry,
        ),
        batch_seconds=Histogram(
            "logweir_batch_seconds",
            "Time to parse and aggregate one batch.",
            buckets=_SECONDS_BUCKETS,
            registry=registry,
        ),
        write_seconds=Histogram(
            "logweir_write_seconds",
            "Time for one sink commit, by sink.",
            ["sink"],
            buckets=_SECONDS_BUCKETS,
            registry=registry,
        ),
        event_latency_seconds=Histogram(
            "logweir_event_latency_seconds",
            "Wall time from an event's timestamp to its window being readable "
            "in the store (meaningful when logs are written as they happen).",
            buckets=_SECONDS_BUCKETS,
            registry=registry,
        ),
        watermark_lag_seconds=Gauge(
            "logweir_watermark_lag_seconds",
            "Wall clock minus the watermark.",
            registry=registry,
        ),
        checkpoint_age_seconds=Gauge(
            "logweir_checkpoint_age_seconds",
            "Seconds since the last checkpoint was committed.",
            registry=registry,
        ),
        queue_depth=Gauge(
            "logweir_queue_depth",
            "Batches waiting in each bounded queue.",
            ["queue"],
            registry=registry,
        ),
        alerts_fired=Counter(
            "logweir_alerts_fired",
            "Alerts raised by the detectors, by rule.",
            ["rule"],
            registry=registry,
        ),
    )
