"""Event-time windows over event batches: the windows stage of the pipeline.

>>> from logweir.windows import WindowAggregator
>>> aggregator = WindowAggregator("1m,5m", lateness_s=60)
>>> late = aggregator.update(events)          # doctest: +SKIP
>>> rows = aggregator.close(aggregator.watermark)  # doctest: +SKIP
>>> rows = aggregator.finish()                # doctest: +SKIP

*When* things happen:

* :meth:`~WindowAggregator.update` counts a batch. An event is **late**
  when a window holding it has already been emitted; late events are
  counted in no window and come back from ``update`` (the caller writes
  them to the late output). Events without a timestamp cannot be placed
  in any window; they are counted in :attr:`~WindowAggregator.untimed_events`
  and logged.
* :meth:`~WindowAggregator.close` emits every window that ends at or
  before the watermark it is given and forgets the panes no window needs
  any more. The usual watermark is :attr:`~WindowAggregator.watermark`,
  the largest event time seen minus the allowed lateness. A batch run may
  never call it and take everything from :meth:`~WindowAggregator.finish`.
* :meth:`~WindowAggregator.merge` adds another aggregator's state (from
  another worker, partition or process, same configuration, disjoint
  events); :meth:`~WindowAggregator.to_bytes` and
  :meth:`~WindowAggregator.from_bytes` carry state across processes and
  into checkpoints.

Rows follow :data:`logweir.schema.WINDOW_SCHEMA`; ``docs/windows.md`` says
what each column means and how far each estimate can be off.
"""

from __future__ import annotations

import io
import json
import logging
import struct
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import polars as pl

from logweir.errors import ConfigError, SourceError
from logweir.schema import WINDOW_SCHEMA
from logweir.windows.batch import KINDS
from logweir.windows.dimensions import DEFAULT_DIMENSIONS, split_dimensions
from logweir.windows.emit import emit
from logweir.windows.spec import (
    DEFAULT_WINDOWS,
    WindowSpec,
    check_pane_count,
    parse_windows,
)
from logweir.windows.state import PaneState, StateConfig
from logweir.windows.tables import DEFAULT_PENDING_ROWS

logger = logging.getLogger(__name__)

_US = 1_000_000
_MAGIC = b"LWWIN\x00\x02\x00"
_FRAMES = ("numeric", "hist", "items", "heavy", "cells", "names", "registers")

#: Columns naming windows (spec number, start, size and step in seconds).
_KEYS: dict[str, pl.DataType] = {
    "spec": pl.Int32(),
    "start_s": pl.Int64(),
    "size_s": pl.Int64(),
    "step_s": pl.Int64(),
}

#: Columns of the events frame the aggregator reads.
_NEEDED = {"ts", "status", "bytes", "duration_ms"} | {column for _, column in KINDS}


