"""The HTTP service: JSON API, live alerts, ``/metrics`` and the dashboard.

:func:`create_app` builds a FastAPI app over a :class:`StoreReader`:

=========================  ==============================================
``GET /``                  the dashboard (refreshes itself twice a second)
``GET /api/health``        liveness and what is being served
``GET /api/sizes``         window sizes and dimensions in the store
``GET /api/windows``       window rows by size, time range, dimension, key
``GET /api/top``           top paths, clients or user agents over a range
``GET /api/alerts``        incidents, latest state, oldest first
``GET /api/alerts/stream`` the same as server-sent events, as they change
``POST /api/sql``          read-only SQL (off unless ``sql_enabled``)
``GET /metrics``           the pipeline's Prometheus metrics
``GET /openapi.json``      the OpenAPI description of the API
=========================  ==============================================

Safety: a ``token`` makes every route but ``/api/health`` ask for it
(``Authorization: Bearer T``, or the cookie the dashboard sets after
``/?token=T``); request bodies over :data:`MAX_BODY_BYTES` are refused
with 413; static files are served by Starlette's ``StaticFiles``, which
refuses paths that leave its folder; ``allowed_hosts`` turns away other
``Host`` headers (against DNS rebinding to a loopback server). The
interactive ``/docs`` pages are off: they load scripts from a CDN.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as clock_time
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
import orjson
import polars as pl
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import StreamingResponse

from logweir import __version__
from logweir.pipeline.metrics import PipelineMetrics, new_registry
from logweir.serve import data
from logweir.serve.reader import ReaderClosed, StoreReader
from logweir.serve.render import dashboard_page, panels_html
from logweir.serve.sql import MAX_SQL_CHARS, QueryRefused, run_readonly

logger = logging.getLogger(__name__)

#: Largest request body accepted (the SQL endpoint's is the only body).
MAX_BODY_BYTES = 64 * 1024
TOKEN_COOKIE = "logweir_token"
#: Pages and fragments may load only this server's own scripts and styles.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class ServeSettings:
    """How the service behaves; :func:`create_app` takes one."""

    token: str | None = None
    sql_enabled: bool = False
    sql_timeout_s: float = 5.0
    sql_max_rows: int = 10_000
    allowed_hosts: list[str] | None = None
    #: How often the alert stream looks for changes.
    stream_poll_s: float = 0.5
    stream_keepalive_s: float = 15.0


# -- response models (they make the OpenAPI description) -------------------


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    live: bool
    sql_enabled: bool


class SizeOut(BaseModel):
    size_s: int
    step_s: int
    dimensions: list[str]
    first_start: datetime | None
    last_end: datetime | None
    windows: int


class TopEntry(BaseModel):
    key: str
    count: int


class WindowRow(BaseModel):
    window_size_s: int
    window_step_s: int
    window_start: datetime
    window_end: datetime
    dimension: str
    key: str
    requests: int
    bytes: int
    status_1xx: int
    status_2xx: int
    status_3xx: int
    status_4xx: int
    status_5xx: int
    error_rate: float | None
    duration_p50_ms: float | None
    duration_p95_ms: float | None
    duration_p99_ms: float | None
    unique_clients: int
    top_paths: list[TopEntry]
    top_clients: list[TopEntry]
    top_user_agents: list[TopEntry]


class WindowsOut(BaseModel):
    size_s: int
    step_s: int
    dimension: str
    rows: list[WindowRow]


class TopOut(BaseModel):
    kind: str
    size_s: int | None
    windows: int
    first_start: datetime | None
    last_end: datetime | None
    entries: list[TopEntry]
    exact: Literal[False] = False


class AlertOut(BaseModel):
    id: str
    status: str
    rule: str
    series: str | None
    key: str | None
    detector: str | None
    severity: str
    start: datetime | None
    end: datetime | None
    window_start: datetime | None
    window_end: datetime | None
    value: float | None
    baseline: float | None
    spread: float | None
    score: float | None
    windows: int | None
    message: str
    detail: dict[str, Any]


class SqlIn(BaseModel):
    sql: str = Field(min_length=1, max_length=MAX_SQL_CHARS)
    max_rows: int | None = Field(None, ge=1, le=100_000)


class SqlColumn(BaseModel):
    name: str
    type: str


class SqlOut(BaseModel):
    columns: list[SqlColumn]
    rows: list[list[Any]]
    truncated: bool
    elapsed_ms: float


class ErrorOut(BaseModel):
    detail: str


_ERRORS: dict[int | str, dict[str, Any]] = {400: {"model": ErrorOut}}


# -- helpers ----------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # sum() of integers gives HUGEINT, which arrives as a Decimal
        if value == value.to_integral_value() and abs(value) < 2**63:
            return int(value)
        return float(value) if value.is_finite() else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, datetime | date | clock_time):
        return value.isoformat()
    return str(value)


def _json(content: Any, status_code: int = 200) -> Response:
    body = orjson.dumps(
        content,
        default=_json_default,
        option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY,
    )
    return Response(body, status_code=status_code, media_type="application/json")


def _tops(value: str | None) -> list[dict[str, Any]]:
    return list(orjson.loads(value)) if value else []


def _window_records(rows: pl.DataFrame) -> list[dict[str, Any]]:
    records = rows.to_dicts()
    for record in records:
        for column in ("top_paths", "top_clients", "top_user_agents"):
            record[column] = _tops(record[column])
    return records


def _alert_records(rows: pl.DataFrame) -> list[dict[str, Any]]:
    records = rows.to_dicts()
    for record in records:
        text = record.get("detail")
        try:
            record["detail"] = orjson.loads(text) if text else {}
        except orjson.JSONDecodeError:
            record["detail"] = {"text": text}
        if not isinstance(record["detail"], dict):
            record["detail"] = {"value": record["detail"]}
    return records


def _utc(moment: datetime | None) -> datetime | None:
    """``moment`` in UTC; 422 when it has no UTC equivalent (year 1 at
    +01:00 is before the first representable instant)."""
    if moment is None:
        return None
    try:
        return data.utc(moment)
    except (OverflowError, ValueError):
        raise HTTPException(
            422, f"time {moment.isoformat()} is out of range in UTC"
        ) from None


def _utc_range(
    start: datetime | None, end: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """Both ends in UTC (so that naive and aware times compare), checked."""
    start, end = _utc(start), _utc(end)
    if start is not None and end is not None and end < start:
        raise HTTPException(400, "end is before start")
    return start, end


# -- middleware ----------------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Guard:
    """Token check, body size limit and security headers, as ASGI middleware.

    The body is read up to :data:`MAX_BODY_BYTES` before the app sees it, so
    a too-large body is refused whole, chunked or not.
    """

    OPEN_PATHS = frozenset({"/api/health"})

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        guarded = self.token is not None and scope["path"] not in self.OPEN_PATHS
        if guarded and not self._authorized(scope):
            await _plain(send, 401, b"a token is needed (Authorization: Bearer T)")
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"0")
        try:
            too_big = int(declared) > MAX_BODY_BYTES
        except ValueError:
            too_big = True
        if too_big:
            await _plain(send, 413, b"request body too large")
            return
        body = bytearray()
        if scope["method"] in ("POST", "PUT", "PATCH"):
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body.extend(message.get("body", b""))
                more = bool(message.get("more_body"))
                if len(body) > MAX_BODY_BYTES:
                    await _plain(send, 413, b"request body too large")
                    return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if scope["method"] in ("POST", "PUT", "PATCH") and not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                    (b"content-security-policy", CSP.encode()),
                ]
                message["headers"] = list(message.get("headers") or []) + extra
            await send(message)

        await self.app(scope, replay, secured)

    def _authorized(self, scope: Scope) -> bool:
        assert self.token is not None
        expected = self.token.encode()
        for name, value in scope.get("headers") or []:
            bearer = name == b"authorization" and value[:7].lower() == b"bearer "
            if bearer and hmac.compare_digest(value[7:].strip(), expected):
                return True
            if name == b"cookie":
                for part in value.split(b";"):
                    key, _, given = part.strip().partition(b"=")
                    if key == TOKEN_COOKIE.encode() and hmac.compare_digest(
                        given, expected
                    ):
                        return True
        if scope["path"] == "/":
            query = scope.get("query_string", b"").decode("latin-1")
            for part in query.split("&"):
                key, _, given = part.partition("=")
                if key == "token" and hmac.compare_digest(given.encode(), expected):
                    return True
        return False


async def _plain(send: Send, status: int, text: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(text)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": text})


# -- the app -------------------------------------------------------------------


def create_app(
    reader: StoreReader,
    *,
    metrics: PipelineMetrics | None = None,
    settings: ServeSettings | None = None,
) -> FastAPI:
    """The service over ``reader``; ``metrics`` is what ``/metrics`` shows.

    Without ``metrics`` (``logweir serve`` over a finished run), ``/metrics``
    shows a fresh registry: this process has processed nothing.
    """
    settings = settings or ServeSettings()
    registry = (metrics or new_registry()).registry
    app = FastAPI(
        title="logweir",
        version=__version__,
        description="Windows, top lists and alerts of a logweir output folder.",
        docs_url=None,
        redoc_url=None,
    )
    static = resources.files("logweir.serve") / "static"
    app.mount("/static", StaticFiles(directory=Path(str(static))), name="static")

    @app.exception_handler(QueryRefused)
    async def refused(request: Request, error: QueryRefused) -> Response:
        logger.info("sql query refused: %s", error)
        return JSONResponse({"detail": str(error)}, status_code=400)

    @app.exception_handler(ReaderClosed)
    async def closing(request: Request, error: ReaderClosed) -> Response:
        return JSONResponse({"detail": str(error)}, status_code=503)

    @app.get("/api/health", response_model=Health, tags=["service"])
    def health() -> Any:
        """Whether the service is up; open even when a token is set."""
        return {
            "status": "ok",
            "version": __version__,
            "live": reader.live,
            "sql_enabled": settings.sql_enabled,
        }

    @app.get("/api/sizes", response_model=list[SizeOut], tags=["windows"])
    def sizes() -> Any:
        """Every window size and step in the store, with its dimensions."""
        with reader.cursor() as cursor:
            found = data.window_sizes(cursor)
        return _json([info.__dict__ for info in found])

    @app.get(
        "/api/windows", response_model=WindowsOut, responses=_ERRORS, tags=["windows"]
    )
    def windows(
        size_s: Annotated[
            int | None, Query(ge=1, le=10**9, description="default: the smallest")
        ] = None,
        step_s: Annotated[int | None, Query(ge=1, le=10**9)] = None,
        dimension: Annotated[str, Query(max_length=200)] = "all",
        key: Annotated[str | None, Query(max_length=2000)] = None,
        start: Annotated[
            datetime | None, Query(description="window start at or after")
        ] = None,
        end: Annotated[
            datetime | None, Query(description="window start before")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
    ) -> Any:
        """Window rows, oldest first: the latest ``limit`` rows in the range."""
        start, end = _utc_range(start, end)
        with reader.cursor() as cursor:
            if size_s is None:
                size_s = data.default_size(data.window_sizes(cursor)) or 60
            rows = data.read_windows(
                cursor,
                size_s=size_s,
                step_s=step_s,
                dimension=dimension,
                key=key,
                start=start,
                end=end,
                limit=limit,
            )
        return _json(
            {
                "size_s": size_s,
                "step_s": step_s or size_s,
                "dimension": dimension,
                "rows": _window_records(rows),
            }
        )

    @app.get("/api/top", response_model=TopOut, responses=_ERRORS, tags=["windows"])
    def top(
        kind: data.TopKind = "paths",
        size_s: Annotated[int | None, Query(ge=1, le=10**9)] = None,
        start: datetime | None = None,
        end: datetime | None = None,
        n: Annotated[int, Query(ge=1, le=1000)] = 10,
    ) -> Any:
        """The heaviest keys over a range, summed from each window's top list.

        Lower bounds, not exact counts (see the docs); ``exact`` says so.
        """
        start, end = _utc_range(start, end)
        with reader.cursor() as cursor:
            if size_s is None:
                size_s = data.default_size(data.window_sizes(cursor))
            if size_s is None:
                rows = pl.DataFrame()
            else:
                rows = data.read_windows(
                    cursor, size_s=size_s, start=start, end=end, limit=10**6
                )
        column = data.TOP_COLUMNS[kind]
        entries = data.top_entries(rows[column].to_list(), n) if rows.height else []
        return _json(
            {
                "kind": kind,
                "size_s": size_s,
                "windows": rows.height,
                "first_start": rows["window_start"].min() if rows.height else None,
                "last_end": rows["window_end"].max() if rows.height else None,
                "entries": entries,
                "exact": False,
            }
        )

    @app.get(
        "/api/alerts", response_model=list[AlertOut], responses=_ERRORS, tags=["alerts"]
    )
    def alerts(
        status: Literal["open", "resolved"] | None = None,
        since: Annotated[
            datetime | None, Query(description="incidents open or ended since")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> Any:
        """Incidents in their latest state, oldest first (the latest ``limit``)."""
        with reader.cursor() as cursor:
            rows = data.read_alerts(
                cursor, status=status, since=_utc(since), limit=limit
            )
        return _json(_alert_records(rows))

    @app.get(
        "/api/alerts/stream",
        tags=["alerts"],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def alert_stream(request: Request) -> StreamingResponse:
        """Server-sent events: every incident now, then each change (``alert``).

        An incident is sent again whenever its state changes (opened,
        updated, resolved); the event ``id`` is the incident id.
        """
        return StreamingResponse(
            _alert_events(reader, settings, request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.post(
        "/api/sql",
        response_model=SqlOut,
        responses={**_ERRORS, 403: {"model": ErrorOut}},
        tags=["sql"],
    )
    def sql(body: SqlIn) -> Any:
        """Run one read-only SELECT over ``events``, ``windows``, ``alerts``, ``runs``.

        Off unless the server was started with SQL enabled. Time and row
        limits apply; ``truncated`` says rows were cut.
        """
        if not settings.sql_enabled:
            raise HTTPException(
                403, "the SQL endpoint is off (start with --enable-sql)"
            )
        max_rows = min(body.max_rows or settings.sql_max_rows, settings.sql_max_rows)
        result = run_readonly(
            reader, body.sql, timeout_s=settings.sql_timeout_s, max_rows=max_rows
        )
        return _json(
            {
                "columns": [{"name": n, "type": t} for n, t in result.columns],
                "rows": result.rows,
                "truncated": result.truncated,
                "elapsed_ms": round(result.elapsed_ms, 3),
            }
        )

    @app.get(
        "/metrics",
        tags=["service"],
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}},
    )
    def metrics_text() -> Response:
        """The pipeline's metrics in Prometheus' text format."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard(
        request: Request,
        size_s: Annotated[int | None, Query(ge=1, le=10**9)] = None,
        points: Annotated[int, Query(ge=2, le=2000)] = 120,
        token: str | None = None,
    ) -> Response:
        if token is not None and settings.token is not None:
            # The token came in the link; keep it in a cookie, out of the URL.
            response = RedirectResponse("./", status_code=303)
            response.set_cookie(
                TOKEN_COOKIE, token, httponly=True, samesite="strict", path="/"
            )
            return response
        query = f"points={points}" + (f"&size_s={size_s}" if size_s else "")
        panels = _panels(reader, size_s, points)
        return HTMLResponse(dashboard_page(panels, f"dashboard/panels?{query}"))

    @app.get("/dashboard/panels", response_class=HTMLResponse, include_in_schema=False)
    def panels(
        size_s: Annotated[int | None, Query(ge=1, le=10**9)] = None,
        points: Annotated[int, Query(ge=2, le=2000)] = 120,
    ) -> Response:
        return HTMLResponse(
            _panels(reader, size_s, points), headers={"Cache-Control": "no-store"}
        )

    if settings.allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)
    app.add_middleware(Guard, token=settings.token)
    return app


def _panels(reader: StoreReader, size_s: int | None, points: int) -> str:
    with reader.cursor() as cursor:
        view = data.overview(cursor, size_s=size_s, points=points)
    return panels_html(view)


async def _alert_events(
    reader: StoreReader, settings: ServeSettings, request: Request
) -> AsyncIterator[str]:
    """Poll the alerts table; yield each incident whose state changed."""

    def read() -> list[dict[str, Any]]:
        with reader.cursor() as cursor:
            return _alert_records(data.read_alerts(cursor, limit=10_000))

    sent: dict[str, bytes] = {}
    yield "retry: 2000\n\n"
    quiet_since = time.monotonic()
    while not await request.is_disconnected():
        for record in await anyio.to_thread.run_sync(read):
            text = orjson.dumps(record, default=_json_default)
            if sent.get(record["id"]) == text:
                continue
            sent[record["id"]] = text
            quiet_since = time.monotonic()
            yield f"id: {record['id']}\nevent: alert\ndata: {text.decode()}\n\n"
        if time.monotonic() - quiet_since > settings.stream_keepalive_s:
            quiet_since = time.monotonic()
            yield ": keep-alive\n\n"
        await anyio.sleep(settings.stream_poll_s)
