"""OAuth 2.0 through real HTTP: the sign-in page, codes, tokens, rotation and revocation."""

from __future__ import annotations

import base64
import html
import logging
import re
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from vzcloud.server.admin import create_client
from vzcloud.server.config import ServerConfig

from .conftest import Cloud, User

REDIRECT = "http://127.0.0.1:9/callback"  # the conftest client's registered redirect URI


def sign_in(
    cloud: Cloud, username: str, password: str, *, decision: str = "allow",
    state: str | None = "st4te", client_id: str | None = None, redirect_uri: str = REDIRECT,
    post_redirect_uri: str | None = None,
) -> httpx.Response:
    """What a browser does: GET the page, then submit its form; the POST's response."""
    with httpx.Client(base_url=cloud.api, headers={"Accept": "text/html"}) as browser:
        query = {"client_id": client_id or cloud.client.client_id, "redirect_uri": redirect_uri,
                 "response_type": "code"}
        if state is not None:
            query["state"] = state
        page = browser.get("/oauth2/authorize", params=query)
        assert page.status_code == 200, page.text
        fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text))
        assert set(fields) == {"client_id", "redirect_uri", "response_type", "state", "csrf"}
        form = {k: html.unescape(v) for k, v in fields.items()}
        if post_redirect_uri is not None:
            form["redirect_uri"] = post_redirect_uri
        form.update(username=username, password=password, decision=decision)
        return browser.post("/oauth2/authorize", data=form)


def code_from(response: httpx.Response) -> str:
    assert response.status_code == 302, response.text
    query = parse_qs(urlsplit(response.headers["location"]).query)
    return query["code"][0]


def exchange(cloud: Cloud, code: str, redirect_uri: str = REDIRECT) -> httpx.Response:
    return httpx.post(cloud.api + "/oauth2/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
        "client_id": cloud.client.client_id, "client_secret": cloud.client.client_secret,
    })


def refresh(cloud: Cloud, refresh_token: str) -> httpx.Response:
    return httpx.post(cloud.api + "/oauth2/token", data={
        "grant_type": "refresh_token", "refresh_token": refresh_token,
        "client_id": cloud.client.client_id, "client_secret": cloud.client.client_secret,
    })


def account_status(cloud: Cloud, access_token: str) -> int:
    r = httpx.get(cloud.api + "/account", headers={"Authorization": f"Bearer {access_token}"})
    return r.status_code