class WindowAggregator:
    """Mergeable event-time window state; see the module docstring.

    ``specs`` are window specs or ``--windows`` text. ``dimensions`` names
    what each window is broken down by (see :mod:`.dimensions`).
    ``top_n`` is the length of the ``top_*`` lists and the number of rows
    per heavy dimension; ``top_capacity`` the Misra–Gries capacity behind
    the lists; ``heavy_capacity`` the keys kept per pane for a heavy
    dimension. ``lateness_s`` is the allowed lateness behind the watermark.
    """

    def __init__(
        self,
        specs: Sequence[WindowSpec] | str = DEFAULT_WINDOWS,
        dimensions: Sequence[str] = DEFAULT_DIMENSIONS,
        *,
        top_n: int = 10,
        lateness_s: int = 300,
        top_capacity: int = 128,
        heavy_capacity: int = 1000,
        pending_rows: int = DEFAULT_PENDING_ROWS,
    ) -> None:
        spec_list = parse_windows(specs) if isinstance(specs, str) else list(specs)
        if not spec_list:
            raise ConfigError("at least one window is needed")
        check_pane_count(spec_list)
        if top_n < 1 or top_capacity < top_n or heavy_capacity < top_n:
            raise ConfigError(
                f"bad top-N settings: need 1 <= top_n ({top_n}) <= top_capacity "
                f"({top_capacity}) and top_n <= heavy_capacity ({heavy_capacity})"
            )
        if lateness_s < 0:
            raise ConfigError(f"bad lateness {lateness_s}s: must not be negative")
        small, heavy = split_dimensions(dimensions)
        self.config = StateConfig(
            specs=tuple(spec_list),
            small=small,
            heavy=heavy,
            top_n=top_n,
            top_capacity=top_capacity,
            heavy_capacity=heavy_capacity,
        )
        self.lateness_s = lateness_s
        self._pending_rows = pending_rows
        self._state = PaneState(self.config, pending_rows)
        self._max_us: int | None = None
        self._closed_us: int | None = None
        self.late_events = 0
        self.untimed_events = 0
        #: Per spec, panes counted into since the last :meth:`peek` of that
        #: spec (not carried in :meth:`to_bytes`: nothing is published yet
        #: by a restored aggregator).
        self._dirty: list[set[int]] = [set() for _ in spec_list]

    # -- time --------------------------------------------------------------

    @property
    def watermark(self) -> datetime | None:
        """Largest event time seen minus the allowed lateness (None before any)."""
        if self._max_us is None:
            return None
        return _to_datetime(self._max_us - self.lateness_s * _US)

    @property
    def closed_until(self) -> datetime | None:
        """The watermark of the last :meth:`close` (windows ending by it are out)."""
        return None if self._closed_us is None else _to_datetime(self._closed_us)

    def _late_before_us(self) -> int | None:
        """Events before this instant have an emitted window (or None)."""
        if self._closed_us is None:
            return None
        closed = self._closed_us
        return max(
            (closed // (spec.step_s * _US)) * spec.step_s * _US
            for spec in self.config.specs
        )

    # -- feeding -----------------------------------------------------------

    def update(self, events: pl.DataFrame) -> pl.DataFrame:
        """Count ``events`` (EVENT_SCHEMA) into their windows; return the late ones.

        The returned frame has the columns of ``events`` and holds every
        event that belongs to an already emitted window.
        """
        needed = _NEEDED | set(self.config.small_strings) | set(self.config.heavy)
        missing = needed - set(events.columns)
        if missing:
            raise ConfigError(
                f"events batch lacks columns {sorted(missing)}; conform it to "
                "EVENT_SCHEMA first"
            )
        on_time, late = self._split(events)
        if not on_time.is_empty():
            batch_max = on_time.get_column("ts").dt.epoch("us").max()
            assert isinstance(batch_max, int)
            self._max_us = (
                batch_max if self._max_us is None else max(self._max_us, batch_max)
            )
            self._mark_panes(self._state.absorb(on_time))
        logger.debug(
            "windows: batch of %d events, %d late, %d untimed",
            events.height,
            late.height,
            events.height - on_time.height - late.height,
        )
        return late

    def _split(self, events: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(on-time events, late events); events without ts are counted only."""
        ts = events.get_column("ts")
        untimed = ts.null_count()
        if untimed:
            self.untimed_events += untimed
            logger.warning(
                "windows: %d events without a timestamp are in no window", untimed
            )
        late_before = self._late_before_us()
        if late_before is None:
            late_mask = pl.repeat(False, events.height, eager=True)
        else:
            late_mask = (ts.dt.epoch("us") < late_before).fill_null(False)
        late_count = int(late_mask.sum())
        if not untimed and not late_count:
            return events, events.clear()
        late = events.filter(late_mask)
        if late_count:
            self.late_events += late_count
            logger.warning(
                "windows: %d late events (before %s) sent to the late output",
                late_count,
                _to_datetime(late_before or 0).isoformat(),
            )
        on_time = events.filter(ts.is_not_null() & ~late_mask)
        return on_time, late

    def _mark_dirty(self, events: pl.DataFrame) -> None:
        panes = events.get_column("ts").dt.epoch("s") // self.config.pane_s
        self._mark_panes(panes.unique())

    def _mark_panes(self, panes: pl.Series) -> None:
        touched = panes.to_list()
        for dirty in self._dirty:
            dirty.update(touched)

    # -- live views (follow mode) --------------------------------------------

    def mark_all_changed(self) -> None:
        """Have the next :meth:`peek` form every window still holding state
        (after :meth:`from_bytes`, nothing of it has been published)."""
        panes = self._state.panes().to_list()
        for dirty in self._dirty:
            dirty.update(panes)

    def peek(self, longest_s: int | None = None) -> pl.DataFrame:
        """Partial rows of the windows not emitted yet that changed since the
        last call; the windows are not closed and their state stays.

        Only windows holding a pane counted into since the previous call are
        formed, so a caller publishing every 100 ms pays for the few windows
        that the latest batches touched, not for all open ones. With
        ``longest_s``, only windows of at most that size are formed; longer
        ones keep their changes for a later call (a long window spans many
        panes and costs more to form, so a caller may refresh it less often).
        """
        chosen = [
            index
            for index, spec in enumerate(self.config.specs)
            if self._dirty[index] and (longest_s is None or spec.size_s <= longest_s)
        ]
        if not chosen:
            return pl.DataFrame(schema=WINDOW_SCHEMA)
        touched: set[int] = set()
        for index in chosen:
            touched |= self._dirty[index]
            self._dirty[index] = set()
        return emit(self._state, self._open_windows(touched, chosen))

    def _open_windows(self, panes: set[int], specs: list[int]) -> pl.DataFrame:
        """``spec, start_s`` of the windows of ``specs`` holding one of
        ``panes`` that are not emitted yet (in plain Python: follow mode
        asks for a few windows many times a second)."""
        pane_s = self.config.pane_s
        closed = self._closed_us
        found: set[tuple[int, int]] = set()
        for index in specs:
            spec = self.config.specs[index]
            for pane in panes:
                newest = (pane * pane_s // spec.step_s) * spec.step_s
                for back in range(spec.size_s // spec.step_s):
                    start = newest - back * spec.step_s
                    if closed is None or (start + spec.size_s) * _US > closed:
                        found.add((index, start))
        ordered = sorted(found)
        return pl.DataFrame(
            {"spec": [s for s, _ in ordered], "start_s": [t for _, t in ordered]},
            schema={"spec": pl.Int32, "start_s": pl.Int64},
        )

    def amend(self, late: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Count late events (from :meth:`update`) into the panes still held.

        An event comes back late from :meth:`update` when a window holding
        it was emitted; longer windows holding it may still be open (a 1 h
        window when its 1 min one was emitted). Those panes are still kept,
        so the event is counted into them here: open windows then include
        it, and every emitted window whose panes are all still kept is
        formed again from them. Returns ``(rows, stale)``: the corrected
        rows of those windows, and ``spec, start_s, size_s, step_s`` of the
        emitted windows holding late events whose panes were already
        forgotten; the caller recomputes those from the stored events.
        """
        timed = late.filter(pl.col("ts").is_not_null())
        if timed.is_empty() or self._closed_us is None:
            return pl.DataFrame(schema=WINDOW_SCHEMA), pl.DataFrame(schema=_KEYS)
        pane_s = self.config.pane_s
        panes = timed.get_column("ts").dt.epoch("s") // pane_s
        held = self._pane_last_end_s(panes) * _US > self._closed_us
        kept = timed.filter(held)
        if not kept.is_empty():
            self._state.absorb(kept)
            self._mark_dirty(kept)
        windows = self._windows_holding(panes.unique() * pane_s)
        emitted = windows.filter(
            (pl.col("start_s") + pl.col("size_s")) * _US <= self._closed_us
        )
        first_pane = emitted.get_column("start_s") // pane_s
        whole = self._pane_last_end_s(first_pane) * _US > self._closed_us
        rows = emit(self._state, emitted.filter(whole).select("spec", "start_s"))
        stale = emitted.filter(~whole).select("spec", "start_s", "size_s", "step_s")
        return rows, stale

    def _pane_last_end_s(self, panes: pl.Series) -> pl.Series:
        """When the last window (of any spec) holding each pane ends, in s."""
        starts = panes * self.config.pane_s
        last_end: pl.Series | None = None
        for spec in self.config.specs:
            end = (starts // spec.step_s) * spec.step_s + spec.size_s
            last_end = (
                end if last_end is None else last_end.zip_with(last_end >= end, end)
            )
        assert last_end is not None
        return last_end

    def _windows_holding(self, pane_starts_s: pl.Series) -> pl.DataFrame:
        """``spec, start_s, size_s, step_s`` of every window holding a pane
        that starts at one of ``pane_starts_s``."""
        parts = []
        for index, spec in enumerate(self.config.specs):
            newest = (pane_starts_s // spec.step_s) * spec.step_s
            for back in range(spec.size_s // spec.step_s):
                parts.append(
                    pl.DataFrame({"start_s": newest - back * spec.step_s}).with_columns(
                        spec=pl.lit(index, dtype=pl.Int32)
                    )
                )
        if not parts:
            return pl.DataFrame(schema=_KEYS)
        windows = pl.concat(parts).unique().join(self._specs_frame(), on="spec")
        return windows.select("spec", "start_s", "size_s", "step_s").sort(
            "spec", "start_s"
        )

    # -- emitting ----------------------------------------------------------

    def close(self, watermark: datetime | None = None) -> pl.DataFrame:
        """Emit the windows ending at or before ``watermark`` and drop their state.

        ``watermark`` defaults to :attr:`watermark`. A watermark not past
        the previous one emits nothing. Events for emitted windows are late
        from now on.
        """
        mark = watermark if watermark is not None else self.watermark
        if mark is None:
            return pl.DataFrame(schema=WINDOW_SCHEMA)
        mark_us = _to_us(mark)
        if self._closed_us is not None and mark_us <= self._closed_us:
            return pl.DataFrame(schema=WINDOW_SCHEMA)
        windows = self._due_windows(until_us=mark_us)
        rows = emit(self._state, windows)
        self._closed_us = mark_us
        self._state.drop_panes(self._finished_panes(mark_us))
        logger.debug(
            "windows: closed until %s, %d windows emitted",
            mark.isoformat(),
            len(windows),
        )
        return rows

    def finish(self) -> pl.DataFrame:
        """Emit every window still holding events and forget all state.

        Events that arrive afterwards for the emitted windows are late.
        """
        windows = self._due_windows(until_us=None)
        rows = emit(self._state, windows)
        if not windows.is_empty():
            ends = windows.join(self._specs_frame(), on="spec").select(
                (pl.col("start_s") + pl.col("size_s")).max()
            )
            last_end_us = int(ends.item()) * _US
            self._closed_us = max(self._closed_us or last_end_us, last_end_us)
        self._state = PaneState(self.config, self._pending_rows)
        return rows

    def _specs_frame(self) -> pl.DataFrame:
        specs = self.config.specs
        return pl.DataFrame(
            {
                "spec": list(range(len(specs))),
                "size_s": [spec.size_s for spec in specs],
                "step_s": [spec.step_s for spec in specs],
            },
            schema={"spec": pl.Int32, "size_s": pl.Int64, "step_s": pl.Int64},
        )

    def _due_windows(self, until_us: int | None) -> pl.DataFrame:
        """(spec, start_s) of windows holding events, ending after the last
        close and at or before ``until_us`` (no bound when None)."""
        pane_s = self.config.pane_s
        starts = self._state.panes() * pane_s
        parts = []
        for index, spec in enumerate(self.config.specs):
            newest = (starts // spec.step_s) * spec.step_s
            for back in range(spec.size_s // spec.step_s):
                parts.append(
                    pl.DataFrame(
                        {"start_s": newest - back * spec.step_s},
                    ).with_columns(spec=pl.lit(index, dtype=pl.Int32))
                )
        if not parts:
            return pl.DataFrame(schema={"spec": pl.Int32, "start_s": pl.Int64})
        windows = pl.concat(parts).unique().join(self._specs_frame(), on="spec")
        end_us = (pl.col("start_s") + pl.col("size_s")) * _US
        if until_us is not None:
            windows = windows.filter(end_us <= until_us)
        if self._closed_us is not None:
            windows = windows.filter(end_us > self._closed_us)
        return windows.select("spec", "start_s").sort("spec", "start_s")

    def _finished_panes(self, mark_us: int) -> list[int]:
        """Panes whose every window (in every spec) ends by ``mark_us``."""
        pane_s = self.config.pane_s
        panes = self._state.panes()
        starts = panes * pane_s
        last_end = None
        for spec in self.config.specs:
            end = (starts // spec.step_s) * spec.step_s + spec.size_s
            last_end = (
                end if last_end is None else last_end.zip_with(last_end >= end, end)
            )
        if last_end is None:
            return []
        return panes.filter(last_end * _US <= mark_us).to_list()

    # -- combining and carrying --------------------------------------------

    def merge(self, other: WindowAggregator) -> None:
        """Add ``other``'s state; both must be configured alike.

        Meant for partial states over disjoint events (workers, partitions).
        Raises :class:`ConfigError` when the configurations differ, or when
        one side holds events for windows the other has already emitted.
        """
        if other.config != self.config or other.lateness_s != self.lateness_s:
            raise ConfigError(
                "cannot merge window states with different windows, "
                "dimensions, lateness or top-N settings"
            )
        self._check_not_emitted(other)
        other._check_not_emitted(self)
        self._state.merge(other._state)
        for name in ("_max_us", "_closed_us"):
            mine, theirs = getattr(self, name), getattr(other, name)
            values = [value for value in (mine, theirs) if value is not None]
            setattr(self, name, max(values) if values else None)
        self.late_events += other.late_events
        self.untimed_events += other.untimed_events

    def _check_not_emitted(self, other: WindowAggregator) -> None:
        late_before = self._late_before_us()
        if late_before is None:
            return
        panes = other._state.panes()
        if panes.is_empty():
            return
        first_us = int(panes.min()) * self.config.pane_s * _US  # type: ignore[arg-type]
        if first_us < late_before:
            raise ConfigError(
                "cannot merge: the other state holds events from "
                f"{_to_datetime(first_us).isoformat()}, in windows already "
                f"emitted (closed until {_to_datetime(late_before).isoformat()})"
            )

    def compact(self) -> None:
        """Reduce the rows waiting in the state now, as :meth:`to_bytes` does
        first: merging this aggregator then gives the same state as merging
        one rebuilt from its bytes (the Misra–Gries cut of a chunk's own
        rows comes before the cut of the merge)."""
        self._state.compact()

    def to_bytes(self) -> bytes:
        """The whole state as bytes, for another process or a checkpoint."""
        frames = self._state.to_frames()
        blobs = []
        for name in _FRAMES:
            buffer = io.BytesIO()
            frames[name].write_ipc(buffer, compression="uncompressed")
            blobs.append(buffer.getvalue())
        blobs.append(self._state.registers_bytes())
        header = json.dumps(
            {
                "specs": [[spec.size_s, spec.step_s] for spec in self.config.specs],
                "dimensions": [*self.config.small, *self.config.heavy],
                "top_n": self.config.top_n,
                "top_capacity": self.config.top_capacity,
                "heavy_capacity": self.config.heavy_capacity,
                "lateness_s": self.lateness_s,
                "max_us": self._max_us,
                "closed_us": self._closed_us,
                "late_events": self.late_events,
                "untimed_events": self.untimed_events,
                "frames": [len(blob) for blob in blobs],
            }
        ).encode()
        return b"".join([_MAGIC, struct.pack("<I", len(header)), header, *blobs])

    @classmethod
    def from_bytes(
        cls, data: bytes, pending_rows: int = DEFAULT_PENDING_ROWS
    ) -> WindowAggregator:
        """Rebuild an aggregator written by :meth:`to_bytes`.

        Raises :class:`SourceError` when ``data`` is not such a state.
        """
        header, blobs = _read_container(data)
        aggregator = cls(
            [WindowSpec(size, step) for size, step in header["specs"]],
            header["dimensions"],
            top_n=header["top_n"],
            lateness_s=header["lateness_s"],
            top_capacity=header["top_capacity"],
            heavy_capacity=header["heavy_capacity"],
            pending_rows=pending_rows,
        )
        *framed, registers = blobs
        frames = {
            name: pl.read_ipc(io.BytesIO(blob))
            for name, blob in zip(_FRAMES, framed, strict=True)
        }
        try:
            aggregator._state.load_frames(frames, registers)
        except ValueError as error:
            raise SourceError(f"window state: {error}") from error
        aggregator._max_us = header["max_us"]
        aggregator._closed_us = header["closed_us"]
        aggregator.late_events = header["late_events"]
        aggregator.untimed_events = header["untimed_events"]
        return aggregator

    def memory_bytes(self) -> int:
        """A rough figure for the memory the state holds."""
        return self._state.estimated_bytes()


def _read_container(data: bytes) -> tuple[dict[str, Any], list[bytes]]:
    if not data.startswith(_MAGIC) or len(data) < len(_MAGIC) + 4:
        raise SourceError("window state: not a logweir window state (bad header)")
    start = len(_MAGIC)
    (header_size,) = struct.unpack_from("<I", data, start)
    start += 4
    try:
        header = json.loads(data[start : start + header_size])
    except ValueError as error:
        raise SourceError(f"window state: unreadable header ({error})") from error
    start += header_size
    blobs = []
    for size in header["frames"]:
        blobs.append(data[start : start + size])
        start += size
    if start != len(data) or len(blobs) != len(_FRAMES) + 1:
        raise SourceError(
            f"window state: {len(data)} bytes, expected {start} (truncated?)"
        )
    return header, blobs


def _to_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ConfigError(f"watermark {moment.isoformat()} has no time zone; use UTC")
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * _US + delta.microseconds


def _to_datetime(micros: int) -> datetime:
    seconds, rest = divmod(micros, _US)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=rest)
