"""``AsyncCloud``: the same methods as ``Cloud``, async, on httpx.AsyncClient.

Runs under trio (and asyncio) through anyio: sleeps are ``anyio.sleep``, blocking work
(reading, hashing and writing local files, a plain ``on_refreshed``) goes to
``anyio.to_thread``, and ``Gather`` runs flows in a task group bounded by a semaphore.
Every task it starts belongs to the task group of the call that started it; nothing
outlives a call. Block fetches (``fetch_range``) and the requests of a small upload from
memory (the intent, and the content POST when its body is ``bytes``: ``LEAN_ENDPOINTS``)
are sent by ``vzcloud.sdk.lean`` instead of httpx (a fraction of its CPU per request);
every other request, and any whose body is a file or stream, by httpx.

Concurrency contract: tasks of one event loop may share an ``AsyncCloud``. Token
refreshes are serialised by ``_refresh_lock`` (an anyio lock, so one AsyncCloud belongs
to one event loop) and coalesced: tasks refused with the same old token wait for one
refresh and retry with its result (``flows.refresh_flow``).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import httpx

from vzcloud.api.models import Token
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
    AsyncClient,
    is_success,
    to_response,
    transport_failure,
)
from vzcloud.sdk.lean import LeanHttp
from vzcloud.sdk.methods import AsyncRunner, SeedMethods, pager
from vzcloud.sdk.transfer import BLOCK, FileSlice

T = TypeVar("T")

# Endpoints whose unstreamed requests go through the lean transport when it takes them
# (``LeanHttp.usable``): the many small ones of the mount's reads and small uploads.
LEAN_ENDPOINTS = frozenset({"download", "upload_intent", "upload"})


class AsyncCloud(AsyncRunner, SeedMethods):
    """``Cloud`` with async methods (``await cloud.account()``); same constructor.

    ``on_refreshed`` may be a coroutine function (awaited) or a plain function (run in a
    worker thread, so it may block, e.g. to save the tokens to a file).
    ``authorize_url`` and ``download_url`` do no I/O and stay plain methods.
    Use ``async with``, or ``await aclose()``.
    """

    def _open(self) -> None:
        self._refresh_lock = anyio.Lock()
        self._http = AsyncClient(timeout=DEFAULT_TIMEOUT, limits=DEFAULT_LIMITS)
        # Block fetches and small uploads (``LEAN_ENDPOINTS``) skip httpx: see ``sdk.lean``.
        self._lean: LeanHttp | None = LeanHttp(connect_timeout=DEFAULT_TIMEOUT.connect or 15.0,
                                               timeout=DEFAULT_TIMEOUT.read or 120.0)

    # Lifecycle ------------------------------------------------------------------------------

    async def aclose(self) -> None:
        if self._lean is not None:
            self._lean.close()
        await self._http.aclose()

    async def __aenter__(self) -> AsyncCloud:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def iter_pages(self, method_name: str, **kwargs: Any) -> AsyncIterator[Any]:
        """Every item of a paged method, page after page (see ``Cloud.iter_pages``)."""
        walk = pager(method_name)
        method = getattr(self, method_name)
        args: dict[str, Any] | None = dict(kwargs)
        while args is not None:
            result = await method(**args)
            items = walk.items(result)
            for item in items:
                yield item
            args = walk.next_kwargs(args, result, items)

    # The driver -----------------------------------------------------------------------------

    async def _run(self, flow: Flow[T]) -> T:
        """Drive ``flow`` to its result (see ``Cloud._run``)."""
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
                    value = await self._execute(instr, opened)
                except Exception as exc:
                    error = exc
        finally:
            flow.close()
            with anyio.CancelScope(shield=True):
                for resp in opened:
                    await resp.aclose()

    async def _execute(self, instr: Instruction, opened: list[httpx.Response]) -> Any:
        if isinstance(instr, Send):
            return await self._send(instr, opened)
        if isinstance(instr, Sleep):
            await anyio.sleep(instr.seconds)
            return None
        if isinstance(instr, Refresh):
            async with self._refresh_lock:
                return await self._run(refresh_flow(self._session, instr.stale))
        if isinstance(instr, Blocking):
            return await anyio.to_thread.run_sync(instr.fn)
        if isinstance(instr, Copy):
            return await self._copy(instr, opened)
        if isinstance(instr, Gather):
            return await self._gather(instr)
        if isinstance(instr, Notify):
            await self._notify(instr.token)
            return None
        raise TypeError(f"unknown instruction {instr!r}")

    async def _notify(self, token: Token) -> None:
        callback = self.on_refreshed
        if callback is None:
            return
        if inspect.iscoroutinefunction(callback):
            await callback(token)
            return
        result = await anyio.to_thread.run_sync(callback, token)
        if inspect.isawaitable(result):
            await result

    async def _send(self, instr: Send, opened: list[httpx.Response]) -> Any:
        req = instr.request
        if (self._lean is not None and not instr.stream and req.endpoint in LEAN_ENDPOINTS
                and LeanHttp.usable(req)):
            return await self._lean.send(req)
        content: Any = req.content
        if isinstance(content, FileSlice):
            content = _blocks(content)
        request = self._http.build_request(req.method, req.url, headers=req.headers,
                                           content=content)
        try:
            resp = await self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            return transport_failure(exc, req)
        if instr.stream and is_success(resp.status_code):
            opened.append(resp)
            return to_response(resp, stream=resp)
        try:
            return to_response(resp, await resp.aread())
        except httpx.TransportError as exc:
            return transport_failure(exc, req)
        finally:
            await resp.aclose()

    async def _copy(self, instr: Copy, opened: list[httpx.Response]) -> Any:
        resp: httpx.Response = instr.response.stream
        try:
            total = 0
            async for data in resp.aiter_bytes(instr.block):
                await anyio.to_thread.run_sync(instr.write, data)
                total += len(data)
                if instr.progress is not None:
                    instr.progress(len(data))
            return total
        except httpx.TransportError as exc:
            return transport_failure(exc)
        finally:
            with anyio.CancelScope(shield=True):
                await resp.aclose()
            if resp in opened:
                opened.remove(resp)

    async def _gather(self, instr: Gather) -> list[Any]:
        """Run the flows concurrently, at most ``instr.limit`` at a time. The first
        failure cancels the others and is raised as itself (not an ExceptionGroup)."""
        results: list[Any] = [None] * len(instr.flows)
        slots = anyio.Semaphore(instr.limit)

        async def run_one(index: int, flow: Flow[Any]) -> None:
            async with slots:
                results[index] = await self._run(flow)

        try:
            async with anyio.create_task_group() as tg:
                for index, flow in enumerate(instr.flows):
                    tg.start_soon(run_one, index, flow)
        except BaseExceptionGroup as group:
            raise _first_error(group) from None
        return results


def _first_error(group: BaseExceptionGroup[Any]) -> BaseException:
    """The first real error in a (nested) exception group, skipping cancellations."""
    cancelled = anyio.get_cancelled_exc_class()
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_error(exc)
        if not isinstance(exc, cancelled):
            return exc
    return group


async def _blocks(body: FileSlice) -> AsyncIterator[bytes]:
    """The body of a FileSlice, one block at a time, read in a worker thread."""
    pos = 0
    while pos < body.length:
        data = await anyio.to_thread.run_sync(body.read, pos, BLOCK)
        pos += len(data)
        yield data
        body.sent(pos)