def test_whole_flow(cloud: Cloud, user: User) -> None:
    page = httpx.get(cloud.api + "/oauth2/authorize", params={
        "client_id": cloud.client.client_id, "redirect_uri": REDIRECT, "response_type": "code"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["x-frame-options"] == "DENY"
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "http://127.0.0.1:9" in csp  # form-action allows the redirect after the POST
    for needle in ('name="username"', 'name="password"', 'value="allow"', 'value="deny"'):
        assert needle in page.text
    assert "vzcloud_csrf=" in page.headers["set-cookie"]
    assert "httponly" in page.headers["set-cookie"].lower()

    r = sign_in(cloud, user.username, user.password, state="xyz")
    location = r.headers["location"]
    assert location.startswith(REDIRECT + "?code=")
    assert parse_qs(urlsplit(location).query)["state"] == ["xyz"]
    assert r.headers["cache-control"] == "no-store"

    t = exchange(cloud, code_from(r))
    assert t.status_code == 200, t.text
    assert t.headers["cache-control"] == "no-store"
    body = t.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 9 * 3600
    assert body["refresh_token"]
    me = httpx.get(cloud.api + "/account",
                   headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json()["id"] == user.user_id


def test_state_round_trips_and_everything_is_escaped(cloud: Cloud, user: User) -> None:
    state = '"><script>alert(1)</script>&x=1 ü'
    page = httpx.get(cloud.api + "/oauth2/authorize", params={
        "client_id": cloud.client.client_id, "redirect_uri": REDIRECT,
        "response_type": "code", "state": state})
    assert "<script>" not in page.text
    assert "&lt;script&gt;" in page.text
    r = sign_in(cloud, user.username, user.password, state=state)
    assert parse_qs(urlsplit(r.headers["location"]).query)["state"] == [state]
    # No state given: none sent back.
    r = sign_in(cloud, user.username, user.password, state=None)
    assert "state" not in parse_qs(urlsplit(r.headers["location"]).query)


def test_redirect_uri_with_a_query_gets_the_code_appended(cloud: Cloud, user: User) -> None:
    client = create_client(cloud.server.cloud, redirect_uri="http://127.0.0.1:9/cb?app=1")
    cloud.client = client
    r = sign_in(cloud, user.username, user.password, redirect_uri=client.redirect_uri)
    assert r.headers["location"].startswith("http://127.0.0.1:9/cb?app=1&code=")
    t = exchange(cloud, code_from(r), redirect_uri=client.redirect_uri)
    assert t.status_code == 200, t.text


def test_deny_redirects_with_access_denied(cloud: Cloud, user: User) -> None:
    r = sign_in(cloud, "", "", decision="deny", state="s1")
    assert r.status_code == 302
    assert r.headers["location"] == REDIRECT + "?error=access_denied&state=s1"


def test_wrong_password_shows_the_page_again(cloud: Cloud, user: User) -> None:
    for name, password in ((user.username, "wrong"), ("nobody", "x")):
        r = sign_in(cloud, name, password)
        assert r.status_code == 401
        assert "location" not in r.headers
        assert "Wrong user name or password." in r.text
        assert r.headers["x-frame-options"] == "DENY"
    r = sign_in(cloud, user.username, "")
    assert r.status_code == 400 and "Enter your user name and password." in r.text


def test_wrong_redirect_uri_and_unknown_client_are_refused_without_redirect(
    cloud: Cloud, user: User,
) -> None:
    base = {"client_id": cloud.client.client_id, "response_type": "code"}
    for params in (
        {**base, "redirect_uri": "http://evil.example/callback"},
        {**base, "redirect_uri": REDIRECT + "/"},
        {**base, "redirect_uri": REDIRECT, "client_id": "no-such-client"},
    ):
        r = httpx.get(cloud.api + "/oauth2/authorize", params=params)
        assert r.status_code == 400 and "location" not in r.headers
        assert r.json()["error"] == "invalid_request"
        r = httpx.get(cloud.api + "/oauth2/authorize", params=params,
                      headers={"Accept": "text/html"})
        assert r.status_code == 400 and "Cannot sign in" in r.text
        assert r.headers["x-frame-options"] == "DENY"
    # The form's hidden redirect_uri is checked again on POST.
    r = sign_in(cloud, user.username, user.password, post_redirect_uri="http://evil.example/cb")
    assert r.status_code == 400 and "location" not in r.headers
    # A bad response_type is a 400 from the endpoint table.
    r = httpx.get(cloud.api + "/oauth2/authorize",
                  params={**base, "redirect_uri": REDIRECT, "response_type": "token"})
    assert r.status_code == 400


def test_form_without_the_csrf_cookie_is_refused(cloud: Cloud, user: User) -> None:
    r = httpx.post(cloud.api + "/oauth2/authorize", data={
        "client_id": cloud.client.client_id, "redirect_uri": REDIRECT, "response_type": "code",
        "username": user.username, "password": user.password, "decision": "allow",
        "csrf": "A" * 43})
    assert r.status_code == 400 and "location" not in r.headers
    assert "CSRF" in r.json()["error_description"]


def test_code_is_single_use_and_reuse_revokes_its_tokens(cloud: Cloud, user: User) -> None:
    code = code_from(sign_in(cloud, user.username, user.password))
    first = exchange(cloud, code)
    assert first.status_code == 200
    access = first.json()["access_token"]
    assert account_status(cloud, access) == 200
    again = exchange(cloud, code)
    assert again.status_code == 401 and again.json()["error"] == "invalid_grant"
    assert account_status(cloud, access) == 401
    assert refresh(cloud, first.json()["refresh_token"]).status_code == 401


def test_code_checks(cloud: Cloud, user: User, server_config: ServerConfig) -> None:
    # Another redirect_uri than at authorize.
    code = code_from(sign_in(cloud, user.username, user.password))
    r = exchange(cloud, code, redirect_uri=REDIRECT + "x")
    assert r.status_code == 401 and r.json()["error"] == "invalid_grant"
    # Another client.
    other = create_client(cloud.server.cloud, redirect_uri=REDIRECT)
    r = httpx.post(cloud.api + "/oauth2/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "client_id": other.client_id, "client_secret": other.client_secret})
    assert r.status_code == 401 and r.json()["error"] == "invalid_grant"
    # Garbage and missing codes.
    assert exchange(cloud, "garbage").json()["error"] == "invalid_grant"
    r = httpx.post(cloud.api + "/oauth2/token", data={
        "grant_type": "authorization_code", "client_id": cloud.client.client_id,
        "client_secret": cloud.client.client_secret})
    assert r.status_code == 400 and "'code'" in r.json()["error_description"]
    # Expired.
    server_config.auth_code_ttl = 0.2
    code = code_from(sign_in(cloud, user.username, user.password))
    time.sleep(0.4)
    r = exchange(cloud, code)
    assert r.status_code == 401 and "expired" in r.json()["error_description"]


def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_family(
    cloud: Cloud, user: User,
) -> None:
    first = refresh(cloud, user.refresh_token)
    assert first.status_code == 200, first.text
    new = first.json()
    assert new["refresh_token"] != user.refresh_token
    assert account_status(cloud, new["access_token"]) == 200
    second = refresh(cloud, new["refresh_token"])
    assert second.status_code == 200
    newest = second.json()

    replay = refresh(cloud, user.refresh_token)  # spent: someone else has a copy
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_grant"
    assert account_status(cloud, newest["access_token"]) == 401
    assert refresh(cloud, newest["refresh_token"]).status_code == 401


def test_refresh_token_of_another_client_is_refused(cloud: Cloud, user: User) -> None:
    other = create_client(cloud.server.cloud, redirect_uri=REDIRECT)
    r = httpx.post(cloud.api + "/oauth2/token", data={
        "grant_type": "refresh_token", "refresh_token": user.refresh_token,
        "client_id": other.client_id, "client_secret": other.client_secret})
    assert r.status_code == 401 and r.json()["error"] == "invalid_grant"
    assert refresh(cloud, user.refresh_token).status_code == 200  # not spent by that


def test_expired_access_token(cloud: Cloud, server_config: ServerConfig) -> None:
    server_config.access_token_ttl = 0.5
    u = cloud.new_user("bob")
    assert u.http.get("/account").status_code == 200
    time.sleep(0.7)
    r = u.http.get("/account")
    assert r.status_code == 401 and "expired" in r.json()["error_description"]
    fresh = refresh(cloud, u.refresh_token).json()
    assert account_status(cloud, fresh["access_token"]) == 200
    u.http.close()


def test_revoke(cloud: Cloud, user: User) -> None:
    auth = {"client_id": cloud.client.client_id, "client_secret": cloud.client.client_secret}
    r = httpx.post(cloud.api + "/oauth2/revoke", data={**auth, "token": user.access_token})
    assert r.status_code == 200
    assert account_status(cloud, user.access_token) == 401
    # A refresh token takes its family with it.
    pair = refresh(cloud, user.refresh_token).json()
    assert account_status(cloud, pair["access_token"]) == 200
    r = httpx.post(cloud.api + "/oauth2/revoke", data={**auth, "token": pair["refresh_token"]})
    assert r.status_code == 200
    assert account_status(cloud, pair["access_token"]) == 401
    assert refresh(cloud, pair["refresh_token"]).status_code == 401
    # Unknown tokens: 200 anyway (RFC 7009). A bad client: 401.
    assert httpx.post(cloud.api + "/oauth2/revoke",
                      data={**auth, "token": "nope"}).status_code == 200
    r = httpx.post(cloud.api + "/oauth2/revoke",
                   data={"client_id": cloud.client.client_id, "client_secret": "x", "token": "t"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_client_authentication(cloud: Cloud, user: User) -> None:
    cid, secret = cloud.client.client_id, cloud.client.client_secret
    basic = base64.b64encode(f"{cid}:{secret}".encode()).decode()
    r = httpx.post(cloud.api + "/oauth2/token",
                   data={"grant_type": "refresh_token", "refresh_token": user.refresh_token},
                   headers={"Authorization": f"Basic {basic}"})
    assert r.status_code == 200, r.text
    pair = r.json()

    wrong = base64.b64encode(f"{cid}:nope".encode()).decode()
    r = httpx.post(cloud.api + "/oauth2/token",
                   data={"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]},
                   headers={"Authorization": f"Basic {wrong}"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert r.headers["www-authenticate"].startswith("Basic")
    for data in ({"client_id": cid, "client_secret": "nope"}, {"client_id": "nobody"}, {}):
        r = httpx.post(cloud.api + "/oauth2/token",
                       data={**data, "grant_type": "refresh_token",
                             "refresh_token": pair["refresh_token"]})
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    # Parameters may travel in the query, too; the refresh token was not spent above.
    r = httpx.post(cloud.api + "/oauth2/token", params={
        "grant_type": "refresh_token", "refresh_token": pair["refresh_token"],
        "client_id": cid, "client_secret": secret})
    assert r.status_code == 200, r.text


def test_secrets_never_reach_the_log(
    cloud: Cloud, user: User, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="vzcloud.server.access")
    httpx.get(cloud.api + "/files/VZMOBILE/a.jpg", params={"access-token": user.access_token})
    httpx.post(cloud.api + "/oauth2/token", params={
        "grant_type": "refresh_token", "refresh_token": user.refresh_token,
        "client_id": cloud.client.client_id, "client_secret": cloud.client.client_secret})
    httpx.post(cloud.api + "/oauth2/authorize?password=hunter2&username=alice")
    deadline = time.monotonic() + 5
    while len([r for r in caplog.records if r.name == "vzcloud.server.access"]) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    text = caplog.text
    assert "/files/VZMOBILE/a.jpg?access-token=***" in text
    for secret in (user.access_token, user.refresh_token, cloud.client.client_secret, "hunter2"):
        assert secret not in text
