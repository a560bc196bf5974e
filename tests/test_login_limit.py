"""Rate limit of password attempts at the sign-in page, through real HTTP.

Clients connect from different loopback addresses (127.0.0.x: the server sees each as
another client address) to tell the per-account limit from the per-address one.
"""

from __future__ import annotations

import html
import re
import time

import httpx
import pytest

from vzcloud.server.config import ServerConfig

from .conftest import Cloud, User
from .test_oauth import REDIRECT, code_from

WINDOW = 2.0  # seconds: login_window for these tests


@pytest.fixture
def limited(server_config: ServerConfig) -> ServerConfig:
    """The running server's config with a short window (the limiter reads it live)."""
    server_config.login_window = WINDOW
    return server_config


def attempt(cloud: Cloud, username: str, password: str, *, address: str = "127.0.0.1",
            accept: str = "text/html") -> httpx.Response:
    """A browser at ``address`` opens the sign-in page and submits it (Allow)."""
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=cloud.api, transport=transport,
                      headers={"Accept": accept}) as browser:
        page = browser.get("/oauth2/authorize", params={
            "client_id": cloud.client.client_id, "redirect_uri": REDIRECT,
            "response_type": "code"})
        assert page.status_code == 200, page.text
        form = {k: html.unescape(v) for k, v in re.findall(
            r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text)}
        form.update(username=username, password=password, decision="allow")
        return browser.post("/oauth2/authorize", data=form)


def fail_times(cloud: Cloud, username: str, n: int, address: str = "127.0.0.1") -> None:
    for i in range(n):
        r = attempt(cloud, username, f"wrong-{i}", address=address)
        assert r.status_code == 401, f"failure {i + 1}: {r.status_code}"


def assert_locked(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    assert "location" not in r.headers
    assert 1 <= int(r.headers["retry-after"]) <= WINDOW + 1
    assert "Too many failed sign-in attempts" in r.text


def test_five_failures_lock_the_account_until_the_window_passes(
        cloud: Cloud, user: User, limited: ServerConfig) -> None:
    fail_times(cloud, user.username, 5)
    locked_at = time.monotonic()
    # Even the right password is refused (and not checked) while locked.
    r = attempt(cloud, user.username, user.password)
    assert_locked(r)
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["x-frame-options"] == "DENY"
    assert_locked(attempt(cloud, user.username, "wrong-again"))
    time.sleep(max(0.0, locked_at + WINDOW + 0.2 - time.monotonic()))
    code_from(attempt(cloud, user.username, user.password))


def test_the_account_is_locked_from_every_address_and_the_address_for_every_account(
        cloud: Cloud, user: User, other_user: User, limited: ServerConfig) -> None:
    fail_times(cloud, user.username, 5, address="127.0.0.1")
    # The account: locked whichever address tries it.
    assert_locked(attempt(cloud, user.username, user.password, address="127.0.0.2"))
    # The address that failed: locked for every account.
    assert_locked(attempt(cloud, other_user.username, other_user.password,
                          address="127.0.0.1"))
    # Another account from another address: unaffected.
    code_from(attempt(cloud, other_user.username, other_user.password, address="127.0.0.2"))


def test_one_address_guessing_at_many_accounts_is_locked(
        cloud: Cloud, user: User, limited: ServerConfig) -> None:
    for i in range(5):
        r = attempt(cloud, f"someone{i}", "guess", address="127.0.0.3")
        assert r.status_code == 401
    assert_locked(attempt(cloud, user.username, user.password, address="127.0.0.3"))
    code_from(attempt(cloud, user.username, user.password, address="127.0.0.4"))


def test_a_success_resets_the_account_counter(
        cloud: Cloud, user: User, limited: ServerConfig) -> None:
    fail_times(cloud, user.username, 4, address="127.0.0.5")
    code_from(attempt(cloud, user.username, user.password, address="127.0.0.5"))
    # Four more (from another address, whose own counter is fresh): 8 in the window,
    # but only 4 since the success.
    fail_times(cloud, user.username, 4, address="127.0.0.6")
    code_from(attempt(cloud, user.username, user.password, address="127.0.0.6"))


def test_failures_older_than_the_window_do_not_count(
        cloud: Cloud, user: User, limited: ServerConfig) -> None:
    fail_times(cloud, user.username, 4)
    time.sleep(WINDOW + 0.2)
    fail_times(cloud, user.username, 4)
    code_from(attempt(cloud, user.username, user.password))


def test_a_client_without_html_gets_the_json_error(
        cloud: Cloud, user: User, limited: ServerConfig) -> None:
    fail_times(cloud, user.username, 5)
    r = attempt(cloud, user.username, user.password, accept="application/json")
    assert r.status_code == 429
    assert 1 <= int(r.headers["retry-after"]) <= WINDOW + 1
    body = r.json()
    assert body["error"] == "too_many_attempts"
    assert "Too many failed sign-in attempts" in body["error_description"]
