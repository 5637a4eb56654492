"""``logweir detect --out OUT`` and ``logweir detect --csv SERIES.csv``.

``--out`` runs the alert engine (the built-in rules, or the ``[detect]``
table of ``--config``) over the windows stored by an earlier ``logweir
run`` and prints one line per alert event; ``--csv`` runs one detector
over a ``timestamp,value`` series and prints the anomalous points, or
with ``--json`` every scored point, for evaluation.

Examples::

    logweir detect --out out
    logweir detect --csv cpu.csv --detector robust_zscore --set window=120
    logweir detect --csv cpu.csv --json > scores.jsonl
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson
import polars as pl

from logweir.detectors import DETECTORS, build_detector
from logweir.detectors.alerts import Alert
from logweir.detectors.engine import BUILTIN_RULES, AlertEngine
from logweir.errors import ConfigError, SourceError
from logweir.schema import WINDOW_SCHEMA

logger = logging.getLogger(__name__)

#: The aggregate store ``logweir run`` writes into its output folder.
STORE_FILE = "logweir.duckdb"
DEFAULT_CSV_DETECTOR = "ensemble"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The anomaly options of ``logweir detect``."""
    group = parser.add_argument_group("anomaly detection")
    group.add_argument(
        "--out", type=Path, help="output folder of an earlier logweir run"
    )
    group.add_argument("--csv", type=Path, help="a timestamp,value series to score")
    group.add_argument(
        "--detector",
        choices=sorted(DETECTORS),
        help=f"detector (CSV default {DEFAULT_CSV_DETECTOR}; with --out, for every "
        "series rule)",
    )
    group.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a detector setting for --csv, e.g. window=120 (repeatable)",
    )
    group.add_argument(
        "--config", type=Path, help="TOML file whose [detect] table to use"
    )
    # Format detection may have added --json already, with the same meaning.
    with contextlib.suppress(argparse.ArgumentError):
        group.add_argument("--json", action="store_true", help="JSON lines output")


def handle(args: argparse.Namespace) -> int:
    """Run the detection asked for; 0 on success (alerts or not)."""
    if args.out is not None and args.csv is not None:
        raise ConfigError("detect: give --out or --csv, not both")
    if args.csv is not None:
        return _score_csv(args)
    return _detect_store(args)


# -- --out ---------------------------------------------------------------------


def _detect_store(args: argparse.Namespace) -> int:
    windows = read_store_windows(args.out)
    engine = AlertEngine.from_config(_engine_table(args))
    alerts = engine.update(windows)
    alerts.extend(engine.finish())
    _print_alerts(alerts, as_json=bool(getattr(args, "json", False)))
    incidents = len({alert.id for alert in alerts})
    print(
        f"{incidents} incident(s) in {windows.height} window rows of {args.out}",
        file=sys.stderr,
    )
    return 0


