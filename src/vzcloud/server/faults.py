"""Failures injected into one embedded cloud by tests: off unless a test switches one on.

Every server has its own ``Faults`` (``CloudServer.faults``); a test arms what it needs:

- ``fail(endpoint, status, times, retry_after)``: the next ``times`` calls of an endpoint
  answer ``status`` (with ``Retry-After`` when given) instead of running;
- ``fail_rate(endpoint, rate, status, retry_after)``: each call fails with probability
  ``rate`` (``"*"`` = every endpoint); ``seed()`` makes the draws repeatable;
- ``latency`` (seconds, every request) and ``slow(endpoint, seconds)``;
- ``drop_response(endpoint, after_bytes, times)``: the response's status and headers go
  out, then at most ``after_bytes`` of its body, then the connection is closed;
- ``drop_request(endpoint, after_bytes, times)``: the handler reads at most
  ``after_bytes`` of the request body and then sees the client disconnect (as when the
  network fails mid-upload); the connection is then closed without a usable response;
- ``expire_tokens(account_id=None)``: every access token (of one account) expires now;
- ``fill_disk(free_bytes=0)`` / ``free_disk()``: writes of file content (blobs and upload
  chunks) fail with ENOSPC once ``free_bytes`` more bytes have been written.

A status fault is taken after the request's parameters are validated (a malformed
request still gets its 400) and before the handler runs, so the handler has no effect.

Dropping a connection: ASGI gives an application no way to close a socket without
answering, so a dropped connection is a response whose head is sent without
``Content-Length`` (framed as chunked, so it can never look complete), followed by
``ConnectionDropped``, on which uvicorn closes the connection. Clients see what a network
failure mid-body looks like: ``peer closed connection without sending complete message
body``. ``injected`` counts every fault that fired, by kind.
"""

from __future__ import annotations

import errno
import logging
import random
import threading
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from vzcloud.server import auth

if TYPE_CHECKING:
    from vzcloud.server.store import Store

Message = MutableMapping[str, Any]
ANY_ENDPOINT = "*"


class ConnectionDropped(Exception):
    """Raised inside a response to make the ASGI server close the connection."""


class _HideDroppedConnections(logging.Filter):
    """Keeps the tracebacks of injected connection drops out of the logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionDropped))


_LOG_FILTER = _HideDroppedConnections()
for _name in ("uvicorn.error", "vzcloud.server"):
    logging.getLogger(_name).addFilter(_LOG_FILTER)


@dataclass
class Fault:
    """An error answer in place of the handler's."""

    status: int
    retry_after: float | None = None


@dataclass
class _Rate:
    rate: float
    fault: Fault


