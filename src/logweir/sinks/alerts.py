"""Where alerts go: the terminal, a JSON lines file, DuckDB, a webhook.

Every output has the sink verb set: ``write(alerts)`` with a sequence of
alerts, ``flush()``, ``close()``. An alert is anything with a
``to_record()`` giving a JSON-ready dict (:class:`logweir.detectors.alerts.
Alert` does), so this module depends on the record's fields, not on the
detectors package.

An incident reaches an output twice, when it opens and when it resolves,
under one ``id``. The terminal and the JSON lines file show both events;
the DuckDB table keeps one row per ``id`` in its latest state; the webhook
posts both, as chat and paging tools expect.

A webhook that fails (refused, timed out, answering 5xx) is retried with
a growing pause, then logged and given up: a broken receiver must never
stop a run.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, ClassVar, Protocol

import duckdb
import orjson
import polars as pl
from rich.console import Console
from rich.text import Text

from logweir.errors import SinkError
from logweir.schema import TS_TYPE

logger = logging.getLogger(__name__)


class AlertLike(Protocol):
    """What the outputs need of an alert."""

    def to_record(self) -> dict[str, Any]: ...


#: Columns of the ``alerts`` table; ``detail`` is JSON text.
ALERT_COLUMNS: dict[str, pl.DataType] = {
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
_TIME_COLUMNS = ("start", "end", "window_start", "window_end")


def alerts_table(alerts: Sequence[AlertLike]) -> pl.DataFrame:
    """One row per alert ``id``, its latest state, ordered by start."""
    latest: dict[str, dict[str, Any]] = {}
    for alert in alerts:
        record = alert.to_record()
        latest[record["id"]] = record
    rows = []
    for record in latest.values():
        row = {name: record.get(name) for name in ALERT_COLUMNS}
        row["detail"] = json.dumps(
            record.get("detail") or {}, sort_keys=True, default=str
        )
        rows.append(row)
    frame = pl.DataFrame(
        rows,
        schema={
            k: (pl.String() if k in _TIME_COLUMNS else v)
            for k, v in ALERT_COLUMNS.items()
        },
    )
    frame = frame.with_columns(
        pl.col(name).str.to_datetime(time_unit="us", time_zone="UTC")
        for name in _TIME_COLUMNS
    )
    return frame.sort("start", "id")


class TerminalOutput:
    """One coloured line per alert event, on the terminal (stderr by default)."""

    _STYLES: ClassVar[dict[str, str]] = {"critical": "bold red", "warning": "yellow"}

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False)

    def write(self, alerts: Sequence[AlertLike]) -> None:
        for alert in alerts:
            record = alert.to_record()
            line = Text()
            style = self._STYLES.get(record["severity"], "")
            if record["status"] == "resolved":
                style = "green"
            line.append(f"{record['severity'].upper():8} ", style=style)
            line.append(f"{record['rule']}: ", style="bold")
            line.append(record["message"])
            self.console.print(line, soft_wrap=True)

    def flush(self) -> None:
        self.console.file.flush()

    def close(self) -> None:
        self.flush()


class JsonLinesOutput:
    """Appends one JSON object per alert event to a file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[bytes] | None = self.path.open("ab")
        except OSError as error:
            raise SinkError(f"cannot open alert file {self.path}: {error}") from error

    def write(self, alerts: Sequence[AlertLike]) -> None:
        if self._file is None:
            raise SinkError(f"alert file {self.path} is closed")
        try:
            for alert in alerts:
                self._file.write(orjson.dumps(alert.to_record()) + b"\n")
            self._file.flush()
        except OSError as error:
            raise SinkError(f"cannot write alert file {self.path}: {error}") from error

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class _Upserting(Protocol):
    def upsert_table(
        self, name: str, frame: pl.DataFrame, key: list[str], /
    ) -> Any: ...


class DuckDBAlertOutput:
    """Keeps an ``alerts`` table, one row per incident, upserted by ``id``.

    ``target`` is the aggregate store (anything with ``upsert_table(name,
    frame, key)``, so the alerts live beside the aggregates) or the path of
    a DuckDB database file.
    """

    TABLE = "alerts"

    def __init__(self, target: _Upserting | Path | str) -> None:
        self._store: _Upserting | None = None
        self._path: Path | None = None
        if isinstance(target, str | Path):
            self._path = Path(target)
        else:
            self._store = target

    def write(self, alerts: Sequence[AlertLike]) -> None:
        if not alerts:
            return
        frame = alerts_table(alerts)
        if self._store is not None:
            self._store.upsert_table(self.TABLE, frame, ["id"])
            return
        assert self._path is not None
        try:
            with duckdb.connect(str(self._path)) as connection:
                _upsert(connection, self.TABLE, frame)
        except duckdb.Error as error:
            raise SinkError(f"cannot write alerts to {self._path}: {error}") from error

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _upsert(
    connection: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame
) -> None:
    """Replace the rows of ``frame``'s ids in ``table`` (created if missing)."""
    connection.register("incoming", frame.to_arrow())
    connection.execute(
        f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM incoming LIMIT 0"
    )
    connection.execute("BEGIN TRANSACTION")
    connection.execute(f"DELETE FROM {table} WHERE id IN (SELECT id FROM incoming)")
    connection.execute(f"INSERT INTO {table} SELECT * FROM incoming")
    connection.execute("COMMIT")
    connection.unregister("incoming")


class WebhookOutput:
    """POSTs each batch of alert events as JSON to a URL.

    The body is ``{"source": "logweir", "text": ..., "alerts": [...]}``:
    ``alerts`` holds the records, ``text`` their lines (which chat tools
    show as they are). Each POST gets ``timeout_s``; a refused connection,
    a timeout, a 429 or a 5xx is retried up to ``retries`` times after
    ``backoff_s``, 2 × ``backoff_s``, …; other answers are not retried.
    A batch that cannot be delivered is logged and dropped; ``failures``
    counts them.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        headers: dict[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise SinkError(f"webhook URL must start with http:// or https://: {url!r}")
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self._sleep = sleep
        self.delivered = 0
        self.failures = 0

    def write(self, alerts: Sequence[AlertLike]) -> None:
        if not alerts:
            return
        records = [alert.to_record() for alert in alerts]
        body = orjson.dumps(
            {
                "source": "logweir",
                "text": "\n".join(r["message"] for r in records),
                "alerts": records,
            }
        )
        if self._post(body):
            self.delivered += 1
        else:
            self.failures += 1
            logger.warning(
                "webhook %s: gave up on %d alert(s) after %d attempts",
                self.url,
                len(records),
                self.retries + 1,
            )

    def _post(self, body: bytes) -> bool:
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.backoff_s * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=body, headers=self.headers)
            try:
                with urllib.request.urlopen(
                    request, timeout=self.timeout_s
                ) as response:
                    response.read()
                return True
            except urllib.error.HTTPError as error:
                retry = error.code == 429 or error.code >= 500
                logger.warning(
                    "webhook %s answered %d (attempt %d)",
                    self.url,
                    error.code,
                    attempt + 1,
                )
                if not retry:
                    return False
            except (urllib.error.URLError, TimeoutError, OSError) as error:
                logger.warning(
                    "webhook %s failed: %s (attempt %d)", self.url, error, attempt + 1
                )
        return False

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