def _engine_table(args: argparse.Namespace) -> dict[str, Any]:
    table: dict[str, Any] = {}
    if args.config is not None:
        try:
            loaded = tomllib.loads(args.config.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(f"cannot read {args.config}: {error}") from error
        table = dict(loaded.get("detect", {}))
        table.pop("enabled", None)
    if args.detector is not None:
        rules = dict(table.get("rules", {}))
        for name, defaults in BUILTIN_RULES.items():
            if defaults["kind"] == "series":
                rules[name] = {**rules.get(name, {}), "detector": args.detector}
        table["rules"] = rules
    return table


def read_store_windows(out: Path) -> pl.DataFrame:
    """The ``windows`` table of ``OUT/logweir.duckdb``; errors say what is missing."""
    path = out / STORE_FILE
    if not path.is_file():
        raise SourceError(
            f"no aggregate store at {path}: run logweir run --out {out} first"
        )
    try:
        with duckdb.connect(str(path), read_only=True) as connection:
            table = connection.sql("SELECT * FROM windows").to_arrow_table()
    except duckdb.Error as error:
        raise SourceError(f"cannot read the windows of {path}: {error}") from error
    frame = pl.from_arrow(table) if table is not None else pl.DataFrame()
    assert isinstance(frame, pl.DataFrame)
    missing = [name for name in WINDOW_SCHEMA if name not in frame.columns]
    if missing:
        raise SourceError(f"{path}: the windows table lacks {', '.join(missing)}")
    return frame.select(
        pl.col(name).cast(dtype) for name, dtype in WINDOW_SCHEMA.items()
    )


def _print_alerts(alerts: list[Alert], *, as_json: bool) -> None:
    for alert in alerts:
        if as_json:
            sys.stdout.write(orjson.dumps(alert.to_record()).decode() + "\n")
        else:
            print(f"{alert.status:8} {alert.severity:8} {alert.rule}: {alert.message}")


# -- --csv ---------------------------------------------------------------------


def _score_csv(args: argparse.Namespace) -> int:
    times, values = read_csv_series(args.csv)
    name = args.detector or DEFAULT_CSV_DETECTOR
    detector = build_detector(name, _settings(args.set), f"--set ({name})")
    scores = detector.detect(times, values)
    as_json = bool(getattr(args, "json", False))
    flagged = 0
    for i in range(values.size):
        verdict = scores.at(i, int(times[i]), float(values[i]))
        if verdict is None:
            continue
        flagged += verdict.anomalous
        stamp = datetime.fromtimestamp(times[i] / 1e6, UTC).isoformat()
        if as_json:
            record = {
                "timestamp": stamp,
                "value": verdict.value,
                "baseline": verdict.baseline,
                "spread": verdict.spread,
                "score": verdict.score,
                "anomalous": verdict.anomalous,
            }
            sys.stdout.write(json.dumps(record) + "\n")
        elif verdict.anomalous:
            print(
                f"{stamp}  value {verdict.value:g}  baseline {verdict.baseline:g}"
                f"  score {verdict.score:.3g}"
            )
    scored = int(scores.scored.sum())
    print(
        f"{flagged} anomalous of {scored} scored points ({values.size} in {args.csv}, "
        f"detector {name})",
        file=sys.stderr,
    )
    return 0


def _settings(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values read as JSON when they parse, else text."""
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: write KEY=VALUE, e.g. window=120")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        settings[key.strip()] = value
    return settings


def read_csv_series(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps (µs, UTC) and values of a ``timestamp,value`` CSV, in time order.

    Timestamps are ISO 8601 text (naive ones are UTC) or epoch seconds.
    A row that does not read is an error naming its line.
    """
    try:
        frame = pl.read_csv(path, infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as error:
        raise SourceError(f"cannot read {path}: {error}") from error
    if not {"timestamp", "value"} <= set(frame.columns):
        found = ",".join(frame.columns)
        raise SourceError(f"{path}: expected a header timestamp,value; got {found}")
    times = _parse_times(frame.get_column("timestamp"))
    values = frame.get_column("value").str.strip_chars().cast(pl.Float64, strict=False)
    _check_parsed(path, frame, times.is_null(), "timestamp")
    _check_parsed(path, frame, values.is_null(), "value")
    micros = times.dt.epoch("us").to_numpy().astype(np.int64)
    order = np.argsort(micros, kind="stable")
    if np.any(order != np.arange(order.size)):
        logger.info("%s: rows are not in time order; sorted", path)
    return micros[order], values.to_numpy().astype(np.float64)[order]


def _parse_times(column: pl.Series) -> pl.Series:
    text = column.str.strip_chars()
    as_number = text.cast(pl.Float64, strict=False)
    if as_number.is_not_null().all() and text.len() > 0:
        micros = (as_number * 1_000_000).round(0).cast(pl.Int64)
        return micros.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    parsed = text.str.to_datetime(time_unit="us", time_zone="UTC", strict=False)
    return parsed


def _check_parsed(path: Path, frame: pl.DataFrame, bad: pl.Series, column: str) -> None:
    if not bad.any():
        return
    row = int(bad.arg_max())  # type: ignore[arg-type]
    raw = frame.get_column(column)[row]
    # Line 1 is the header.
    raise SourceError(f"{path}:{row + 2}: cannot read {column} {raw!r}")
