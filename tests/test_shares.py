"""Shares over real HTTP: creation, listing with cursors, public links, expiry, unshare."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from .conftest import Cloud, User
from .helpers import upload

DATA = bytes(range(256)) * 20


@pytest.fixture
def files(user: User) -> dict[str, dict[str, Any]]:
    r = user.http.post("/fops/createfolder", json={"path": "/VZMOBILE", "name": "Album"})
    assert r.status_code == 201, r.text
    return {
        "a": upload(user, "/VZMOBILE/a.bin", DATA),
        "b": upload(user, "/VZMOBILE/Album/b.txt", b"bee"),
        "album": r.json()["folder"],
    }


def _share(user: User, *resources: dict[str, Any], **extra: Any) -> dict[str, Any]:
    r = user.http.post("/shares", json={"resources": list(resources), **extra})
    assert r.status_code == 201, r.text
    return r.json()


def _res(item: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"location": item["uri"], **extra}


def test_share_object(cloud: Cloud, user: User, files: dict[str, dict[str, Any]]) -> None:
    before = time.time()
    s = _share(user, _res(files["a"], name="A file", type="file", size=1),
               _res(files["album"], type="folder"), name="Holiday")
    assert len(s["uid"]) == 32 and s["name"] == "Holiday"
    assert s["owner"] == user.user_id and s["sharer"] == user.username
    assert s["totalResourceCount"] == 2 and s["expiresIn"] == 86400
    created = datetime.fromisoformat(s["creationDate"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(s["expirationDate"].replace("Z", "+00:00"))
    assert expires - created == timedelta(days=1)
    assert created.timestamp() >= before - 1
    assert s["lastModifiedDate"] == s["creationDate"]
    key = s["publicInviteKey"]
    assert len(key) >= 24
    assert s["links"] == [{"rel": "public", "link": f"{cloud.api}/public/shares/{key}"}]
    a, album = s["resources"]
    assert a["name"] == "A file" and a["type"] == "file" and a["location"] == files["a"]["uri"]
    assert a["size"] == len(DATA) and a["checksum"] == files["a"]["checksum"]
    assert a["contentToken"] == files["a"]["contentToken"]
    assert a["lastModifiedDate"] == files["a"]["versionCreated"]
    assert album["name"] == "Album" and album["type"] == "folder" and album["size"] == 0
    assert album["location"] == files["album"]["uri"] and "checksum" not in album
    assert a["uid"] != album["uid"]
    never = _share(user, _res(files["b"]), expiresIn=0)
    assert never["expiresIn"] == 0 and "expirationDate" not in never
    assert never["resources"][0]["type"] == "file"  # taken from the uri


@pytest.mark.parametrize(
    ("resource", "status"),
    [
        ({"location": "not-a-uri"}, 400),
        ({"location": "dv-file://"}, 400),
        ({"name": "no location"}, 400),
        ({"location": "LOC_A", "type": "folder"}, 400),  # type and uri disagree
        ({"location": "LOC_A", "type": "album"}, 400),
        ({"location": "LOC_A", "type": "playlist"}, 400),  # not supported
        ({"location": "LOC_A", "name": 5}, 400),
        ({"location": "LOC_A", "size": "big"}, 400),
        ({"location": "dv-file://USER:VZMOBILE/missing.bin"}, 404),
        ({"location": "dv-folder://USER:VZMOBILE/a.bin"}, 404),  # a file, not a folder
        ({"location": "dv-file://0123456789abcdef0123456789abcdef:VZMOBILE/a.bin"}, 404),
    ],
)
def test_share_refuses_bad_resources(
    user: User, files: dict[str, dict[str, Any]], resource: dict[str, Any], status: int
) -> None:
    resource = {k: (v.replace("LOC_A", files["a"]["uri"]).replace("USER", user.user_id)
                    if isinstance(v, str) else v) for k, v in resource.items()}
    # A good resource first: the whole share is refused, nothing is stored.
    r = user.http.post("/shares", json={"resources": [_res(files["b"]), resource]})
    assert r.status_code == status, r.text
    assert user.http.get("/shares").json()["shares"]["share"] == []


def test_share_refuses_bad_requests(user: User, files: dict[str, dict[str, Any]]) -> None:
    for body in ({"resources": []}, {}, {"resources": ["x"]},
                 {"resources": [_res(files["a"])], "expiresIn": -1},
                 {"resources": [_res(files["a"])], "expiresIn": "soon"}):
        assert user.http.post("/shares", json=body).status_code == 400, body


def test_another_accounts_item_cannot_be_shared(
    user: User, other_user: User, files: dict[str, dict[str, Any]]
) -> None:
    r = other_user.http.post("/shares", json={"resources": [_res(files["a"])]})
    assert r.status_code == 404


def test_public_link_without_a_token(
    cloud: Cloud, user: User, files: dict[str, dict[str, Any]]
) -> None:
    s = _share(user, _res(files["a"]), _res(files["album"]))
    link = s["links"][0]["link"]
    r = httpx.get(link)
    assert r.status_code == 200, r.text
    assert r.json() == s
    file_res, folder_res = s["resources"]
    r = httpx.get(f"{link}/{file_res['uid']}")
    assert r.status_code == 200 and r.content == DATA
    assert r.headers["etag"] == f'"{files["a"]["checksum"]}"'
    assert "a.bin" in r.headers["content-disposition"]
    r = httpx.get(f"{link}/{file_res['uid']}", headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == DATA[100:200]
    r = httpx.get(f"{link}/{file_res['uid']}", headers={"Range": "bytes=99999-"})
    assert r.status_code == 416 and r.json()["error"] == "range_not_satisfiable"
    r = httpx.get(f"{link}/{folder_res['uid']}")
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    assert httpx.get(f"{link}/nope").status_code == 404
    r = httpx.get(f"{cloud.api}/public/shares/not-a-key")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert httpx.get(f"{cloud.api}/public/shares/not-a-key/{file_res['uid']}").status_code == 404


def test_resources_follow_moves_and_hide_in_the_trash(
    user: User, files: dict[str, dict[str, Any]]
) -> None:
    s = _share(user, _res(files["a"]), _res(files["b"]))
    link = s["links"][0]["link"]
    a_uid = s["resources"][0]["uid"]
    r = user.http.post("/fops/rename", json={"src": "/VZMOBILE/a.bin", "target": "/VZMOBILE/z.bin"})
    assert r.status_code == 200, r.text
    shown = httpx.get(link).json()
    assert shown["resources"][0]["location"] == f"dv-file://{user.user_id}:VZMOBILE/z.bin"
    assert httpx.get(f"{link}/{a_uid}").content == DATA
    # Trashing the folder above b hides b; purging z removes it for good.
    assert user.http.delete("/fops/delete", params={"path": "/VZMOBILE/Album"}).status_code == 200
    shown = httpx.get(link).json()
    assert [x["uid"] for x in shown["resources"]] == [a_uid] and shown["totalResourceCount"] == 1
    b_uid = s["resources"][1]["uid"]
    assert httpx.get(f"{link}/{b_uid}").status_code == 404
    r = user.http.delete("/fops/delete", params={"path": "/VZMOBILE/z.bin", "purge": "true"})
    assert r.status_code == 200
    assert httpx.get(link).json()["resources"] == []
    assert httpx.get(f"{link}/{a_uid}").status_code == 404


def test_expiry(user: User, files: dict[str, dict[str, Any]]) -> None:
    s = _share(user, _res(files["a"]), expiresIn=1)
    link = s["links"][0]["link"]
    res = f"{link}/{s['resources'][0]['uid']}"
    assert httpx.get(link).status_code == 200
    assert httpx.get(res).status_code == 200
    time.sleep(1.2)
    r = httpx.get(link)
    assert r.status_code == 410 and r.json()["error"] == "gone"
    assert httpx.get(res).status_code == 410
    # The owner still sees it (and can unshare it).
    listed = user.http.get("/shares").json()["shares"]["share"]
    assert [x["uid"] for x in listed] == [s["uid"]]


def test_unshare(user: User, other_user: User, files: dict[str, dict[str, Any]]) -> None:
    s = _share(user, _res(files["a"]), expiresIn=0)
    link = s["links"][0]["link"]
    assert other_user.http.delete(f"/shares/{s['uid']}").status_code == 404
    assert httpx.get(link).status_code == 200
    assert user.http.delete(f"/shares/{s['uid']}").status_code == 200
    assert httpx.get(link).status_code == 404
    assert httpx.get(f"{link}/{s['resources'][0]['uid']}").status_code == 404
    assert user.http.delete(f"/shares/{s['uid']}").status_code == 404
    assert user.http.get("/shares").json()["shares"]["share"] == []


def test_listing_pages_with_cursors(
    user: User, other_user: User, files: dict[str, dict[str, Any]]
) -> None:
    made = [_share(user, _res(files["a"]), name=f"s{i}")["uid"] for i in range(5)]
    r = user.http.get("/shares", params={"filter": "outbound"})
    body = r.json()["shares"]
    assert body["count"] == 5 and body["links"] == []
    assert [x["uid"] for x in body["share"]] == made[::-1]  # newest first

    seen: list[str] = []
    r = user.http.get("/shares", params={"count": 2, "filter": "outbound"})
    pages = 0
    while True:
        assert r.status_code == 200, r.text
        body = r.json()["shares"]
        pages += 1
        seen += [x["uid"] for x in body["share"]]
        assert body["count"] == len(body["share"])
        if not body["links"]:
            break
        (link,) = body["links"]
        assert link["rel"] == "next" and "filter=outbound" in link["link"]
        r = user.http.get(link["link"])
    assert pages == 3 and seen == made[::-1]

    # A cursor stays valid when shares before it go away.
    r = user.http.get("/shares", params={"count": 2})
    cursor = httpx.URL(r.json()["shares"]["links"][0]["link"]).params["cursor"]
    assert user.http.delete(f"/shares/{made[4]}").status_code == 200
    r = user.http.get("/shares", params={"count": 2, "cursor": cursor})
    assert [x["uid"] for x in r.json()["shares"]["share"]] == made[2::-1][:2]

    # Forged, altered and another account's cursors are refused.
    forged = [cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB"), "garbage", "a.b.c",
              "W1swLCJ6Il0.AAAAAAAAAAAAAAAAAAAAAA"]
    for bad in forged:
        r = user.http.get("/shares", params={"cursor": bad})
        assert r.status_code == 400 and "cursor" in r.json()["error_description"], bad
    assert other_user.http.get("/shares", params={"cursor": cursor}).status_code == 400
    assert other_user.http.get("/shares").json()["shares"] == {
        "count": 0, "links": [], "share": []}


def test_listing_since_and_until(user: User, files: dict[str, dict[str, Any]]) -> None:
    s = _share(user, _res(files["a"]))
    created = datetime.fromisoformat(s["creationDate"].replace("Z", "+00:00"))

    def uids(**params: Any) -> list[str]:
        r = user.http.get("/shares", params=params)
        assert r.status_code == 200, r.text
        return [x["uid"] for x in r.json()["shares"]["share"]]

    earlier = (created - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (created + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
    assert uids(since=earlier) == [s["uid"]]
    assert uids(until=earlier) == []
    assert uids(since=later) == []
    assert uids(since=earlier, until=later) == [s["uid"]]
    assert uids(since=str(created.year)) == [s["uid"]]
    assert uids(until=f"{created.year - 1}-12") == []
    local = (created + timedelta(hours=2, minutes=1)).strftime("%Y-%m-%dT%H:%M+02:00")
    assert uids(until=local) == [s["uid"]]
    for bad in ("yesterday", "2015-13-01", "2015-02-30T00:00Z", "2015-01-01T25:00Z",
                "2015/01/01", "1e9"):
        r = user.http.get("/shares", params={"since": bad})
        assert r.status_code == 400 and "since" in r.json()["error_description"], bad
    assert user.http.get("/shares", params={"since": later, "until": earlier}).status_code == 400
    for bad in ({"count": 0}, {"count": 201}, {"filter": "inbound"}):
        assert user.http.get("/shares", params=bad).status_code == 400, bad

