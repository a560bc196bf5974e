"""``Cloud``: the seed's synchronous client, driving the shared flows with httpx.Client.

Thread safety: one ``Cloud`` may be used from several threads at once (httpx.Client is
thread-safe). Token refreshes are serialised by ``_refresh_lock`` and coalesced: threads
whose requests were refused with the same old token wait for one refresh and retry with
its result (``flows.refresh_flow``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any, TypeVar

import httpx

from vzcloud.sdk.flows import (
    Blocking,
    Copy,
    Flow,
    Gather,
    Instruction,
    Notify,
    Refresh,
    Send,
    Sleep,
    refresh_flow,
)
from vzcloud.sdk.http import (
    DEFAULT_LIMITS,
    DEFAULT_TIMEOUT,
    is_success,
    to_response,
    transport_failure,
)
from vzcloud.sdk.methods import SeedMethods, SyncRunner, pager
from vzcloud.sdk.transfer import BLOCK, FileSlice

T = TypeVar("T")


class Cloud(SyncRunner, SeedMethods):
    """The Personal Cloud Storage client of the Python SDK v1.5, one per user.

    ``client_key``/``client_secret``/``callback_url`` identify the OAuth client;
    ``access_token``/``refresh_token`` let it start making calls at once;
    ``on_refreshed(token)`` is called with every rotated Token (persist it: a refresh
    token works once). ``base_url`` picks the server (default: the real service).
    Use it as a context manager, or call ``close()``.
    """

    def _open(self) -> None:
        self._refresh_lock = threading.Lock()
        self._http = httpx.Client(timeout=DEFAULT_TIMEOUT, limits=DEFAULT_LIMITS)

    # Lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Cloud:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def iter_pages(self, method_name: str, **kwargs: Any) -> Iterator[Any]:
        """Every item of a paged method (contacts, playlists, playlist_items, search,
        trash, shares), fetching page after page from the one ``kwargs`` describe."""
        walk = pager(method_name)
        method = getattr(self, method_name)
        args: dict[str, Any] | None = dict(kwargs)
        while args is not None:
            result = method(**args)
            items = walk.items(result)
            yield from items
            args = walk.next_kwargs(args, result, items)

    # The driver -----------------------------------------------------------------------------

    def _run(self, flow: Flow[T]) -> T:
        """Drive ``flow`` to its result: execute each instruction and send back what it
        gave. An exception of an instruction is thrown into the flow; streamed responses
        left open by a failing flow are closed."""
        opened: list[httpx.Response] = []
        value: Any = None
        error: Exception | None = None
        try:
            while True:
                try:
                    instr = flow.send(value) if error is None else flow.throw(error)
                except StopIteration as stop:
                    return stop.value
                value, error = None, None
                try:
                    value = self._execute(instr, opened)
                except Exception as exc:
                    error = exc
        finally:
            flow.close()
            for resp in opened:
                resp.close()

    def _execute(self, instr: Instruction, opened: list[httpx.Response]) -> Any:
        if isinstance(instr, Send):
            return self._send(instr, opened)
        if isinstance(instr, Sleep):
            time.sleep(instr.seconds)
            return None
        if isinstance(instr, Refresh):
            with self._refresh_lock:
                return self._run(refresh_flow(self._session, instr.stale))
        if isinstance(instr, Blocking):
            return instr.fn()
        if isinstance(instr, Copy):
            return self._copy(instr, opened)
        if isinstance(instr, Gather):
            return [self._run(f) for f in instr.flows]
        if isinstance(instr, Notify):
            if self.on_refreshed is not None:
                self.on_refreshed(instr.token)
            return None
        raise TypeError(f"unknown instruction {instr!r}")

    def _send(self, instr: Send, opened: list[httpx.Response]) -> Any:
        req = instr.request
        content: Any = req.content
        if isinstance(content, FileSlice):
            content = _blocks(content)
        request = self._http.build_request(req.method, req.url, headers=req.headers,
                                           content=content)
        try:
            resp = self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            return transport_failure(exc, req)
        if instr.stream and is_success(resp.status_code):
            opened.append(resp)
            return to_response(resp, stream=resp)
        try:
            return to_response(resp, resp.read())
        except httpx.TransportError as exc:
            return transport_failure(exc, req)
        finally:
            resp.close()

    def _copy(self, instr: Copy, opened: list[httpx.Response]) -> Any:
        resp: httpx.Response = instr.response.stream
        try:
            total = 0
            for data in resp.iter_bytes(instr.block):
                instr.write(data)
                total += len(data)
                if instr.progress is not None:
                    instr.progress(len(data))
            return total
        except httpx.TransportError as exc:
            return transport_failure(exc)
        finally:
            resp.close()
            if resp in opened:
                opened.remove(resp)


def _blocks(body: FileSlice) -> Iterator[bytes]:
    """The body of a FileSlice, one block at a time (re-created for every attempt)."""
    pos = 0
    while pos < body.length:
        data = body.read(pos, BLOCK)
        pos += len(data)
        yield data
        body.sent(pos)

