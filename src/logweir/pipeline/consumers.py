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
  removed), so ``logweir query --out OUT`` reads the whole lake, each line
  once (below);
* ``OUT/logweir.duckdb``: the windows. Each consumer's partial window
  state is built from its share of the lake, the states are merged with
  :meth:`~logweir.windows.WindowAggregator.merge` in consumer order, and
  the merged windows replace those in the store. Every window state
  merges exactly (sums, histogram buckets, HyperLogLog registers), so the
  result equals one consumer's, whichever partitions each consumer held
  and however they moved.

*Each line once.* Two consumers can hold the same lines: one that dies
after its checkpoint but before its broker commit, and stays away until
the group hands its partitions to another member, has lines in its
output that the other member reads again from the group's older commit
(a consumer whose session expired while it was still writing does the
same). A line's identity ``(source, offset)`` is the same in both copies
(docs/kafka.md), and every file's name gives its stream and the offset
range ``[start, end)`` it covers, so the merge finds such copies from the
names alone: files whose ranges overlap no other file's are linked as they
are; where ranges of one stream overlap, the rows of those files are read
and each ``(source, offset)`` is kept once, from the first consumer (by
id) and the earliest range, and a file that lost rows is written anew,
under its own name, in ``OUT`` instead of linked. This is exact whatever
the timing of the crash, the rebalance and the commits: it does not ask
who committed what when.

Why from the lake and not from the consumers' checkpointed states: a
consumer forgets a window's state once the window is emitted, and its
checkpoint then holds only the windows still open. The lake holds every
event each consumer committed, once.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from logweir.errors import ConfigError, SinkError
from logweir.pipeline.checkpoint import STREAM_OUTPUTS, load_checkpoint
from logweir.pipeline.config import RunConfig
from logweir.sinks import STORE_NAME, AggregateStore
from logweir.sinks.lake import LakeWriter, check_name
from logweir.sinks.rejects import RejectWriter
from logweir.sources.kafka import KafkaSource, parse_kafka_url
from logweir.sources.stream import Positions
from logweir.windows import WindowAggregator, parse_windows

logger = logging.getLogger(__name__)

CONSUMERS_DIR = "consumers"

#: A stream's file name (:func:`~logweir.pipeline.checkpoint.output_name`):
#: the stream's name part, then the first and the past-the-end position.
_RANGE_NAME = re.compile(r"^(?P<name>.+)-(?P<start>\d{16})-(?P<end>\d{16})$")
#: Helper column of the deduplication: which file a row came from.
_FILE = "__logweir_file"


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
    #: Rows held by two consumers (or twice by one) and kept once.
    duplicates: int = 0
    #: Files written anew in OUT because they lost such rows.
    rewritten: int = 0


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
    chosen = {kind: _choose(folders, kind, summary) for kind in STREAM_OUTPUTS}
    for kind, files in chosen.items():
        linked, unlinked, rewritten = _sync(out, kind, files)
        summary.linked += linked
        summary.unlinked += unlinked
        summary.rewritten += rewritten
    merged: WindowAggregator | None = None
    for folder in folders:
        part = _new_aggregator(settings)
        for share in sorted(chosen["events"].values(), key=lambda c: c.path):
            if share.owner != folder.name:
                continue
            events = share.rows
            if events is None:
                events = pl.read_parquet(share.path, hive_partitioning=False)
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
        "merge: %d consumers, %d lake files, %d events, %d windows, "
        "%d duplicate rows dropped",
        len(folders),
        summary.files,
        summary.events,
        summary.windows,
        summary.duplicates,
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


@dataclass
class _Chosen:
    """One file of the merged output: a consumer's file, linked whole, or
    the rows of it that no earlier file holds (``rows``), written anew."""

    owner: str
    path: Path
    rows: pl.DataFrame | None = None


@dataclass
class _Piece:
    """The files one consumer wrote for one stream's range ``[start, end)``
    (one per hour folder for the lake; they share the name)."""

    order: int
    owner: str
    start: int
    end: int
    files: list[tuple[Path, Path]] = field(default_factory=list)  # relative, path


