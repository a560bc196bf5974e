"""Run an embedded cloud with uvicorn: in the foreground (``vzcloud serve``) or in a
background thread (tests, the demo). Binding port 0 picks a free port.

HTTP is parsed by httptools (uvicorn's C parser; h11 cost ~20% more server CPU per small
request), through ``CloudHttpProtocol``, which answers a request it cannot parse with
our JSON error body instead of uvicorn's plain-text 400, and has each response's head
sent together with its body (``HeadWithBodyTransport``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from vzcloud.api import errors as E
from vzcloud.server.app import CloudServer, create_app, error_response
from vzcloud.server.config import ServerConfig

log = logging.getLogger("vzcloud.server")

# The request line and headers of one request, at most (431 beyond).
MAX_HEAD_BYTES = 1024 * 1024
# httptools cannot split a longer URL (16-bit offsets); httpx sends none either. A 400,
# not a 414: it is a malformed request like any other the parser refuses.
MAX_URL_BYTES = 65535


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


class CloudHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with three changes: a request the parser refuses gets
    its status and our JSON error body (rendered by ``app.error_response``, as every
    other error is) and the connection closes; and a URL over ``MAX_URL_BYTES`` or a
    request line plus headers over ``MAX_HEAD_BYTES`` is refused (400, 431) before it is
    all buffered (httptools itself has no limit); and a response's head waits for its
    body (``HeadWithBodyTransport``).

    An error found while an earlier request on the connection is still being answered
    (pipelining) waits until that answer and any pipelined ones are sent, so it is never
    taken for their response.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # Of the request whose head is being parsed: the bytes of its complete fields,
        # and of the chunks received entirely inside it.
        self.head_field_bytes = 0
        self.head_chunk_bytes = 0
        self.head_open = False  # between on_message_begin and on_headers_complete
        self.messages_begun = 0
        self.deferred_error: E.CloudError | None = None

    def data_received(self, data: bytes) -> None:
        if self.deferred_error is not None:
            return  # the parser has failed; the error goes out after the answers owed
        self._unset_keepalive_if_required()
        messages_before = self.messages_begun
        head_was_open = self.head_open
        try:
            self.parser.feed_data(data)
            if head_was_open and self.head_open and self.messages_begun == messages_before:
                # The whole chunk went into a head still incomplete, maybe into one long
                # header that httptools buffers without calling on_header yet.
                self.head_chunk_bytes += len(data)
                self._check_head()
        except httptools.HttpParserUpgrade:
            # We speak no protocol to upgrade to; the request is served as plain HTTP.
            self._unsupported_upgrade_warning()
        except httptools.HttpParserError as exc:
            self._refuse(self._parse_error(exc))
        except E.HeaderFieldsTooLargeError as exc:
            self._refuse(exc)

    @staticmethod
    def _parse_error(exc: httptools.HttpParserError) -> E.CloudError:
        # An exception raised in a parser callback (ours or uvicorn's) reaches us as the
        # context of an HttpParserCallbackError.
        cause = exc.__context__
        if isinstance(cause, E.CloudError):
            return cause
        if isinstance(cause, UnicodeDecodeError):
            return E.BadRequestError("malformed HTTP request: the URL path is not ASCII")
        if cause is None or isinstance(cause, httptools.HttpParserError):
            detail = str(cause or exc) or "invalid URL"
        else:
            detail = "invalid request line or headers"
        return E.BadRequestError(f"malformed HTTP request: {detail}")

    def _refuse(self, err: E.CloudError) -> None:
        log.info("refused an unparseable request: %s", err.description)
        cycle = self.cycle  # the request parsed last (maybe queued in the pipeline)
        if self.pipeline or (cycle is not None and not cycle.response_complete
                             and not cycle.more_body):
            # Earlier requests, complete, are owed their answers first.
            self.deferred_error = err
            self.flow.pause_reading()
        elif cycle is not None and cycle.response_started and not cycle.response_complete:
            self.transport.close()  # the failing request's answer is under way already
        else:
            self._send_error(err)  # answers the failing request (its app sees a disconnect)

    def _send_error(self, err: E.CloudError) -> None:
        response = error_response(err)
        content = [STATUS_LINE[response.status_code]]
        for name, value in [*self.server_state.default_headers, *response.raw_headers]:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend([b"connection: close\r\n\r\n", bytes(response.body)])
        self.transport.write(b"".join(content))
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        # Only data_received's own failures call this upstream; kept for any other caller.
        self._refuse(E.BadRequestError(f"malformed HTTP request: {msg}"))

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.deferred_error is not None and not self.pipeline and (
                self.cycle is None or self.cycle.response_complete):
            if not self.transport.is_closing():
                self._send_error(self.deferred_error)

    def _check_head(self) -> None:
        # Both counts only ever undercount the head, so the larger is the better guess.
        if max(self.head_field_bytes, self.head_chunk_bytes) > MAX_HEAD_BYTES:
            raise E.HeaderFieldsTooLargeError(
                f"the request line and headers are over {MAX_HEAD_BYTES} bytes")

    # Parser callbacks (an exception raised here stops the parser; see _parse_error)
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.messages_begun += 1
        self.head_field_bytes = self.head_chunk_bytes = 0
        self.head_open = True

    def on_url(self, url: bytes) -> None:
        self.head_field_bytes += len(url)
        if len(self.url) + len(url) > MAX_URL_BYTES:
            raise E.BadRequestError(
                f"malformed HTTP request: the URL is over {MAX_URL_BYTES} bytes")
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_field_bytes += len(name) + len(value) + 4  # ": " and CRLF
        self._check_head()
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.head_open = False
        parsed_before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not parsed_before and cycle.scope["method"] != "HEAD":
            # Its task has not run yet, so the cycle writes nothing before this.
            cycle.transport = HeadWithBodyTransport(self.transport)  # type: ignore[assignment]


class HeadWithBodyTransport:
    """The transport as one response cycle sees it: the response head (status line and
    headers, its first write) is held back and sent with the first body bytes, so a
    small response leaves in one send and one TCP segment instead of two (with
    TCP_NODELAY each write goes out at once, and the client wakes up for each).

    Not for HEAD requests, whose responses write no body. A ``100 Continue`` passes
    straight through; closing sends whatever is held first.
    """

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head_written = False
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        if not self._head_written and not data.startswith(b"HTTP/1.1 100 "):
            self._head_written = True
            self._held = data
            return
        if self._held is not None:
            data, self._held = self._held + data, None
        self._transport.write(data)

    def close(self) -> None:
        if self._held is not None:
            self._transport.write(self._held)
            self._held = None
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> object:
        return getattr(self._transport, name)


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
        http=CloudHttpProtocol,
        ws="none",  # no endpoint speaks WebSocket
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
