"""A lean HTTP/1.1 transport for AsyncCloud's small requests: block fetches
(``fetch_range``; the mount reads every block it does not have cached with it) and the
two requests of a small upload (the upload intent and the content POST of a file held in
memory).

Why: a small ranged GET through httpx cost the caller ~1.4 ms of CPU (measured under
trio, 8 in flight: httpx's client, auth and redirect layers, httpcore's pool and
connection, h11's event machinery, trio's socket wrappers), more than half of what the
mount spent on a tiny file read cold; through this transport it costs ~0.3 ms, and a
4 MiB range less than half of httpx's CPU. It sends the same ``HttpRequest`` (built by
``vzcloud.api.protocol``: the flow, its retries and token refresh are unchanged) on a
kept-alive non-blocking socket and parses the response with httptools (llhttp, the C
parser the server uses too): the framing is llhttp's, this module only moves bytes and
decides what it accepts (parsing a small response costs ~13 µs of CPU).

Scope: requests without a body or with a body held in memory (``bytes`` of at most
``MAX_BODY``, sent with ``Content-Length`` right after the head: no streaming, no
``Expect: 100-continue``), whose response is read whole into memory. What it does not
handle it refuses up front (``usable``: a streamed body goes through httpx) or reports
as a ``TransportFailure``; the flow (``vzcloud.sdk.flows.call_flow``) then decides, as
for httpx's failures, whether to retry. Responses: ``Content-Length`` or chunked bodies,
or a body up to the connection's close; interim (1xx) responses are skipped, an upgrade
(101) is refused; no content coding is asked for (``Accept-Encoding: identity``), and a
coded body or a transfer coding other than chunked is refused. A head still incomplete
after ``MAX_HEAD`` bytes is refused; bytes after a response (other than blank lines,
which llhttp skips) keep its connection from being reused. TLS (``https``) uses the
``ssl`` module on the same non-blocking socket.

Concurrency contract: one ``LeanHttp`` belongs to one event loop (trio or asyncio,
waiting through anyio; its connections share one receive buffer, each receive parsed
before the next await). Connections are opened as needed (the caller bounds how many
requests run at once) and at most ``MAX_IDLE`` per origin are kept. A connection is
used by one request at a time: it is taken from the idle list, and put back only after
its response was read whole; a request that fails or is cancelled closes its
connection. A kept-alive connection the server closed meanwhile is detected before
reuse (it reads as closed). Should it break anyway once taken, the request is sent once
more on a new connection only if that is safe: no byte of it had left (the socket
accepted none), or the endpoint is idempotent (``Endpoint.idempotent``) and no byte of
the answer came. Otherwise the failure says the request may have reached the server
(``reached_server``), and the flow retries only an idempotent endpoint, as after httpx's
failures.
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

import anyio
import httptools
import httpx

from vzcloud.api import errors as E
from vzcloud.api.endpoints import BY_NAME
from vzcloud.api.protocol import HttpRequest, HttpResponse
from vzcloud.sdk.flows import CONNECT_FAILED, TransportFailure

RECV_SIZE = 1 << 20  # bytes asked of the socket at a time (one buffer per LeanHttp)
MAX_HEAD = 64 << 10  # bytes of status line and headers, at most
MAX_IDLE = 16  # kept-alive connections per origin
# Largest request body taken (bigger ones go through httpx, which streams them). Sent
# whole before the answer is read, so it should fit the socket buffers: a server that
# answers early (a 401 before reading the body) and closes may otherwise reset the
# connection under a body still being sent, losing its answer.
MAX_BODY = 1 << 20
SEND_WHOLE = 64 << 10  # a body up to this size goes out in one send with the head


class _Broken(Exception):
    """The connection cannot go on (closed, reset, a malformed response)."""


class _Closed(_Broken):
    """The server ended the stream (an orderly close)."""


class _Connection:
    """One socket (plain, or TLS on top) and the httptools (llhttp) parser of the
    responses on it. The connection is the parser's protocol: the ``on_*`` callbacks
    collect the response being read."""

    def __init__(self, sock: socket.socket | ssl.SSLSocket, recv_buf: memoryview) -> None:
        self.sock = sock
        # Shared by the LeanHttp's connections: each receive is parsed before the next
        # await (one event loop), and recv_into into it allocates nothing per call.
        self.recv_buf = recv_buf
        self.parser = httptools.HttpResponseParser(self)
        self.sent_any = False  # the socket accepted a byte of the current request
        self.received_any = False  # a byte of the current response came
        self._start()

    def _start(self) -> None:
        """Forget the previous response (the parser is at a message boundary)."""
        self.headers: dict[str, str] = {}
        self.parts: list[bytes] = []
        self.head_done = False  # the final (non-1xx) response's headers are in
        self.done = False  # ... and its body
        self.keep_alive = False
        self.refusal: _Broken | None = None  # why a callback stopped the parser

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def alive(self) -> bool:
        """An idle connection the server has not closed (nothing to read on it)."""
        try:
            self.sock.recv(1)
        except (BlockingIOError, ssl.SSLWantReadError):
            return True  # nothing (TLS: only a session ticket, say): still open
        except (OSError, ssl.SSLError):
            return False
        return False  # closed (b"") or an unexpected byte: not reusable

    async def send_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = self.sock.send(view)
            except (BlockingIOError, ssl.SSLWantWriteError):
                await anyio.wait_writable(self.sock)
                continue
            except ssl.SSLWantReadError:
                await anyio.wait_readable(self.sock)
                continue
            except (OSError, ssl.SSLError) as exc:
                raise _Broken(f"send failed: {exc}") from exc
            if sent:
                self.sent_any = True
            view = view[sent:]

    async def _receive(self) -> int:
        """Receive into ``recv_buf``: how many bytes (0 at the end of the stream)."""
        while True:
            try:
                return self.sock.recv_into(self.recv_buf)
            except (BlockingIOError, ssl.SSLWantReadError):
                await anyio.wait_readable(self.sock)
            except ssl.SSLWantWriteError:
                await anyio.wait_writable(self.sock)
            except (OSError, ssl.SSLError) as exc:
                raise _Broken(f"receive failed: {exc}") from exc

    async def read_response(self) -> tuple[HttpResponse, bool]:
        """The next response, read whole, and whether the connection may be reused.
        Interim (1xx) responses are skipped."""
        self._start()
        head_bytes = 0  # received while the head was incomplete (interim ones included)
        extra = False  # bytes beyond the response: the stream cannot be trusted
        while not self.done:
            got = await self._receive()
            if not got:
                if self.head_done and "content-length" not in self.headers \
                        and "transfer-encoding" not in self.headers:
                    break  # a body delimited by the close: whole
                raise _Closed("connection closed by the server")
            self.received_any = True
            try:
                self.parser.feed_data(self.recv_buf[:got])
            except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
                if self.refusal is not None:
                    raise self.refusal from None
                if not self.done:
                    raise _Broken(f"malformed response: {exc}") from None
                extra = True
            if not self.head_done:
                head_bytes += got
                if head_bytes > MAX_HEAD:
                    raise _Broken("response head too long")
        body = b"".join(self.parts)  # one part: no copy
        response = HttpResponse(status=self.parser.get_status_code(), headers=self.headers,
                                content=body)
        return response, self.done and self.keep_alive and not extra

    # httptools callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.done:  # the start of another response nobody asked for: stop there
            raise _Broken("bytes beyond the response")

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1").strip(" \t")
        headers = self.headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        parser = self.parser
        if parser.get_status_code() < 200:
            return
        if not parser.get_http_version().startswith("1."):
            self._refuse(f"unexpected HTTP version {parser.get_http_version()}")
        coding = self.headers.get("content-encoding", "identity").strip().lower()
        if coding not in ("", "identity"):
            self._refuse(f"unexpected content coding {coding!r}")
        transfer = self.headers.get("transfer-encoding", "chunked").strip().lower()
        if transfer != "chunked":
            self._refuse(f"unsupported transfer coding {transfer!r}")
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        self.parts.append(body)

    def on_message_complete(self) -> None:
        if self.parser.get_status_code() < 200:
            self.headers = {}  # an interim response's: the final one follows
            return
        self.done = True
        self.keep_alive = self.parser.should_keep_alive()

    def _refuse(self, why: str) -> None:
        self.refusal = _Broken(why)
        raise self.refusal


def _failure(request: HttpRequest, what: str, *, reached_server: bool) -> TransportFailure:
    error = E.NetworkError(f"{what} ({request.method} {request.endpoint})",
                           error="network_error" if reached_server else CONNECT_FAILED)
    return TransportFailure(error=error, reached_server=reached_server)


class LeanHttp:
    """Kept-alive connections per origin and ``send`` (see the module docstring)."""

    def __init__(self, connect_timeout: float = 15.0, timeout: float = 120.0) -> None:
        self.connect_timeout = connect_timeout
        self.timeout = timeout  # for the whole exchange once connected
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._recv_buf = memoryview(bytearray(RECV_SIZE))  # see _Connection

    @staticmethod
    def usable(request: HttpRequest) -> bool:
        """Whether ``send`` takes this request (else send it another way): no body or
        one in memory of at most ``MAX_BODY`` bytes, an http(s) URL."""
        body = request.content
        return ((body is None or (isinstance(body, bytes) and len(body) <= MAX_BODY))
                and request.url.startswith(("http://", "https://")))

    async def send(self, request: HttpRequest) -> HttpResponse | TransportFailure:
        """The whole response to ``request``, or the failure that kept it from coming."""
        parts = urlsplit(request.url)
        scheme, host = parts.scheme, parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        body = request.content
        if body is not None and not isinstance(body, bytes):
            raise TypeError("LeanHttp sends only bodies held in memory (see usable)")
        head = _head(request.method, target, parts.netloc, request.headers, body)
        if head is None:
            return _failure(request, "header value with a line break", reached_server=False)
        if body and len(body) <= SEND_WHOLE:
            head, body = head + body, None  # one send, one segment
        idempotent = _idempotent(request)
        origin = (scheme, host, port)
        for attempt in (0, 1):
            conn = self._take(origin) if attempt == 0 else None
            reused = conn is not None
            if conn is None:
                try:
                    conn = await self._connect(scheme, host, port)
                except (OSError, ssl.SSLError, TimeoutError) as exc:
                    return _failure(request, f"cannot connect to {host}:{port}: {exc}",
                                    reached_server=False)
            try:
                with anyio.fail_after(self.timeout):
                    await conn.send_all(head)
                    if body:
                        await conn.send_all(body)
                    response, reusable = await conn.read_response()
            except _Broken as exc:
                conn.close()
                if reused and (not conn.sent_any or (idempotent and not conn.received_any)):
                    continue  # the server had closed the idle connection: a new one
                return _failure(request, str(exc), reached_server=conn.sent_any)
            except TimeoutError:
                conn.close()
                return _failure(request, f"no answer within {self.timeout:g} s",
                                reached_server=conn.sent_any)
            except BaseException:
                conn.close()  # cancelled halfway: the stream is out of step
                raise
            if reusable:
                self._put(origin, conn)
            else:
                conn.close()
            return response
        raise AssertionError("unreachable")

    def _take(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if conn.alive():
                conn.sent_any = conn.received_any = False
                return conn
            conn.close()
        return None

    def _put(self, origin: tuple[str, str, int], conn: _Connection) -> None:
        idle = self._idle.setdefault(origin, [])
        if len(idle) >= MAX_IDLE:
            conn.close()
        else:
            idle.append(conn)

    async def _connect(self, scheme: str, host: str, port: int) -> _Connection:
        with anyio.fail_after(self.connect_timeout):
            sock = await _open_socket(host, port)
        if scheme != "https":
            return _Connection(sock, self._recv_buf)
        try:
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context()  # the trust httpx would use
            sock = self._ssl.wrap_socket(sock, server_hostname=host,
                                         do_handshake_on_connect=False)
            with anyio.fail_after(self.connect_timeout):
                while True:
                    try:
                        sock.do_handshake()
                        break
                    except ssl.SSLWantReadError:
                        await anyio.wait_readable(sock)
                    except ssl.SSLWantWriteError:
                        await anyio.wait_writable(sock)
        except BaseException:
            sock.close()
            raise
        return _Connection(sock, self._recv_buf)

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


async def _open_socket(host: str, port: int) -> socket.socket:
    """A connected non-blocking TCP socket to the first address of ``host`` that
    answers."""
    failure: OSError = OSError(f"no address for {host}")
    for family, kind, proto, _, address in await anyio.getaddrinfo(
            host, port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                sock.connect(address)
            except BlockingIOError:
                await anyio.wait_writable(sock)
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    raise OSError(code, os.strerror(code)) from None
            return sock
        except OSError as exc:
            sock.close()
            failure = exc
        except BaseException:
            sock.close()
            raise
    raise failure


def _idempotent(request: HttpRequest) -> bool:
    """Whether sending ``request`` twice is safe: its endpoint's word, else its method's
    (RFC 9110)."""
    endpoint = BY_NAME.get(request.endpoint)
    if endpoint is not None:
        return endpoint.idempotent
    return request.method in ("GET", "HEAD", "OPTIONS", "PUT", "DELETE")


def _head(method: str, target: str, host: str, headers: Mapping[str, str],
          body: bytes | None = None) -> bytes | None:
    """Request line and headers (``Content-Length`` from ``body``: also 0 for a method
    that expects a body), or None if a value would break the framing."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Accept-Encoding: identity"]
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    for name, value in headers.items():
        low = name.lower()
        if low in ("host", "accept-encoding", "content-length", "transfer-encoding",
                   "connection"):
            continue
        lines.append(f"{name}: {value}")
    if any("\r" in line or "\n" in line for line in lines):
        return None
    text = "\r\n".join(lines)
    try:
        return (text + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        return None

