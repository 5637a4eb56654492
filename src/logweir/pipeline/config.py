"""What ``logweir run`` takes, from flags or a TOML file, validated once.

A config file holds the same keys as the flags (``logweir run --help``)::

    inputs = ["/var/log/nginx/access.log*"]
    out = "logweir-out"
    format = "combined"          # omit to detect it from a sample
    timezone = "UTC"             # for timestamps that carry no offset
    windows = ["1m", "5m", "1h"] # or "1m,5m,1h"; "10m/1m" is a hopping window
    dimensions = ["status_class", "host"]
    top_n = 10
    workers = 2                  # default: one per two cores
    chunk_size = "64MiB"
    strict = false
    lateness = "5m"

    # Kafka consumer mode (logweir run --source): see docs/kafka.md
    source = "kafka://127.0.0.1:9092/web-logs"
    group = "logweir"            # the consumer group
    consumer_id = "web-01"       # stable across restarts (default: host name)

    # follow mode (logweir run --follow): see docs/streaming.md
    follow = ["/var/log/nginx/access.log"]  # files or globs to follow
    commit_interval = "1s"       # how often lake files and checkpoints are written
    commit_size = "16MiB"        # ... or after this much input, if sooner
    publish_interval = "30ms"    # how often open windows are updated in the store
    max_publish_interval = "1s"  # at low rates it stretches up to this (CPU)
    exit_when_idle = "30s"       # stop after no new lines for this long (scripts)

    [detect]
    enabled = true               # other keys go to the detectors as they are

    [alerts]
    jsonl = "alerts.jsonl"       # in OUT; one JSON object per alert event
    webhook = "https://hooks.example.com/logweir"

    [report]
    top = 10
    html = "report.html"         # also write the report as one HTML file

    [serve]                      # follow mode: dashboard, API and /metrics
    addr = "127.0.0.1:8080"      # token: --serve-token or $LOGWEIR_TOKEN only
    enable_sql = false
    sql_timeout = 5
    sql_rows = 10000

Flags given on the command line override the file. Relative paths in the
file are read from the file's folder, relative flags from the current one.
Every mistake becomes one :class:`~logweir.errors.ConfigError` line that
names where it is and the key, e.g.
``config.toml: windows: "5x" is not a duration (use s, m, h, d)``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails

from logweir.errors import ConfigError, LogweirError
from logweir.formats.timeutil import check_timezone
from logweir.pipeline import DEFAULT_OUT
from logweir.windows import (
    DEFAULT_DIMENSIONS,
    DEFAULT_WINDOWS,
    parse_duration,
    parse_windows,
)
from logweir.windows.dimensions import split_dimensions

_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size_bytes(value: int | str) -> int:
    """``65536``, ``"64MiB"``, ``"64M"``, ``"1g"`` as bytes (powers of 1024)."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(value)
    if match is None:
        raise ValueError(f'"{value}" is not a size (use a number of bytes, KiB, MiB)')
    unit = (match.group(2) or "").lower()[:1]
    return int(match.group(1)) * _SIZE_UNITS[unit]


_SECONDS = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_SECONDS_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_seconds(value: str) -> float:
    """``"50ms"``, ``"1.5s"``, ``"2m"``, ``"3"`` (seconds) as seconds."""
    match = _SECONDS.match(value)
    if match is None:
        raise ValueError(f'"{value}" is not a duration (use ms, s, m or h)')
    return float(match.group(1)) * _SECONDS_UNITS[match.group(2) or "s"]


def _split_list(value: Any) -> Any:
    """Accept ``"a,b"`` where a list is expected, as flags give it."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class DetectSettings(BaseModel):
    """The ``[detect]`` table: on/off here, everything else for the detectors.

    Keys other than ``enabled`` are not checked here; the detectors
    validate them when the run builds its alert engine.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    enabled: bool = True

    def options(self) -> dict[str, Any]:
        """The table without ``enabled``, as the detectors take it."""
        return dict(self.model_extra or {})


