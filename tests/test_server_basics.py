"""The router itself: auth on every endpoint, JSON errors, unknown paths and methods."""

from __future__ import annotations

import httpx
import pytest

from vzcloud.api.endpoints import ENDPOINTS
from vzcloud.server.routes import HANDLERS

from .conftest import Cloud, User


def test_account(user: User) -> None:
    r = user.http.get("/account")
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == user.user_id
    assert body["usage"]["quotaUsed"] == 0
    assert body["usage"]["quota"] > 0


def test_every_endpoint_has_a_handler(cloud: Cloud) -> None:
    missing = [e.name for e in ENDPOINTS if e.name not in HANDLERS]
    assert missing == []


def _concrete(path: str) -> str:
    return (
        path.replace("{path}", "/VZMOBILE/x")
        .replace("{uploadid}", "u1").replace("{name}", "NEW")
        .replace("{uid}", "p1").replace("{itemuid}", "i1").replace("{id}", "c1")
        .replace("{contentToken}", "t1").replace("{key}", "k1").replace("{resource}", "r1")
    )


@pytest.mark.parametrize("ep", [e for e in ENDPOINTS if e.auth in ("bearer", "bearer_or_query")],
                         ids=lambda e: e.name)
def test_every_authenticated_endpoint_refuses_a_missing_or_bad_token(cloud: Cloud, ep) -> None:
    url = cloud.api + _concrete(ep.path)
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        r = httpx.request(ep.method, url, headers=headers)
        assert r.status_code == 401, (ep.name, r.status_code, r.text)
        assert r.json()["error"] in ("invalid_token", "invalid_request")


def test_unknown_path_and_wrong_method_are_json(user: User) -> None:
    r = user.http.get("/nope")
    assert r.status_code == 404 and r.json()["error"] == "no_such_endpoint"
    r = user.http.delete("/account")
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"
    r = user.http.get("/metadataX")
    assert r.status_code == 404