def _choose(
    folders: list[Path], kind: str, summary: MergeSummary
) -> dict[Path, _Chosen]:
    """Relative path in ``OUT/kind`` -> what goes there: every row once.

    Files are grouped by stream and range (from their names). Pieces of a
    stream whose ranges overlap no other are taken whole; overlapping ones
    are deduplicated by ``(source, offset)`` (module docstring). A file
    whose name is not a stream's range (a batch run's) is taken as it is,
    the first consumer's where two hold the name.
    """
    chosen: dict[Path, _Chosen] = {}
    streams: dict[str, dict[tuple[str, int, int], _Piece]] = {}
    for order, folder in enumerate(folders):
        for path in sorted(_committed_files(folder, kind)):
            relative = path.relative_to(folder / kind)
            match = _RANGE_NAME.match(path.name.removesuffix(".parquet"))
            if match is None:
                if relative not in chosen:
                    chosen[relative] = _Chosen(folder.name, path)
                continue
            start, end = int(match["start"]), int(match["end"])
            pieces = streams.setdefault(match["name"], {})
            piece = pieces.get((folder.name, start, end))
            if piece is None:
                piece = pieces[(folder.name, start, end)] = _Piece(
                    order, folder.name, start, end
                )
            piece.files.append((relative, path))
    for name, pieces in streams.items():
        for group in _overlapping(list(pieces.values())):
            if len(group) == 1:
                for relative, path in group[0].files:
                    chosen[relative] = _Chosen(group[0].owner, path)
                continue
            _dedupe(kind, name, group, chosen, summary)
    return chosen


def _overlapping(pieces: list[_Piece]) -> list[list[_Piece]]:
    """``pieces`` in groups whose ranges overlap (chained), by start."""
    groups: list[list[_Piece]] = []
    reach = -1
    for piece in sorted(pieces, key=lambda p: (p.start, p.end, p.order)):
        if groups and piece.start < reach:
            groups[-1].append(piece)
            reach = max(reach, piece.end)
        else:
            groups.append([piece])
            reach = piece.end
    return groups


def _dedupe(
    kind: str,
    name: str,
    group: list[_Piece],
    chosen: dict[Path, _Chosen],
    summary: MergeSummary,
) -> None:
    """Keep each ``(source, offset)`` of overlapping pieces once: from the
    first consumer, then the earliest range."""
    ordered = sorted(group, key=lambda p: (p.order, p.start, p.end))
    files = [
        (piece, relative, path) for piece in ordered for relative, path in piece.files
    ]
    frames = [
        pl.read_parquet(path, hive_partitioning=False).with_columns(
            pl.lit(index, pl.UInt32).alias(_FILE)
        )
        for index, (_, _, path) in enumerate(files)
    ]
    rows = pl.concat(frames, how="diagonal_relaxed")
    kept = rows.unique(subset=["source", "offset"], keep="first", maintain_order=True)
    dropped = rows.height - kept.height
    summary.duplicates += dropped
    if dropped:
        logger.warning(
            "merge: %s of %s: %d rows are in more than one file (%s); kept once",
            kind,
            name,
            dropped,
            ", ".join(f"{p.owner} {p.start}-{p.end}" for p in ordered),
        )
    counts = kept.get_column(_FILE).value_counts()
    left = dict(zip(counts.get_column(_FILE), counts.get_column("count"), strict=True))
    for index, (piece, relative, path) in enumerate(files):
        keep = left.get(index, 0)
        if keep == 0 or relative in chosen:
            continue
        if keep == frames[index].height:
            chosen[relative] = _Chosen(piece.owner, path)
        else:
            own = kept.filter(pl.col(_FILE) == index).drop(_FILE)
            chosen[relative] = _Chosen(
                piece.owner, path, own.select(frames[index].drop(_FILE).columns)
            )


def _sync(out: Path, kind: str, chosen: dict[Path, _Chosen]) -> tuple[int, int, int]:
    """Make ``OUT/kind`` hold what ``chosen`` says and nothing else: hard
    links to whole files, files written anew for deduplicated ones."""
    root = out / kind
    linked = unlinked = rewritten = 0
    if root.is_dir():
        for path in root.rglob("*.parquet"):
            relative = path.relative_to(root)
            choice = chosen.get(relative)
            if (
                choice is None
                or (choice.rows is None and not path.samefile(choice.path))
                or (choice.rows is not None and path.samefile(choice.path))
            ):
                path.unlink()
                unlinked += 1
    for relative, choice in chosen.items():
        target = root / relative
        if choice.rows is not None:
            _write_rows(out, kind, relative, choice.rows)
            rewritten += 1
            continue
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(choice.path, target)
        except OSError as error:
            raise SinkError(
                f"cannot link {choice.path} to {target}: {error.strerror}"
            ) from None
        linked += 1
    return linked, unlinked, rewritten


def _write_rows(out: Path, kind: str, relative: Path, rows: pl.DataFrame) -> None:
    """Write a deduplicated file at ``OUT/kind/relative`` with the writer
    that made the original (same layout: an hour's rows stay in its folder)."""
    stem = relative.name.removesuffix(".parquet")
    if kind == "rejects":
        written = RejectWriter(out).write(rows, stem)
    else:
        writer = LakeWriter(out)
        writer.root = out / kind
        written = writer.write(rows, stem)
    if written != [out / kind / relative]:
        raise SinkError(f"merge: rewriting {kind}/{relative} wrote {written} instead")
