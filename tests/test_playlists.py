"""Playlists over real HTTP: definitions, elements, content, trash and isolation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .conftest import Cloud, User
from .helpers import upload

SONG = b"ID3" + bytes(range(256)) * 40
CLIP = b"\x00\x00\x00\x18ftypmp42" + b"v" * 5000


@pytest.fixture
def media(user: User) -> dict[str, dict[str, Any]]:
    """Files of every kind in /VZMOBILE: two songs, a photo, a clip, a text."""
    return {
        "a.mp3": upload(user, "/VZMOBILE/a.mp3", SONG),
        "b.mp3": upload(user, "/VZMOBILE/b.mp3", b"second song"),
        "p.jpg": upload(user, "/VZMOBILE/p.jpg", b"\xff\xd8\xff not really a jpeg"),
        "c.mp4": upload(user, "/VZMOBILE/c.mp4", CLIP),
        "t.txt": upload(user, "/VZMOBILE/t.txt", b"text"),
    }


def _create(user: User, name: str, type_: str, paths: list[str]) -> dict[str, Any]:
    r = user.http.post("/playlists", json={"name": name, "type": type_, "paths": paths})
    assert r.status_code == 201, r.text
    return r.json()


def _elements(user: User, uid: str, **params: Any) -> list[dict[str, Any]]:
    r = user.http.get(f"/playlists/{uid}/items", params=params)
    assert r.status_code == 200, r.text
    elements: list[dict[str, Any]] = r.json()["playlist"]["playlistElement"]
    return elements


def test_create_and_get(user: User, media: dict[str, dict[str, Any]]) -> None:
    pl = _create(user, "Road trip", "music", ["/VZMOBILE/a.mp3", "/VZMOBILE/b.mp3"])
    assert len(pl["uid"]) == 32
    assert pl["name"] == "Road trip" and pl["type"] == "music"
    assert pl["mimeTypeRegex"] == "audio/.*"
    assert pl["uri"] == f"dv-playlist://{user.user_id}:{pl['uid']}"
    assert pl["paths"] == ["/VZMOBILE/a.mp3", "/VZMOBILE/b.mp3"]
    assert pl["creationDate"].endswith("Z") and pl["lastModifiedDate"] == pl["creationDate"]
    r = user.http.get(f"/playlists/{pl['uid']}")
    assert r.status_code == 200
    assert r.json() == {"playlistDefinition": pl}
    empty = _create(user, "Later", "video", [])
    assert empty["paths"] == []
    r = user.http.post("/playlists", json={"name": "No paths key", "type": "image"})
    assert r.status_code == 201 and r.json()["paths"] == []


def test_elements_carry_file_fields(user: User, media: dict[str, dict[str, Any]]) -> None:
    pl = _create(user, "Mixed", "image-video", ["/VZMOBILE/p.jpg", "/VZMOBILE/c.mp4"])
    photo, clip = _elements(user, pl["uid"])
    f = media["p.jpg"]
    assert photo["filename"] == "p.jpg" and photo["path"] == "/VZMOBILE/p.jpg"
    assert photo["mimeType"] == "image/jpeg"
    assert photo["size"] == f["size"] and photo["checksum"] == f["checksum"]
    assert photo["contentToken"] == f["contentToken"]
    assert photo["versionCreated"] == f["versionCreated"]
    assert photo["extension"] == "jpg" and photo["uri"] == f["uri"]
    assert clip["mimeType"] == "video/mp4" and photo["itemuid"] != clip["itemuid"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "x", "type": "music", "paths": ["/VZMOBILE/p.jpg"]}, 400),  # wrong type
        ({"name": "x", "type": "image", "paths": ["/VZMOBILE/t.txt"]}, 400),
        ({"name": "x", "type": "music", "paths": ["/VZMOBILE"]}, 400),  # a folder
        ({"name": "x", "type": "music", "paths": ["/VZMOBILE/nope.mp3"]}, 404),
        ({"name": "x", "type": "music", "paths": ["relative.mp3"]}, 400),
        ({"name": "x", "type": "music", "paths": "/VZMOBILE/a.mp3"}, 201),  # one string
        ({"name": "x", "type": "podcast", "paths": []}, 400),
        ({"name": "", "type": "music"}, 400),
        ({"name": "   ", "type": "music"}, 400),
        ({"name": "x" * 256, "type": "music"}, 400),
        ({"type": "music"}, 400),
        ({"name": "x", "type": "music", "paths": [3]}, 400),
    ],
)
def test_create_refuses_bad_input(
    user: User, media: dict[str, dict[str, Any]], body: dict[str, Any], status: int
) -> None:
    r = user.http.post("/playlists", json=body)
    assert r.status_code == status, r.text
    if status != 201:
        assert r.json()["error"] in ("invalid_request", "not_found")
        assert user.http.get("/playlists").json()["playlistDefinitions"][
            "playlistDefinition"] == []


def test_a_bad_path_changes_nothing(user: User, media: dict[str, dict[str, Any]]) -> None:
    pl = _create(user, "Songs", "music", ["/VZMOBILE/a.mp3"])
    r = user.http.post(f"/playlists/{pl['uid']}/items",
                       json={"add": ["/VZMOBILE/b.mp3", "/VZMOBILE/p.jpg"]})
    assert r.status_code == 400
    r = user.http.put(f"/playlists/{pl['uid']}/items",
                      json={"name": "New", "type": "music", "paths": ["/VZMOBILE/zz.mp3"]})
    assert r.status_code == 404
    assert user.http.get(f"/playlists/{pl['uid']}").json()["playlistDefinition"] == pl


def test_list_filter_sort_and_page(user: User, media: dict[str, dict[str, Any]]) -> None:
    for name, type_ in [("b", "music"), ("C", "video"), ("a", "music"), ("d", "image")]:
        _create(user, name, type_, [])

    def names(**params: Any) -> list[str]:
        r = user.http.get("/playlists", params=params)
        assert r.status_code == 200, r.text
        return [p["name"] for p in r.json()["playlistDefinitions"]["playlistDefinition"]]

    assert names() == ["b", "C", "a", "d"]  # creation order
    assert names(type="music") == ["b", "a"]
    assert names(sort="name+asc") == ["a", "b", "C", "d"]
    assert names(sort="name+desc", count=2) == ["d", "C"]
    assert names(sort="name+desc", count=2, page=2) == ["b", "a"]
    assert names(sort="type+asc") == ["d", "b", "a", "C"]
    assert names(page=3, count=2) == []
    for bad in ({"type": "podcast"}, {"sort": "size+asc"}, {"count": 101}, {"page": 0}):
        assert user.http.get("/playlists", params=bad).status_code == 400, bad


def test_update_and_delete(user: User, media: dict[str, dict[str, Any]]) -> None:
    pl = _create(user, "Clips", "video", ["/VZMOBILE/c.mp4"])
    r = user.http.put(f"/playlists/{pl['uid']}", json={"name": "Movies", "type": "image-video"})
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["name"] == "Movies" and updated["type"] == "image-video"
    assert updated["mimeTypeRegex"] == "(image|video)/.*"
    assert updated["paths"] == ["/VZMOBILE/c.mp4"]  # contents untouched
    assert updated["lastModifiedDate"] >= pl["lastModifiedDate"]
    # A type the clip does not fit is refused; nothing changes.
    r = user.http.put(f"/playlists/{pl['uid']}", json={"name": "Songs", "type": "music"})
    assert r.status_code == 400 and "c.mp4" in r.json()["error_description"]
    assert user.http.get(f"/playlists/{pl['uid']}").json()["playlistDefinition"][
        "name"] == "Movies"
    assert user.http.put(f"/playlists/{pl['uid']}", json={"name": "x"}).status_code == 400
    assert user.http.put("/playlists/nope", json={"name": "x", "type": "music"}).status_code == 404
    assert user.http.delete(f"/playlists/{pl['uid']}").status_code == 200
    assert user.http.get(f"/playlists/{pl['uid']}").status_code == 404
    assert user.http.delete(f"/playlists/{pl['uid']}").status_code == 404
    assert user.http.get(f"/playlists/{pl['uid']}/items").status_code == 404


def test_add_remove_and_replace_elements(user: User, media: dict[str, dict[str, Any]]) -> None:
    pl = _create(user, "Songs", "music", ["/VZMOBILE/a.mp3"])
    uid = pl["uid"]
    r = user.http.post(f"/playlists/{uid}/items",
                       json={"add": ["/VZMOBILE/b.mp3", "/VZMOBILE/a.mp3"]})
    assert r.status_code == 200, r.text
    added = r.json()["paths"]
    assert [a["path"] for a in added] == ["/VZMOBILE/b.mp3", "/VZMOBILE/a.mp3"]
    elements = _elements(user, uid)
    assert [e["filename"] for e in elements] == ["a.mp3", "b.mp3", "a.mp3"]
    assert [e["itemuid"] for e in elements[1:]] == [a["itemuid"] for a in added]
    assert len({e["itemuid"] for e in elements}) == 3

    # Sorting and paging of elements.
    assert [e["size"] for e in _elements(user, uid, sort="size+asc")] == [
        11, len(SONG), len(SONG)]
    assert [e["filename"] for e in _elements(user, uid, sort="name+desc", count=1)] == ["b.mp3"]
    assert [e["itemuid"] for e in _elements(user, uid, page=2, count=2)] == [added[1]["itemuid"]]

    # Remove the first occurrence of a.mp3.
    first = elements[0]["itemuid"]
    assert user.http.delete(f"/playlists/{uid}/items/{first}").status_code == 200
    assert user.http.delete(f"/playlists/{uid}/items/{first}").status_code == 404
    assert user.http.get(f"/playlists/{uid}").json()["playlistDefinition"]["paths"] == [
        "/VZMOBILE/b.mp3", "/VZMOBILE/a.mp3"]

    # Replace the definition: b stays (and keeps its itemuid), a goes, the type changes.
    r = user.http.put(f"/playlists/{uid}/items", json={
        "name": "Everything", "type": "image-video",
        "paths": ["/VZMOBILE/c.mp4", "/VZMOBILE/p.jpg"]})
    assert r.status_code == 200, r.text
    assert r.json()["paths"] == ["/VZMOBILE/c.mp4", "/VZMOBILE/p.jpg"]
    assert r.json()["type"] == "image-video" and r.json()["name"] == "Everything"
    r = user.http.put(f"/playlists/{uid}/items", json={
        "name": "Songs", "type": "music", "paths": ["/VZMOBILE/b.mp3"]})
    assert r.status_code == 200
    (b,) = _elements(user, uid)
    assert b["filename"] == "b.mp3"
    r = user.http.put(f"/playlists/{uid}/items", json={
        "name": "Songs", "type": "music", "paths": ["/VZMOBILE/b.mp3", "/VZMOBILE/a.mp3"]})
    assert _elements(user, uid)[0]["itemuid"] == b["itemuid"]
    # An empty list empties the playlist.
    r = user.http.put(f"/playlists/{uid}/items", json={"name": "Songs", "type": "music",
                                                       "paths": []})
    assert r.status_code == 200 and r.json()["paths"] == []
    assert user.http.post(f"/playlists/{uid}/items", json={"add": []}).status_code == 400
    assert user.http.post("/playlists/nope/items",
                          json={"add": ["/VZMOBILE/a.mp3"]}).status_code == 404


def test_item_content_with_range_and_access_token(
    cloud: Cloud, user: User, media: dict[str, dict[str, Any]]
) -> None:
    pl = _create(user, "Songs", "music", ["/VZMOBILE/a.mp3"])
    (element,) = _elements(user, pl["uid"])
    url = f"/playlists/{pl['uid']}/items/{element['itemuid']}"
    r = user.http.get(url)
    assert r.status_code == 200 and r.content == SONG
    assert r.headers["content-type"] == "audio/mpeg"
    assert r.headers["accept-ranges"] == "bytes"
    r = user.http.get(url, headers={"Range": "bytes=3-9"})
    assert r.status_code == 206 and r.content == SONG[3:10]
    assert r.headers["content-range"] == f"bytes 3-9/{len(SONG)}"
    r = user.http.get(url, headers={"Range": "bytes=-4"})
    assert r.status_code == 206 and r.content == SONG[-4:]
    r = user.http.get(url, headers={"Range": f"bytes={len(SONG)}-"})
    assert r.status_code == 416 and r.json()["error"] == "range_not_satisfiable"
    assert r.headers["content-range"] == f"bytes */{len(SONG)}"
    # A URL that works without headers, as download_url() needs.
    r = httpx.get(cloud.api + url, params={"access-token": user.access_token})
    assert r.status_code == 200 and r.content == SONG
    assert httpx.get(cloud.api + url).status_code == 401
    assert user.http.get(f"/playlists/{pl['uid']}/items/nope").status_code == 404


def test_elements_follow_moves_and_hide_in_the_trash(
    user: User, media: dict[str, dict[str, Any]]
) -> None:
    pl = _create(user, "Songs", "music", ["/VZMOBILE/a.mp3", "/VZMOBILE/b.mp3"])
    uid = pl["uid"]
    a_uid = _elements(user, uid)[0]["itemuid"]
    r = user.http.post("/fops/rename", json={"src": "/VZMOBILE/a.mp3",
                                             "target": "/VZMOBILE/z.mp3"})
    assert r.status_code == 200, r.text
    assert [e["path"] for e in _elements(user, uid)] == ["/VZMOBILE/z.mp3", "/VZMOBILE/b.mp3"]

    r = user.http.delete("/fops/delete", params={"path": "/VZMOBILE/z.mp3"})
    assert r.status_code == 200, r.text
    assert [e["filename"] for e in _elements(user, uid)] == ["b.mp3"]
    assert user.http.get(f"/playlists/{uid}").json()["playlistDefinition"]["paths"] == [
        "/VZMOBILE/b.mp3"]
    assert user.http.get(f"/playlists/{uid}/items/{a_uid}").status_code == 404
    r = user.http.post(f"/playlists/{uid}/items", json={"add": ["/VZMOBILE/z.mp3"]})
    assert r.status_code == 404  # a file in the trash cannot be added

    r = user.http.post("/fops/restore", json={"path": ["/VZMOBILE/z.mp3"]})
    assert r.status_code == 204, r.text
    assert [e["itemuid"] for e in _elements(user, uid)][0] == a_uid

    r = user.http.delete("/fops/delete", params={"path": "/VZMOBILE/z.mp3", "purge": "true"})
    assert r.status_code == 200
    assert [e["filename"] for e in _elements(user, uid)] == ["b.mp3"]
    assert user.http.delete(f"/playlists/{uid}/items/{a_uid}").status_code == 404


def test_playlists_are_per_account(
    user: User, other_user: User, media: dict[str, dict[str, Any]]
) -> None:
    pl = _create(user, "Mine", "music", ["/VZMOBILE/a.mp3"])
    uid = pl["uid"]
    itemuid = _elements(user, uid)[0]["itemuid"]
    other = other_user.http
    assert other.get("/playlists").json()["playlistDefinitions"]["playlistDefinition"] == []
    assert other.get(f"/playlists/{uid}").status_code == 404
    assert other.put(f"/playlists/{uid}", json={"name": "x", "type": "music"}).status_code == 404
    assert other.get(f"/playlists/{uid}/items").status_code == 404
    assert other.post(f"/playlists/{uid}/items", json={"add": ["/VZMOBILE/a.mp3"]}
                      ).status_code == 404
    assert other.put(f"/playlists/{uid}/items",
                     json={"name": "x", "type": "music", "paths": []}).status_code == 404
    assert other.get(f"/playlists/{uid}/items/{itemuid}").status_code == 404
    assert other.delete(f"/playlists/{uid}/items/{itemuid}").status_code == 404
    assert other.delete(f"/playlists/{uid}").status_code == 404
    # Paths name the caller's own files: the other account has no /VZMOBILE/a.mp3.
    r = other.post("/playlists", json={"name": "x", "type": "music",
                                       "paths": ["/VZMOBILE/a.mp3"]})
    assert r.status_code == 404
    assert _elements(user, uid)[0]["itemuid"] == itemuid


def test_retype_counts_hidden_elements(user: User, media: dict[str, dict[str, Any]]) -> None:
    pl = _create(user, "Both", "image-video", ["/VZMOBILE/p.jpg", "/VZMOBILE/c.mp4"])
    assert user.http.delete("/fops/delete", params={"path": "/VZMOBILE/c.mp4"}).status_code == 200
    # The clip is hidden while in the trash, but it would not fit an image playlist once
    # restored, so the type change is refused.
    r = user.http.put(f"/playlists/{pl['uid']}", json={"name": "Photos", "type": "image"})
    assert r.status_code == 400 and "c.mp4" in r.json()["error_description"]
