"""Run the service with uvicorn: in the foreground, or beside a pipeline.

``logweir serve`` runs :func:`serve_forever` in its main thread; ``logweir
run --follow --serve ADDR`` starts a :class:`BackgroundServer` thread in
the pipeline's process, reading the pipeline's open store through cursors
(:meth:`StoreReader.attach`), and stops it before the store closes.

:func:`check_bind` refuses an address other than loopback unless a token
is set: the API shows what is in the logs (paths, client addresses).
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from logweir.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_ADDR = "127.0.0.1:8080"
LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class Address:
    """Where to listen: a host (name or IP, IPv6 without brackets), a port."""

    host: str
    port: int

    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def loopback(self) -> bool:
        if self.host in LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_addr(text: str) -> Address:
    """``127.0.0.1:8080``, ``[::1]:8080``, ``:8080`` (loopback), ``localhost:0``.

    Raises :class:`ConfigError` naming the address.
    """
    host, sep, port_text = text.strip().rpartition(":")
    if not sep:
        host, port_text = "", text.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(
            f"--addr {text!r}: give HOST:PORT, e.g. {DEFAULT_ADDR}"
        ) from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"--addr {text!r}: port must be 0 to 65535")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(f"--addr {text!r}: not an IPv6 address") from None
    return Address(host, port)


def check_bind(address: Address, token: str | None) -> None:
    """Raise :class:`ConfigError` for a non-loopback address without a token."""
    if not address.loopback and not token:
        raise ConfigError(
            f"listening on {address.host} shows the logs to the network: give a "
            "token (--token or LOGWEIR_TOKEN), or listen on 127.0.0.1"
        )


def loopback_hosts(address: Address) -> list[str] | None:
    """``Host`` headers to accept on a loopback address (None: any).

    A web page the user visits can resolve its own name to 127.0.0.1 (DNS
    rebinding); refusing other Host headers keeps it from reading the API.
    """
    if not address.loopback:
        return None
    hosts = ["127.0.0.1", "localhost", "::1", "[::1]"]
    # any of 127/8 may be listened on; its own name must then be accepted
    own = f"[{address.host}]" if ":" in address.host else address.host
    return hosts if own in hosts else [*hosts, own]


def _config(app: FastAPI, address: Address) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=address.host,
        port=address.port,
        log_level="warning",
        access_log=False,
        # An open alert stream would otherwise hold the shutdown forever.
        timeout_graceful_shutdown=2,
        lifespan="off",
    )


def serve_forever(
    app: FastAPI, address: Address, on_ready: Callable[[], None] | None = None
) -> None:
    """Serve until SIGINT or SIGTERM, then stop cleanly and return.

    ``on_ready`` is called once the socket listens. The server runs in a
    thread (as under ``--serve``) while this one waits for the signal, so
    a stop is an ordinary return, not uvicorn re-raising the signal.
    """
    stop = threading.Event()
    previous = {
        number: signal.signal(number, lambda *_: stop.set())
        for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        with BackgroundServer(app, address):
            if on_ready is not None:
                on_ready()
            stop.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


class BackgroundServer:
    """uvicorn in a daemon thread; :meth:`start` waits until it listens."""

    def __init__(self, app: FastAPI, address: Address) -> None:
        self.address = address
        self._server = uvicorn.Server(_config(app, address))
        self._thread = threading.Thread(
            target=self._server.run, name="logweir-serve", daemon=True
        )

    @property
    def port(self) -> int:
        """The port listened on (the real one when ``0`` was asked)."""
        for server in self._server.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return self.address.port

    def url(self) -> str:
        return Address(self.address.host, self.port).url()

    def start(self, timeout_s: float = 10.0) -> BackgroundServer:
        """Start serving; raise :class:`ConfigError` if it cannot listen."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(
                    f"cannot listen on {self.address.url()} (in use, or not allowed)"
                )
            time.sleep(0.02)
        logger.info("serving the dashboard on %s", self.url())
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the server to finish and wait for its thread."""
        self._server.should_exit = True
        self._thread.join(timeout_s)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
