"""OAuth through the SDK: the authorization-code flow, refresh on 401 with rotation and
``on_refreshed``, coalesced concurrent refreshes (threads and trio tasks), profiles."""

from __future__ import annotations

import html
import logging
import re
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import trio

from vzcloud import AsyncCloud, Cloud, Token, UnauthorizedError
from vzcloud import profiles as P
from vzcloud.server.auth import expire_access_tokens

from .conftest import Cloud as CloudFixture
from .conftest import User
from .sdk_fixtures import make_client


def sign_in(authorize_url: str, username: str, password: str) -> str:
    """What the user's browser does with the SDK's authorize_url; returns the code."""
    with httpx.Client(headers={"Accept": "text/html"}) as browser:
        page = browser.get(authorize_url)
        assert page.status_code == 200, page.text
        fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text))
        form = {k: html.unescape(v) for k, v in fields.items()}
        form.update(username=username, password=password, decision="allow")
        done = browser.post(authorize_url.split("?")[0], data=form)
    assert done.status_code == 302, done.text
    return parse_qs(urlsplit(done.headers["location"]).query)["code"][0]


def refused(caplog: pytest.LogCaptureFixture) -> int:
    """How many requests the server answered 401 (from its access log)."""
    return sum(1 for r in caplog.records
               if r.name == "vzcloud.server.access" and " -> 401 (" in r.getMessage())


def expire(cloud: CloudFixture, user: User) -> None:
    account = cloud.server.cloud.store.account_by_username(user.username)
    assert account is not None
    expire_access_tokens(cloud.server.cloud.store, account.id)


def test_authorization_code_flow(cloud: CloudFixture, user: User) -> None:
    with Cloud(cloud.client.client_id, cloud.client.client_secret,
               cloud.client.redirect_uri, base_url=cloud.url) as sdk:
        url = sdk.authorize_url()
        query = parse_qs(urlsplit(url).query)
        assert query == {"client_id": [cloud.client.client_id], "response_type": ["code"],
                         "redirect_uri": [cloud.client.redirect_uri]}
        code = sign_in(url, user.username, user.password)
        token = sdk.token(auth_code=code)
        assert isinstance(token, Token) and token.access_token and token.refresh_token
        assert sdk.access_token == token.access_token
        assert sdk.account().id == user.user_id
        with pytest.raises(UnauthorizedError):
            sdk.token(code)  # single use
        with pytest.raises(UnauthorizedError):
            sdk.token("not-a-code")


def test_refresh_on_401_rotates_and_notifies(cloud: CloudFixture, user: User) -> None:
    seen: list[Token] = []
    with make_client(cloud, user, on_refreshed=seen.append) as sdk:
        expire(cloud, user)
        assert sdk.account().id == user.user_id
        assert len(seen) == 1
        assert seen[0].access_token == sdk.access_token != user.access_token
        assert seen[0].refresh_token == sdk.refresh_token != user.refresh_token
        # The old refresh token was spent: presenting it again is refused.
        r = httpx.post(cloud.api + "/oauth2/token", data={
            "grant_type": "refresh_token", "refresh_token": user.refresh_token,
            "client_id": cloud.client.client_id, "client_secret": cloud.client.client_secret})
        assert r.status_code == 401


def test_explicit_refresh(cloud: CloudFixture, user: User) -> None:
    seen: list[Token] = []
    with make_client(cloud, user, on_refreshed=seen.append) as sdk:
        token = sdk.refresh()
        assert seen == [token] and sdk.refresh_token == token.refresh_token
        assert sdk.account().id == user.user_id
    with make_client(cloud, user, refresh_token=None) as sdk:
        with pytest.raises(UnauthorizedError):
            sdk.refresh()


def test_a_second_401_is_raised_after_one_refresh(cloud: CloudFixture, user: User) -> None:
    seen: list[Token] = []
    with make_client(cloud, user, on_refreshed=seen.append) as sdk:
        cloud.server.cloud.faults.fail("account", 401, times=2)
        with pytest.raises(UnauthorizedError):
            sdk.account()
        assert len(seen) == 1
        assert sdk.account().id == user.user_id  # the refreshed token works


def test_a_refused_refresh_token_is_never_presented_twice(cloud: CloudFixture, user: User) -> None:
    seen: list[Token] = []
    with make_client(cloud, user, refresh_token="wrong", on_refreshed=seen.append) as sdk:
        expire(cloud, user)
        for _ in range(2):
            with pytest.raises(UnauthorizedError):
                sdk.account()
        assert seen == [] and sdk._session.refreshes == 0