@dataclass
class Faults:
    """The faults armed on one server; see the module docstring. Thread-safe."""

    store: Store | None = None
    queued: dict[str, deque[Fault]] = field(default_factory=lambda: defaultdict(deque))
    latency: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    rates: dict[str, _Rate] = field(default_factory=dict)
    slow_endpoints: dict[str, float] = field(default_factory=dict)
    response_drops: dict[str, deque[int]] = field(default_factory=lambda: defaultdict(deque))
    request_drops: dict[str, deque[int]] = field(default_factory=lambda: defaultdict(deque))
    # Bytes of file content that may still be written; None = no limit (the default).
    disk_free: int | None = None
    injected: Counter[str] = field(default_factory=Counter)
    rng: random.Random = field(default_factory=random.Random)

    # Arming ------------------------------------------------------------------------------

    def fail(self, endpoint: str, status: int, times: int = 1,
             retry_after: float | None = None) -> None:
        """The next ``times`` calls of ``endpoint`` answer ``status``."""
        with self.lock:
            for _ in range(times):
                self.queued[endpoint].append(Fault(status, retry_after))

    def fail_rate(self, endpoint: str, rate: float, status: int = 503,
                  retry_after: float | None = None) -> None:
        """Each call of ``endpoint`` (``"*"``: of any endpoint without a rate of its own)
        answers ``status`` with probability ``rate``; a rate of 0 removes the fault."""
        if not 0 <= rate <= 1:
            raise ValueError(f"rate must be between 0 and 1, not {rate}")
        with self.lock:
            if rate == 0:
                self.rates.pop(endpoint, None)
            else:
                self.rates[endpoint] = _Rate(rate, Fault(status, retry_after))

    def seed(self, seed: int) -> None:
        """Make the draws of ``fail_rate`` repeatable."""
        with self.lock:
            self.rng.seed(seed)

    def slow(self, endpoint: str, seconds: float) -> None:
        """Delay every call of ``endpoint`` by ``seconds`` (0 removes the delay)."""
        with self.lock:
            if seconds:
                self.slow_endpoints[endpoint] = seconds
            else:
                self.slow_endpoints.pop(endpoint, None)

    def drop_response(self, endpoint: str, after_bytes: int = 0, times: int = 1) -> None:
        """Close the connection of the next ``times`` calls of ``endpoint`` after their
        response head and at most ``after_bytes`` bytes of body (the handler runs)."""
        with self.lock:
            self.response_drops[endpoint].extend([after_bytes] * times)

    def drop_request(self, endpoint: str, after_bytes: int = 0, times: int = 1) -> None:
        """Cut the request body of the next ``times`` calls of ``endpoint`` after
        ``after_bytes`` bytes: the handler sees the client disconnect, the client sees
        its connection closed."""
        with self.lock:
            self.request_drops[endpoint].extend([after_bytes] * times)

    def fill_disk(self, free_bytes: int = 0) -> None:
        """File content writes fail with ENOSPC once ``free_bytes`` more are written."""
        with self.lock:
            self.disk_free = free_bytes

    def free_disk(self) -> None:
        with self.lock:
            self.disk_free = None

    def expire_tokens(self, account_id: int | None = None) -> None:
        """Every access token of ``account_id`` (None: of every account) expires now."""
        if self.store is None:
            raise RuntimeError("these faults are not attached to a server's store")
        store = self.store
        with store.tx() as db:
            ids = [account_id] if account_id is not None else [
                r[0] for r in db.execute("SELECT id FROM accounts")]
            for one in ids:
                auth.expire_access_tokens(store, one)
        with self.lock:
            self.injected["token_expiry"] += 1

    def clear(self) -> None:
        """Switch every fault off (counts in ``injected`` are kept)."""
        with self.lock:
            self.queued.clear()
            self.rates.clear()
            self.slow_endpoints.clear()
            self.response_drops.clear()
            self.request_drops.clear()
            self.latency = 0.0
            self.disk_free = None

    @property
    def total_injected(self) -> int:
        with self.lock:
            return sum(self.injected.values())

    # Hooks of the router and the blob store ---------------------------------------------

    def delay(self, endpoint: str) -> float:
        """Seconds to wait before handling a call of ``endpoint``."""
        with self.lock:
            seconds = self.latency + self.slow_endpoints.get(endpoint, 0.0)
            if seconds:
                self.injected["latency"] += 1
            return seconds

    def take(self, endpoint: str) -> Fault | None:
        """The status fault for this call of ``endpoint``, if any (queued ones first)."""
        with self.lock:
            q = self.queued.get(endpoint)
            fault = q.popleft() if q else None
            if fault is None:
                rate = self.rates.get(endpoint) or self.rates.get(ANY_ENDPOINT)
                if rate is not None and self.rng.random() < rate.rate:
                    fault = rate.fault
            if fault is not None:
                self.injected[f"status_{fault.status}"] += 1
            return fault

    def check_disk(self, nbytes: int) -> None:
        """Called before ``nbytes`` of file content are written: OSError(ENOSPC) when the
        simulated disk is full."""
        with self.lock:
            if self.disk_free is None:
                return
            if nbytes > self.disk_free:
                self.disk_free = 0
                self.injected["disk_full"] += 1
                raise OSError(errno.ENOSPC, "No space left on device (injected fault)")
            self.disk_free -= nbytes

    def wrap_request(self, endpoint: str, request: Request) -> Request:
        """``request``, or a copy whose body is cut as ``drop_request`` armed."""
        with self.lock:
            q = self.request_drops.get(endpoint)
            if not q:
                return request
            after = q.popleft()
            self.injected["drop_request"] += 1
        return _CutRequest(request, after)

    def wrap_response(self, endpoint: str, request: Request, response: Response) -> Response:
        """``response``, or one that drops the connection (``drop_request`` armed for this
        request, or ``drop_response`` armed for the endpoint)."""
        if isinstance(request, _CutRequest):
            return DroppedResponse(response, after=0)
        with self.lock:
            q = self.response_drops.get(endpoint)
            if not q:
                return response
            after = q.popleft()
            self.injected["drop_response"] += 1
        return DroppedResponse(response, after)


class _CutRequest(Request):
    """A request whose body ends in a client disconnect after ``after`` bytes (or before
    its last piece, if it is shorter), so the handler never sees it complete."""

    def __init__(self, request: Request, after: int) -> None:
        receive = request.receive
        received = 0
        cut = False

        async def cut_receive() -> Message:
            nonlocal received, cut
            if cut:
                return {"type": "http.disconnect"}
            message: Message = dict(await receive())
            if message["type"] != "http.request":
                return message
            body: bytes = message.get("body", b"")
            room = after - received
            if len(body) >= room or not message.get("more_body", False):
                cut = True
                body = body[:max(room, 0)]
                if not body:
                    return {"type": "http.disconnect"}
            received += len(body)
            return {"type": "http.request", "body": body, "more_body": True}

        super().__init__(request.scope, cut_receive)


class DroppedResponse(Response):
    """``inner``'s status and headers (less ``Content-Length``), at most ``after`` bytes of
    its body, then ConnectionDropped: the client never gets a complete response."""

    def __init__(self, inner: Response, after: int) -> None:
        # Not Response.__init__: the body and headers are inner's, sent by inner itself.
        self.inner = inner
        self.after = after
        self.status_code = inner.status_code
        self.background = None
        self.raw_headers = [
            (k, v) for k, v in inner.raw_headers if k.lower() != b"content-length"
        ]

    async def __call__(self, scope: Any, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        sent = 0

        async def cut_send(message: Message) -> None:
            nonlocal sent
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"content-length"]
                await send({**message, "headers": headers})
            elif message["type"] == "http.response.body":
                body: bytes = message.get("body", b"")[:max(self.after - sent, 0)]
                if body:
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                    sent += len(body)
                if sent >= self.after or not message.get("more_body", False):
                    raise ConnectionDropped(f"connection dropped after {sent} body bytes")
            else:
                await send(message)

        await self.inner(scope, receive, cut_send)
        raise ConnectionDropped("connection dropped at the end of the body")
