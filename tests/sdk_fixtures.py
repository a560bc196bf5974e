"""Fixtures of the SDK tests (``test_sdk_*.py``): clients of the real embedded cloud.

- ``make_client(cloud, user, cls=Cloud, **kw)``: a Cloud/AsyncCloud for ``user`` with the
  conftest OAuth client, quick retries (``FAST_RETRY``) and a small chunk threshold.
- ``sdk``: a ``Cloud`` for ``user``.
- ``any_sdk``: parametrized over both clients with one synchronous face: the ``Cloud``
  itself, or an ``AsyncCloud`` living in a trio event loop on its own thread whose
  methods are called through ``trio.from_thread.run``. A test written once with it runs
  every call through both drivers.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trio

from vzcloud import AsyncCloud, Cloud
from vzcloud.sdk.flows import RetryPolicy

from .conftest import Cloud as CloudFixture
from .conftest import User

FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=1.0, max_total=10.0)
SMALL_THRESHOLD = 256 * 1024  # chunked uploads from this size in tests
SMALL_CHUNK = 64 * 1024


def make_client(cloud: CloudFixture, user: User, cls: type[Any] = Cloud, **kwargs: Any) -> Any:
    client = cls(
        cloud.client.client_id, cloud.client.client_secret, cloud.client.redirect_uri,
        kwargs.pop("access_token", user.access_token),
        kwargs.pop("refresh_token", user.refresh_token),
        base_url=cloud.url, **kwargs,
    )
    client.retry = FAST_RETRY
    client.chunk_threshold = SMALL_THRESHOLD
    client.chunk_size = SMALL_CHUNK
    return client


@pytest.fixture
def sdk(cloud: CloudFixture, user: User) -> Iterator[Cloud]:
    with make_client(cloud, user) as client:
        yield client


class AsyncInThread:
    """An AsyncCloud served by a trio loop in a thread, called synchronously.

    Reading a method gives a plain function that runs the coroutine in that loop and
    returns its result (or raises its exception). ``iter_pages`` is collected into a list.
    """

    def __init__(self, client: AsyncCloud) -> None:
        self.client = client
        self._token: trio.lowlevel.TrioToken | None = None
        self._ready = threading.Event()
        self._stop: trio.Event | None = None
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)
        self._thread.start()
        self._ready.wait(10)

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        self._ready.set()
        await self._stop.wait()
        await self.client.aclose()

    def close(self) -> None:
        assert self._stop is not None
        trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(10)

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return trio.from_thread.run(functools.partial(fn, *args, **kwargs),
                                    trio_token=self._token)

    def iter_pages(self, method_name: str, **kwargs: Any) -> list[Any]:
        async def collect() -> list[Any]:
            return [item async for item in self.client.iter_pages(method_name, **kwargs)]
        return self._call(collect)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if not callable(attr) or name in ("authorize_url", "download_url"):
            return attr
        return functools.partial(self._call, attr)


@pytest.fixture(params=["sync", "async"])
def any_sdk(request: pytest.FixtureRequest, cloud: CloudFixture, user: User) -> Iterator[Any]:
    if request.param == "sync":
        with make_client(cloud, user) as client:
            yield client
    else:
        wrapper = AsyncInThread(make_client(cloud, user, AsyncCloud))
        try:
            yield wrapper
        finally:
            wrapper.close()