def test_concurrent_401s_in_threads_share_one_refresh(
    cloud: CloudFixture, user: User, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vzcloud.server.access")
    seen: list[Token] = []
    with make_client(cloud, user, on_refreshed=seen.append) as sdk:
        sdk.account()  # warm the connection pool
        expire(cloud, user)
        cloud.server.cloud.faults.latency = 0.1  # the 401s overlap
        start = threading.Barrier(8)
        results: list[Any] = []

        def call() -> None:
            start.wait()
            try:
                results.append(sdk.account().id)
            except Exception as exc:  # collected and checked below
                results.append(exc)

        threads = [threading.Thread(target=call) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert results == [user.user_id] * 8
        assert len(seen) == 1 and sdk._session.refreshes == 1
        assert refused(caplog) >= 2


@pytest.mark.trio
async def test_concurrent_401s_in_trio_tasks_share_one_refresh(
    cloud: CloudFixture, user: User, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vzcloud.server.access")
    seen: list[Token] = []

    async def on_refreshed(token: Token) -> None:
        await trio.lowlevel.checkpoint()
        seen.append(token)

    async with make_client(cloud, user, AsyncCloud, on_refreshed=on_refreshed) as sdk:
        await sdk.account()
        expire(cloud, user)
        cloud.server.cloud.faults.latency = 0.1
        results: list[str] = []

        async def call() -> None:
            results.append((await sdk.account()).id)

        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(call)
        assert results == [user.user_id] * 8
        assert len(seen) == 1 and sdk._session.refreshes == 1
        assert refused(caplog) >= 2


@pytest.mark.trio
async def test_async_refresh_with_a_plain_callback(cloud: CloudFixture, user: User) -> None:
    seen: list[Token] = []
    async with make_client(cloud, user, AsyncCloud, on_refreshed=seen.append) as sdk:
        expire(cloud, user)
        assert (await sdk.account()).id == user.user_id
        assert [t.access_token for t in seen] == [sdk.access_token]
        with pytest.raises(UnauthorizedError):
            await sdk.token("not-a-code")


@pytest.mark.parametrize("cls", [Cloud, AsyncCloud])
def test_from_profile_saves_rotated_tokens(
    cloud: CloudFixture, user: User, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cls: type
) -> None:
    monkeypatch.setenv("VZCLOUD_CONFIG_DIR", str(tmp_path / "config"))
    P.save(P.Profile(name="work", server=cloud.url, client_id=cloud.client.client_id,
                     client_secret=cloud.client.client_secret,
                     redirect_uri=cloud.client.redirect_uri, access_token=user.access_token,
                     refresh_token=user.refresh_token))
    P.set_default("work")
    sdk = cls.from_profile()
    assert sdk.base_url == cloud.url and sdk.refresh_token == user.refresh_token
    expire(cloud, user)
    if cls is Cloud:
        with sdk:
            assert sdk.account().id == user.user_id
    else:
        async def main() -> None:
            async with sdk:
                assert (await sdk.account()).id == user.user_id
        trio.run(main)
    saved = P.load("work")
    assert saved.access_token == sdk.access_token != user.access_token
    assert saved.refresh_token == sdk.refresh_token != user.refresh_token
    assert saved.expires_at is not None


def test_two_clients_sharing_a_profile_never_spend_a_token_twice(
    cloud: CloudFixture, user: User, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mount and a script on one profile: the second to refresh takes the first's
    rotated tokens from the profile instead of presenting its spent refresh token."""
    monkeypatch.setenv("VZCLOUD_CONFIG_DIR", str(tmp_path / "config"))
    P.save(P.Profile(name="shared", server=cloud.url, client_id=cloud.client.client_id,
                     client_secret=cloud.client.client_secret,
                     redirect_uri=cloud.client.redirect_uri, access_token=user.access_token,
                     refresh_token=user.refresh_token))
    with Cloud.from_profile("shared") as first, Cloud.from_profile("shared") as second:
        expire(cloud, user)
        assert first.account().id == user.user_id
        assert second.account().id == user.user_id  # adopted, not refreshed
        assert (first._session.refreshes, second._session.refreshes) == (1, 0)
        assert second.refresh_token == first.refresh_token == P.load("shared").refresh_token
        expire(cloud, user)
        assert second.account().id == user.user_id  # now second rotates...
        assert first.account().id == user.user_id   # ...and first adopts
        assert P.load("shared").refresh_token == first.refresh_token == second.refresh_token
