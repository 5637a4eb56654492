"""``logweir serve``: the dashboard, JSON API and /metrics over an output folder.

Examples::

    logweir serve --out out                  # http://127.0.0.1:8080/
    logweir serve --out out --addr 127.0.0.1:9000 --enable-sql
    LOGWEIR_TOKEN=s3cret logweir serve --out out --addr 0.0.0.0:8080

The store is opened read-only. Listening on an address other than
loopback needs a token (--token, or LOGWEIR_TOKEN so that it stays out of
the process list); clients send it as "Authorization: Bearer TOKEN", and
a browser opens the dashboard once as /?token=TOKEN. The SQL endpoint
(POST /api/sql) is off unless --enable-sql. A store that a running
pipeline in another process holds open cannot be read (DuckDB allows one
writer and no other reader): use logweir run --follow --serve instead.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logweir.cli import plain_doc
from logweir.pipeline import DEFAULT_OUT

if TYPE_CHECKING:
    from logweir.pipeline.stream import StreamPipeline
    from logweir.serve import ServeSettings

TOKEN_ENV = "LOGWEIR_TOKEN"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="serve the dashboard, JSON API and /metrics over an output folder",
        description=plain_doc(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--out", type=Path, default=DEFAULT_OUT, help="output folder of logweir run")
    add("--addr", default="127.0.0.1:8080", help="HOST:PORT (default 127.0.0.1:8080)")
    add("--token", help=f"token clients must send (default: ${TOKEN_ENV})")
    add_sql_flags(parser)
    parser.set_defaults(handler=handle)


def add_sql_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The SQL endpoint's flags."""
    add = parser.add_argument
    add("--enable-sql", action="store_true", help="turn on POST /api/sql")
    add(
        "--sql-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="longest a query may run (default 5)",
    )
    add(
        "--sql-rows",
        type=int,
        default=10_000,
        metavar="N",
        help="most rows a query returns (default 10000)",
    )


def settings_from(args: argparse.Namespace, token: str | None) -> ServeSettings:
    from logweir.errors import ConfigError
    from logweir.serve import ServeSettings

    if not args.sql_timeout > 0:
        raise ConfigError(
            f"--sql-timeout: give seconds above 0, not {args.sql_timeout}"
        )
    if args.sql_rows < 1:
        raise ConfigError(f"--sql-rows: give 1 or more, not {args.sql_rows}")
    return ServeSettings(
        token=token,
        sql_enabled=bool(args.enable_sql),
        sql_timeout_s=float(args.sql_timeout),
        sql_max_rows=int(args.sql_rows),
    )


def handle(args: argparse.Namespace) -> int:
    # Imported here: FastAPI and uvicorn need not load for other commands.
    from dataclasses import replace

    from logweir.serve import StoreReader, check_bind, create_app, parse_addr
    from logweir.serve.server import loopback_hosts, serve_forever

    address = parse_addr(args.addr)
    token = args.token or os.environ.get(TOKEN_ENV) or None
    check_bind(address, token)
    settings = replace(
        settings_from(args, token), allowed_hosts=loopback_hosts(address)
    )
    reader = StoreReader.open(args.out)
    try:
        app = create_app(reader, settings=settings)
        serve_forever(
            app,
            address,
            lambda: print(
                f"logweir: serving {args.out} on {address.url()}", flush=True
            ),
        )
    finally:
        reader.close()
    return 0


def follow_hook(
    args: argparse.Namespace,
) -> Callable[[StreamPipeline], None] | None:
    """For ``logweir run --follow --serve ADDR``: what starts the server.

    Checks the address and token now, before the pipeline starts; gives
    ``None`` without ``--serve``. The server reads the pipeline's own store
    through cursors and serves its metrics; it stops (and its reader waits
    for running queries) before the pipeline closes the store.
    """
    if not getattr(args, "serve", None):
        return None
    import sys

    from logweir.serve import (
        BackgroundServer,
        ServeSettings,
        StoreReader,
        check_bind,
        create_app,
        parse_addr,
    )
    from logweir.serve.server import loopback_hosts

    address = parse_addr(args.serve)
    token = args.serve_token or os.environ.get(TOKEN_ENV) or None
    check_bind(address, token)
    # run's parser may not have the SQL limit flags (add_sql_flags): defaults
    defaults = ServeSettings()
    settings = ServeSettings(
        token=token,
        sql_enabled=bool(args.enable_sql),
        sql_timeout_s=float(getattr(args, "sql_timeout", defaults.sql_timeout_s)),
        sql_max_rows=int(getattr(args, "sql_rows", defaults.sql_max_rows)),
        allowed_hosts=loopback_hosts(address),
    )

    def start(pipeline: StreamPipeline) -> None:
        reader = StoreReader.attach(pipeline.store, pipeline.out)
        app = create_app(reader, metrics=pipeline.metrics, settings=settings)
        server = BackgroundServer(app, address).start()

        def stop() -> None:
            server.stop()
            reader.close()

        pipeline.before_close.append(stop)
        print(f"logweir: dashboard on {server.url()}", file=sys.stderr, flush=True)

    return start
