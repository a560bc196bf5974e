"""Retries against the real server with injected faults (``cloud.server.cloud.faults``)
and against a port nobody listens on."""

from __future__ import annotations

import socket
import time

import pytest

from vzcloud import AsyncCloud, Cloud, CloudError
from vzcloud.api import errors as E
from vzcloud.sdk.flows import RetryPolicy

from . import sdk_fixtures
from .conftest import Cloud as CloudFixture
from .conftest import User
from .sdk_fixtures import FAST_RETRY, make_client

sdk = sdk_fixtures.sdk  # the fixture, used by name


def left(cloud: CloudFixture, endpoint: str) -> int:
    """Faults still queued for ``endpoint``."""
    faults = cloud.server.cloud.faults
    with faults.lock:
        return len(faults.queued.get(endpoint, ()))


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_idempotent_calls_are_retried(cloud: CloudFixture, user: User, sdk: Cloud,
                                      status: int) -> None:
    cloud.server.cloud.faults.fail("account", status, times=2, retry_after=0)
    assert sdk.account().id == user.user_id
    assert left(cloud, "account") == 0


def test_backoff_without_retry_after(cloud: CloudFixture, user: User, sdk: Cloud) -> None:
    cloud.server.cloud.faults.fail("metadata", 502, times=3)
    assert sdk.metadata("/").folders
    assert left(cloud, "metadata") == 0


def test_gives_up_after_max_attempts(cloud: CloudFixture, sdk: Cloud) -> None:
    cloud.server.cloud.faults.fail("account", 503, times=10, retry_after=0)
    with pytest.raises(E.ServiceUnavailableError) as info:
        sdk.account()
    assert info.value.status == 503 and isinstance(info.value, CloudError)
    assert left(cloud, "account") == 10 - FAST_RETRY.max_attempts


def test_retry_after_is_honoured(cloud: CloudFixture, user: User, sdk: Cloud) -> None:
    cloud.server.cloud.faults.fail("account", 503, times=1, retry_after=1)
    started = time.monotonic()
    assert sdk.account().id == user.user_id
    assert time.monotonic() - started >= 1.0


def test_a_retry_after_beyond_the_bound_gives_up_at_once(cloud: CloudFixture, sdk: Cloud) -> None:
    cloud.server.cloud.faults.fail("account", 429, times=1, retry_after=3600)
    started = time.monotonic()
    with pytest.raises(E.RateLimitedError) as info:
        sdk.account()
    assert info.value.retry_after == 3600
    assert time.monotonic() - started < 1.0


def test_total_time_is_bounded(cloud: CloudFixture, sdk: Cloud) -> None:
    sdk.retry = RetryPolicy(max_attempts=100, base_delay=0.01, max_delay=1.0,
                                     max_total=1.5)
    cloud.server.cloud.faults.fail("account", 503, times=100, retry_after=1)
    started = time.monotonic()
    with pytest.raises(E.ServiceUnavailableError):
        sdk.account()
    assert time.monotonic() - started < 2.5
    assert left(cloud, "account") == 98  # two tries fit in 1.5 s with 1 s between them


def test_non_idempotent_calls_are_not_retried_on_http_errors(cloud: CloudFixture,
                                                             sdk: Cloud) -> None:
    sdk.create_folder("/VZMOBILE/a")
    cloud.server.cloud.faults.fail("copy", 503, times=2, retry_after=0)
    with pytest.raises(E.ServiceUnavailableError):
        sdk.copy("/VZMOBILE/a", "/VZMOBILE/b")
    assert left(cloud, "copy") == 1
    with pytest.raises(E.ServiceUnavailableError):
        sdk.copy("/VZMOBILE/a", "/VZMOBILE/b")
    assert sdk.copy("/VZMOBILE/a", "/VZMOBILE/b").path == "/VZMOBILE/b"


def test_errors_that_are_never_retried(cloud: CloudFixture, sdk: Cloud) -> None:
    cloud.server.cloud.faults.fail("account", 500, times=2)
    with pytest.raises(E.ServerError):
        sdk.account()
    assert left(cloud, "account") == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_refused_is_retried_then_raised(cloud: CloudFixture, user: User) -> None:
    with Cloud("id", "secret", "http://127.0.0.1:9/cb", "token",
               base_url=f"http://127.0.0.1:{_closed_port()}") as sdk:
        sdk.retry = FAST_RETRY
        for call in (sdk.account, lambda: sdk.create_folder("/VZMOBILE/x")):
            started = time.monotonic()
            with pytest.raises(E.NetworkError) as info:
                call()
            assert info.value.status is None and info.value.error == "connect_failed"
            assert time.monotonic() - started < 5


@pytest.mark.trio
async def test_async_retries(cloud: CloudFixture, user: User) -> None:
    async with make_client(cloud, user, AsyncCloud) as sdk:
        cloud.server.cloud.faults.fail("account", 503, times=2, retry_after=0)
        assert (await sdk.account()).id == user.user_id
        cloud.server.cloud.faults.fail("account", 503, times=10, retry_after=0)
        with pytest.raises(E.ServiceUnavailableError):
            await sdk.account()
        assert left(cloud, "account") == 10 - FAST_RETRY.max_attempts