class AlertSettings(BaseModel):
    """The ``[alerts]`` table: where alerts go besides the store and report.

    ``jsonl`` is a file (relative to ``out``) that gets one JSON object per
    alert event, appended; ``webhook`` a URL that gets them POSTed, with
    ``webhook_timeout_s`` per attempt and ``webhook_retries`` more tries.
    A failing webhook is logged, never fatal.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    jsonl: Path | None = None
    webhook: str | None = None
    webhook_timeout_s: float = Field(5.0, gt=0, le=300)
    webhook_retries: int = Field(3, ge=0, le=20)

    @field_validator("webhook")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f'"{value}" is not an http:// or https:// URL')
        return value


class ReportSettings(BaseModel):
    """The ``[report]`` table: how much the terminal summary shows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    top: int = Field(10, ge=1, le=1000)
    sparkline_width: int = Field(60, ge=8, le=400)
    #: Also write the report as one self-contained HTML file (``--report``).
    html: str | None = None


class ServeConfig(BaseModel):
    """The ``[serve]`` table: ``--serve`` and its SQL settings (follow mode).

    The token is not a key: give it with ``--serve-token`` or the
    ``LOGWEIR_TOKEN`` environment variable, so it stays out of files.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    addr: str | None = None
    enable_sql: bool = False
    sql_timeout: float = Field(5.0, gt=0, le=3600)
    sql_rows: int = Field(10_000, ge=1, le=10_000_000)


class RunConfig(BaseModel):
    """Everything one ``logweir run`` needs, validated.

    Sizes are bytes and durations seconds once validated; the config file
    may write them as ``"64MiB"`` and ``"5m"``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    inputs: list[str] = Field(default_factory=list)
    out: Path = DEFAULT_OUT
    format: str | None = None
    timezone: str = "UTC"
    windows: list[str] = Field(default_factory=lambda: DEFAULT_WINDOWS.split(","))
    dimensions: list[str] = Field(default_factory=lambda: list(DEFAULT_DIMENSIONS))
    top_n: int = Field(10, ge=1, le=10_000)
    workers: int | None = Field(None, ge=1, le=1024)
    chunk_bytes: int = Field(64 << 20, alias="chunk_size", ge=1 << 10)
    # 32 MiB (about 150,000 combined lines): larger batches amortize the
    # per-batch work of every stage; measured ~10 % faster than 16 MiB.
    batch_bytes: int = Field(32 << 20, alias="batch_size", ge=1 << 10)
    strict: bool = False
    lateness_s: int = Field(300, alias="lateness", ge=0)
    follow: list[str] = Field(default_factory=list)
    commit_interval_s: float = Field(1.0, alias="commit_interval", gt=0, le=3600)
    commit_bytes: int = Field(16 << 20, alias="commit_size", ge=1 << 10)
    publish_interval_s: float = Field(0.03, alias="publish_interval", gt=0, le=60)
    #: The publish interval stretches up to this at low rates to save CPU
    #: (docs/streaming.md); set it to publish_interval for a fixed rhythm.
    max_publish_interval_s: float = Field(
        1.0, alias="max_publish_interval", gt=0, le=60
    )
    exit_when_idle_s: float | None = Field(None, alias="exit_when_idle", gt=0)
    # Kafka consumer mode (logweir run --source kafka://...): see docs/kafka.md
    source: str | None = None
    group: str | None = None
    consumer_id: str | None = None
    detect: DetectSettings = Field(
        default_factory=lambda: DetectSettings.model_validate({})
    )
    alerts: AlertSettings = Field(
        default_factory=lambda: AlertSettings.model_validate({})
    )
    report: ReportSettings = Field(
        default_factory=lambda: ReportSettings.model_validate({})
    )
    serve: ServeConfig = Field(default_factory=lambda: ServeConfig.model_validate({}))
    #: ``--stats PATH``: throughput, CPU, memory and latency as JSON at exit.
    stats: str | None = None

    @field_validator("inputs", "follow", "windows", "dimensions", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("windows")
    @classmethod
    def _windows(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give at least one window, e.g. 1m")
        try:
            parse_windows(",".join(value))
        except LogweirError as error:
            raise ValueError(str(error)) from None
        return value

    @field_validator("dimensions")
    @classmethod
    def _dimensions(cls, value: list[str]) -> list[str]:
        try:
            split_dimensions(value)
        except ConfigError as error:
            raise ValueError(str(error)) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            return check_timezone(value)
        except ConfigError as error:
            raise ValueError(str(error)) from None

    @field_validator("format")
    @classmethod
    def _format(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("is empty; omit it to detect the format")
        return value

    @field_validator(
        "commit_interval_s",
        "publish_interval_s",
        "max_publish_interval_s",
        "exit_when_idle_s",
        mode="before",
    )
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_seconds(value)
        return value

    @field_validator("chunk_bytes", "batch_bytes", "commit_bytes", mode="before")
    @classmethod
    def _sizes(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_size_bytes(value)
        return value

    @field_validator("lateness_s", mode="before")
    @classmethod
    def _lateness(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return parse_duration(value, what="lateness")
            except ConfigError as error:
                raise ValueError(str(error)) from None
        return value

    @property
    def worker_count(self) -> int:
        """``workers``, or one per two cores of this machine when not given.

        One worker keeps two cores busy on its own: its reading, parsing,
        writing and aggregating threads overlap, and Polars runs each step
        on every core. On two cores a second worker process made a run
        10-15 % slower (contention, and one more state to merge), so the
        default gives each worker two cores; every core still works.
        """
        return self.workers or max(1, (os.cpu_count() or 1) // 2)


def _key_name(location: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in location)


def _describe(error: ErrorDetails) -> str:
    """One validation error as the words after ``key:``."""
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    message = error["msg"]
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    value = error.get("input")
    if isinstance(value, str | int | float | bool):
        shown = f'"{value}"' if isinstance(value, str) else repr(value)
        message = f"{message}, got {shown}"
    return message


_FIELD_NAMES = {
    name: (field.alias or name) for name, field in RunConfig.model_fields.items()
}


def _known_keys() -> str:
    return ", ".join(sorted(_FIELD_NAMES.values()))


def _config_error(
    error: ValidationError, file_keys: set[str], config_path: Path | None
) -> ConfigError:
    first = error.errors()[0]
    location = first["loc"]
    key = _key_name(location)
    top = str(location[0]) if location else ""
    if config_path is not None and top in file_keys:
        where = f"{config_path.name}: {key}"
    else:
        where = f"--{key.replace('_', '-')}"
    why = _describe(first)
    if first["type"] == "extra_forbidden" and len(location) == 1:
        why = f"unknown key (known: {_known_keys()})"
    return ConfigError(f"{where}: {why}")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ConfigError(f"{path}: cannot read config file: {reason}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path.name}: not valid TOML: {error}") from None


def _anchor_paths(values: dict[str, Any], base: Path) -> dict[str, Any]:
    """Read the file's relative paths from the file's own folder."""
    anchored = dict(values)
    for key in ("inputs", "follow"):
        inputs = anchored.get(key)
        if isinstance(inputs, str):
            inputs = _split_list(inputs)
        if isinstance(inputs, list):
            anchored[key] = [
                item if not isinstance(item, str) or item == "-" else str(base / item)
                for item in inputs
            ]
    out = anchored.get("out")
    if isinstance(out, str):
        anchored["out"] = str(base / out)
    stats = anchored.get("stats")
    if isinstance(stats, str):
        anchored["stats"] = str(base / stats)
    report = anchored.get("report")
    if isinstance(report, dict) and isinstance(report.get("html"), str):
        anchored["report"] = {**report, "html": str(base / report["html"])}
    return anchored


def load_config(
    config_path: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> RunConfig:
    """Build a :class:`RunConfig` from a TOML file and flag ``overrides``.

    ``overrides`` holds the flags the user gave (keys as in the file, or the
    field names); ``None`` values mean "not given" and are ignored. Raises
    :class:`ConfigError` with one line naming the file or flag and the key.
    """
    values: dict[str, Any] = {}
    if config_path is not None:
        values = _anchor_paths(_read_toml(config_path), config_path.parent)
    file_keys = set(values)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        file_key = _FIELD_NAMES.get(key, key)
        if file_key == "detect" and isinstance(value, Mapping):
            merged = dict(values.get("detect") or {})
            merged.update(value)
            value = merged
        values[file_key] = value
        if not (file_key == "detect" and file_key in file_keys):
            file_keys.discard(file_key)
    try:
        return RunConfig.model_validate(values)
    except ValidationError as error:
        raise _config_error(error, file_keys, config_path) from None


__all__ = [
    "DEFAULT_OUT",
    "AlertSettings",
    "DetectSettings",
    "ReportSettings",
    "RunConfig",
    "load_config",
    "parse_seconds",
    "parse_size_bytes",
]
