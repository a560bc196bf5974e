"""GET /search over real HTTP (the query language itself: test_search_query.py)."""

from __future__ import annotations

from typing import Any

from .conftest import User
from .helpers import upload
from .tree_helpers import error, mkdir

V = "/VZMOBILE"


def _search(user: User, query: str, **params: Any) -> list[str]:
    r = user.http.get("/search", params={"query": query, **params})
    assert r.status_code == 200, r.text
    found = r.json()["searchResults"]
    return [f"{f['parentPath']}/{f['name']}" for f in found["folder"] + found["file"]]


def test_search(user: User, other_user: User) -> None:
    mkdir(user, f"{V}/Holiday 2015")
    photo = upload(user, f"{V}/Holiday 2015/beach_photo.JPG", b"x" * 30)
    upload(user, f"{V}/Holiday 2015/notes.txt", b"x" * 10)
    upload(user, f"{V}/holiday-plan.txt", b"x" * 20)
    upload(user, f"{V}/gone-holiday.txt", b"x")
    upload(user, "/VZWEB/holiday.doc", b"x")
    user.http.delete("/fops/delete", params={"path": f"{V}/gone-holiday.txt"})
    user.http.put("/tags", json={"uri": photo["uri"], "Tags": "sea, sun"})
    user.http.put("/favorites", json={"uri": [photo["uri"]]})

    assert _search(user, "holiday") == [
        f"{V}/Holiday 2015", f"{V}/holiday-plan.txt"]  # trashed and VZWEB items left out
    assert _search(user, "holiday", virtualfolder="*") == [
        f"{V}/Holiday 2015", f"{V}/holiday-plan.txt", "/VZWEB/holiday.doc"]
    assert _search(user, "holiday", virtualfolder="VZWEB") == ["/VZWEB/holiday.doc"]
    assert _search(user, "file:true AND name:beach") == [f"{V}/Holiday 2015/beach_photo.JPG"]
    assert _search(user, "contentType:image/* OR extension:txt", sort="size+desc") == [
        f"{V}/Holiday 2015/beach_photo.JPG", f"{V}/holiday-plan.txt",
        f"{V}/Holiday 2015/notes.txt"]
    assert _search(user, "extension:txt", sort="size+asc", count=1, page=2) == [
        f"{V}/holiday-plan.txt"]
    assert _search(user, "tags:sun AND favorite:true") == [
        f"{V}/Holiday 2015/beach_photo.JPG"]
    assert _search(user, "size:[15 TO 25]") == [f"{V}/holiday-plan.txt"]
    assert _search(user, "folder:true") == [f"{V}/Holiday 2015"]
    assert _search(user, "name:holiday\\ 2015") == [f"{V}/Holiday 2015"]
    assert _search(user, "VZMOBILE", virtualfolder="*") == []  # virtual folders are scopes

    r = user.http.get("/search", params={"query": "name:(beach"})
    assert "'(' is never closed" in error(r, 400)
    assert "at character 6" in r.json()["error_description"]
    error(user.http.get("/search", params={"query": "x", "virtualfolder": "Nope"}), 404)
    error(user.http.get("/search", params={"query": ""}), 400)
    error(user.http.get("/search", params={"query": "x", "sort": "path+asc"}), 400)
    assert _search(other_user, "holiday", virtualfolder="*") == []
