"""Run the app under uvicorn on a socket bound here, and stop it gracefully.

SIGTERM or SIGINT (Ctrl-C): uvicorn stops accepting connections, lets the requests in
flight finish (within drain_timeout_s), shuts the app down (the model thread ends), and the
process exits 0.
"""

from __future__ import annotations

import signal
import socket
import sys
from collections.abc import Callable

import uvicorn

from nmt.errors import ConfigError

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free one), or a ConfigError saying why not."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"port={port} is not a TCP port: give 1-65535, or 0 for any free one")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        # proto given: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
        # without it a response's second write waited ~40 ms for the client's delayed ACK
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as err:
        raise ConfigError(
            f"cannot listen on host={host} port={port}: {err.strerror or err}; "
            "pass another port= (or port=0 for any free one) or host="
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def address(sock: socket.socket) -> str:
    """The URL a client reaches the bound socket at."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def run(
    app,
    sock: socket.socket,
    drain_timeout_s: float = 30.0,
    log_level: str = "warning",
    started: Callable[[], None] | None = None,
) -> None:
    """Serve app on sock until SIGTERM/SIGINT; return (exit 0) once in-flight requests ended.

    started, if given, is called once the server accepts connections.
    """
    config = uvicorn.Config(
        app,
        timeout_graceful_shutdown=drain_timeout_s,
        log_level=log_level,
        lifespan="on",
        server_header=False,
    )
    server = _Server(config, started)
    # uvicorn re-raises the signal that stopped it once it has drained, so that the default
    # action runs (death by SIGTERM, KeyboardInterrupt); a handler that returns lets a
    # drained server end as a clean exit instead.
    previous = {sig: signal.signal(sig, _stopped) for sig in _STOP_SIGNALS}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if server.failed:
        raise ConfigError("the server could not start; see the log lines above")


def _stopped(sig: int, frame) -> None:
    print(f"nmt-serve: stopped ({signal.Signals(sig).name})", file=sys.stderr)


class _Server(uvicorn.Server):
    """uvicorn's server, telling the caller when it is up and whether start-up failed."""

    def __init__(self, config: uvicorn.Config, started: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_started = started
        self.failed = True

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started:
            self.failed = False
            if self._on_started is not None:
                self._on_started()
