"""Verified access tokens are remembered (``auth.VerifiedTokens``), yet any change to the
database (a revocation above all, by this server or another process) is seen at once."""

from __future__ import annotations

import sqlite3

import httpx

from vzcloud.server.auth import digest
from vzcloud.server.store import Account

from .conftest import Cloud, User


def account_of(cloud: Cloud, user: User) -> httpx.Response:
    return user.http.get("/account")


def remembered(cloud: Cloud, user: User) -> Account | None:
    return cloud.server.cloud.verified_tokens.account(user.access_token)


def test_a_verified_token_is_remembered_for_its_own_account(
    cloud: Cloud, user: User, other_user: User,
) -> None:
    assert remembered(cloud, user) is None
    assert account_of(cloud, user).status_code == 200
    assert account_of(cloud, other_user).status_code == 200
    mine, theirs = remembered(cloud, user), remembered(cloud, other_user)
    assert mine is not None and theirs is not None
    assert mine.user_id == user.user_id and theirs.user_id == other_user.user_id
    assert mine.id != theirs.id
    # Remembered or not, each request is answered for its own account only.
    assert user.http.get("/account").text != other_user.http.get("/account").text


def test_a_revoked_token_is_refused_at_once(cloud: Cloud, user: User) -> None:
    assert account_of(cloud, user).status_code == 200
    assert remembered(cloud, user) is not None
    auth = {"client_id": cloud.client.client_id, "client_secret": cloud.client.client_secret}
    r = httpx.post(cloud.api + "/oauth2/revoke", data={**auth, "token": user.access_token})
    assert r.status_code == 200
    refused = account_of(cloud, user)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["error_description"]


def test_a_token_revoked_in_the_database_directly_is_refused_at_once(
    cloud: Cloud, user: User,
) -> None:
    assert account_of(cloud, user).status_code == 200
    with cloud.server.cloud.store.tx() as db:
        db.execute("UPDATE tokens SET revoked=1 WHERE token_hash=?", (digest(user.access_token),))
    assert account_of(cloud, user).status_code == 401


def test_a_token_revoked_by_another_process_is_refused_at_once(
    cloud: Cloud, user: User,
) -> None:
    assert account_of(cloud, user).status_code == 200
    other = sqlite3.connect(cloud.server.cloud.store.path)  # as `sqlite3 cloud.db` would
    try:
        with other:
            other.execute("UPDATE tokens SET revoked=1 WHERE token_hash=?",
                          (digest(user.access_token),))
    finally:
        other.close()
    assert remembered(cloud, user) is None
    assert account_of(cloud, user).status_code == 401


def test_an_expired_token_is_refused_at_once(cloud: Cloud, user: User) -> None:
    assert account_of(cloud, user).status_code == 200
    cloud.server.cloud.faults.expire_tokens()
    refused = account_of(cloud, user)
    assert refused.status_code == 401
    assert "expired" in refused.json()["error_description"]


def test_unknown_and_missing_tokens_are_refused_as_before(cloud: Cloud, user: User) -> None:
    assert account_of(cloud, user).status_code == 200
    r = httpx.get(cloud.api + "/account", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and "invalid access token" in r.json()["error_description"]
    r = httpx.get(cloud.api + "/account")
    assert r.status_code == 401
