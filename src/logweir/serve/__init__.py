"""See it live: the HTTP API, ``/metrics``, the dashboard and the HTML report.

This package sits on top of :mod:`logweir.pipeline` (it reads what the
pipeline writes and serves its metrics); nothing below imports it.
``docs/serve.md`` describes the endpoints and their limits.
"""

from logweir.serve.app import ServeSettings, create_app
from logweir.serve.reader import StoreReader
from logweir.serve.report import write_html_report
from logweir.serve.server import (
    DEFAULT_ADDR,
    Address,
    BackgroundServer,
    check_bind,
    parse_addr,
)

__all__ = [
    "DEFAULT_ADDR",
    "Address",
    "BackgroundServer",
    "ServeSettings",
    "StoreReader",
    "check_bind",
    "create_app",
    "parse_addr",
    "write_html_report",
]
