"""Consumers of one Kafka group sharing an output folder, and their merge.

``logweir run --source kafka://HOST:PORT/TOPIC --group G --out OUT`` runs
the streaming pipeline (:mod:`.stream`) over a
:class:`~logweir.sources.kafka.KafkaSource`. Several such consumers split
the topic's partitions between them, so each sees part of every window.
DuckDB lets one process write a database file, and a consumer's recovery
deletes the files it wrote after its last checkpoint, so consumers never
write into each other's folders. Each has its own, under ``OUT``::

    OUT/consumers/<consumer id>/   one consumer's whole pipeline output:
        events/ rejects/ late/     its lake files (named from topic,
                                   partition and offset range)
        logweir.duckdb             its windows (partial: its partitions)
        checkpoint/state           its positions and window state

:func:`merge_consumers` (``logweir merge OUT``) then makes ``OUT`` the
group's result, as one consumer reading every partition would have made
it:

* ``OUT/events``, ``OUT/rejects``, ``OUT/late``: hard links to every
  consumer's files (the links of files a consumer has since deleted are
  removed), so ``logweir query --out OUT`` reads the whole lake;
* ``OUT/logweir.duckdb``: the windows. Each consumer's partial window
  state is built from its lake files, the states are merged with
  :meth:`~logweir.windows.WindowAggregator.merge` in consumer order, and
  the merged windows replace those in the store. Every window state
  merges exactly (sums, histogram buckets, HyperLogLog registers), so the
  result equals one consumer's, whichever partitions each consumer held
  and however they moved.

Why from the lake and not from the consumers' checkpointed states: a
consumer forgets a window's state once the window is emitted, and its
checkpoint then holds only the windows still open. The lake holds every
event each consumer committed, once.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from logweir.errors import ConfigError, SinkError
from logweir.pipeline.checkpoint import STREAM_OUTPUTS, load_checkpoint
from logweir.pipeline.config import RunConfig
from logweir.sinks import STORE_NAME, AggregateStore
from logweir.sinks.lake import check_name
from logweir.sources.kafka import KafkaSource, parse_kafka_url
from logweir.sources.stream import Positions
from logweir.windows import WindowAggregator, parse_windows

logger = logging.getLogger(__name__)

CONSUMERS_DIR = "consumers"


def default_consumer_id() -> str:
    """This machine's name: stable across restarts, one consumer per host."""
    name = "".join(
        c if c.isalnum() or c in "._-" else "_" for c in socket.gethostname()
    )
    return name.lstrip(".") or "consumer"


def consumer_out(out: Path, consumer_id: str) -> Path:
    """The folder one consumer writes: ``OUT/consumers/<id>``."""
    try:
        check_name(consumer_id)
    except SinkError:
        raise ConfigError(
            f"--consumer-id: {consumer_id!r} must be letters, digits and _ . @ + = , -"
        ) from None
    return out / CONSUMERS_DIR / consumer_id


def kafka_config(config: RunConfig) -> RunConfig:
    """``config`` for one consumer: its own folder under ``config.out``."""
    if config.source is None:
        raise ConfigError("--source: give kafka://HOST:PORT/TOPIC")
    parse_kafka_url(config.source)
    if not config.group:
        raise ConfigError("--group: a Kafka source needs a consumer group")
    if config.follow or config.inputs:
        raise ConfigError("--source reads Kafka: give no files with it")
    consumer_id = config.consumer_id or default_consumer_id()
    return config.model_copy(
        update={
            "out": consumer_out(config.out, consumer_id),
            "consumer_id": consumer_id,
        }
    )


def kafka_source(config: RunConfig, positions: Positions | None) -> KafkaSource:
    """The source of one consumer (``config`` from :func:`kafka_config`)."""
    assert config.source is not None and config.group and config.consumer_id
    url = parse_kafka_url(config.source)
    return KafkaSource(
        url.bootstrap,
        url.topic,
        config.group,
        config.consumer_id,
        positions=positions,
    )


@dataclass
class MergeSummary:
    """What :func:`merge_consumers` did."""

    consumers: list[str] = field(default_factory=list)
    files: int = 0
    events: int = 0
    windows: int = 0
    linked: int = 0
    unlinked: int = 0


