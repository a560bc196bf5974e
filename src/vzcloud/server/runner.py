"""Run an embedded cloud with uvicorn: in the foreground (``vzcloud serve``) or in a
background thread (tests, the demo). Binding port 0 picks a free port."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from vzcloud.server.app import CloudServer, create_app
from vzcloud.server.config import ServerConfig


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto is
    # IPPROTO_TCP, and without it every response waits ~40 ms (Nagle + delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(256)
    sock.set_inheritable(True)
    return sock


def make_server(
    cloud: CloudServer, log_level: str = "warning", uvicorn_logging: bool = True
) -> uvicorn.Server:
    """A uvicorn server for ``cloud``. ``uvicorn_logging=False`` leaves the logging setup
    to the caller (``vzcloud serve``), so uvicorn's lines look like everyone else's."""
    app = create_app(cloud.config, cloud)
    config = uvicorn.Config(
        app,
        log_level=log_level,
        log_config=uvicorn.config.LOGGING_CONFIG if uvicorn_logging else None,
        # Our router logs each request with secrets redacted; uvicorn's access log would
        # print query strings (access-token=...) as they are.
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
        h11_max_incomplete_event_size=64 * 1024,
    )
    return uvicorn.Server(config)


class BackgroundServer:
    """An embedded cloud served from a thread; ``url`` is its base URL."""

    def __init__(
        self, config: ServerConfig, host: str = "127.0.0.1", port: int = 0, *,
        log_level: str = "warning", uvicorn_logging: bool = True,
    ) -> None:
        self.cloud = CloudServer(config)
        self.sock = bind(host, port)
        h, p = self.sock.getsockname()[:2]
        self.url = f"http://{h}:{p}" if ":" not in h else f"http://[{h}]:{p}"
        self.server = make_server(self.cloud, log_level, uvicorn_logging)
        self.thread = threading.Thread(target=self._run, name="vzcloud-server", daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def start(self) -> BackgroundServer:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the embedded cloud failed to start")
            threading.Event().wait(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
        self.cloud.close()


@contextmanager
def serve_in_background(config: ServerConfig) -> Iterator[BackgroundServer]:
    server = BackgroundServer(config).start()
    try:
        yield server
    finally:
        server.stop()