def merge_consumers(out: Path) -> MergeSummary:
    """Make ``out`` the merged result of its consumers (module docstring).

    Safe to run while the consumers run (it reads committed files only)
    and as often as wanted: each run rebuilds the links and the windows.
    Raises :class:`ConfigError` when ``out`` holds no consumer or when the
    consumers were run with different window settings.
    """
    folders = consumer_folders(out)
    if not folders:
        raise ConfigError(f"{str(out)!r} holds no {CONSUMERS_DIR}/ from --source runs")
    summary = MergeSummary(consumers=[folder.name for folder in folders])
    settings = _common_settings(folders)
    files = {
        kind: _unique_files(folders, kind) for kind in STREAM_OUTPUTS
    }  # relative path -> the first consumer's file
    for kind, chosen in files.items():
        linked, unlinked = _sync_links(out / kind, chosen)
        summary.linked += linked
        summary.unlinked += unlinked
    merged: WindowAggregator | None = None
    for folder in folders:
        part = _new_aggregator(settings)
        for path in _files_of(folder, files["events"]):
            events = pl.read_parquet(path, hive_partitioning=False)
            part.update(events)
            summary.files += 1
            summary.events += events.height
        if merged is None:
            merged = part
        else:
            merged.merge(part)
    assert merged is not None
    rows = merged.finish()
    with AggregateStore(out / STORE_NAME) as store:
        store.replace_windows(rows)
    summary.windows = (
        rows.select("window_size_s", "window_step_s", "window_start").unique().height
    )
    logger.info(
        "merge: %d consumers, %d lake files, %d events, %d windows",
        len(folders),
        summary.files,
        summary.events,
        summary.windows,
    )
    return summary


def consumer_folders(out: Path) -> list[Path]:
    """Every consumer folder under ``out``, by id."""
    root = out / CONSUMERS_DIR
    if not root.is_dir():
        return []
    return sorted(path for path in root.iterdir() if path.is_dir())


def _common_settings(folders: list[Path]) -> dict[str, object]:
    """The window settings every consumer's checkpoint names (all the same)."""
    found: dict[str, object] | None = None
    first = ""
    for folder in folders:
        checkpoint = load_checkpoint(folder)
        if checkpoint is None:
            continue
        if found is None:
            found, first = checkpoint.settings, folder.name
        elif checkpoint.settings != found:
            raise ConfigError(
                f"consumers {first} and {folder.name} ran with different window "
                f"settings ({found} and {checkpoint.settings}); merge needs the same"
            )
    if found is None:
        raise ConfigError(
            "no consumer has written a checkpoint yet: nothing committed to merge"
        )
    return found


def _new_aggregator(settings: dict[str, object]) -> WindowAggregator:
    dimensions = str(settings["dimensions"])
    return WindowAggregator(
        parse_windows(str(settings["windows"])),
        dimensions=[d for d in dimensions.split(",") if d],
        top_n=int(str(settings["top_n"])),
        lateness_s=int(str(settings["lateness"])),
    )


def _committed_files(folder: Path, kind: str) -> Iterator[Path]:
    root = folder / kind
    if root.is_dir():
        yield from (p for p in root.rglob("*.parquet") if not p.name.startswith("."))


def _unique_files(folders: list[Path], kind: str) -> dict[Path, Path]:
    """Relative path -> file, the first consumer's where two hold one name.

    A name is a stream and an offset range: two consumers hold the same
    name only if both committed the same lines (see docs/kafka.md).
    """
    chosen: dict[Path, Path] = {}
    owner: dict[Path, str] = {}
    for folder in folders:
        for path in sorted(_committed_files(folder, kind)):
            relative = path.relative_to(folder / kind)
            if relative in chosen:
                logger.warning(
                    "merge: %s/%s is in consumers %s and %s; keeping the first",
                    kind,
                    relative,
                    owner[relative],
                    folder.name,
                )
                continue
            chosen[relative] = path
            owner[relative] = folder.name
    return chosen


def _files_of(folder: Path, chosen: dict[Path, Path]) -> list[Path]:
    return sorted(path for path in chosen.values() if path.is_relative_to(folder))


def _sync_links(root: Path, chosen: dict[Path, Path]) -> tuple[int, int]:
    """Make ``root`` hold a hard link to each chosen file and nothing else."""
    linked = unlinked = 0
    if root.is_dir():
        for path in root.rglob("*.parquet"):
            relative = path.relative_to(root)
            source = chosen.get(relative)
            if source is None or not path.samefile(source):
                path.unlink()
                unlinked += 1
    for relative, source in chosen.items():
        target = root / relative
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError as error:
            raise SinkError(
                f"cannot link {source} to {target}: {error.strerror}"
            ) from None
        linked += 1
    return linked, unlinked
