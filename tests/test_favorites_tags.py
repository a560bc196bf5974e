"""GET/PUT/DELETE /favorites, PUT/DELETE /tags and GET /tags{path} over real HTTP."""

from __future__ import annotations

from typing import Any

from .conftest import User
from .helpers import upload
from .tree_helpers import delta, error, etag, mkdir

V = "/VZMOBILE"


def _favorites(user: User, **params: Any) -> list[str]:
    r = user.http.get("/favorites", params=params)
    assert r.status_code == 200, r.text
    favs = r.json()["favorites"]
    return [f["name"] for f in favs["folder"] + favs["file"]]


def _meta(user: User, path: str) -> dict[str, Any]:
    body: dict[str, Any] = user.http.get(f"/metadata{path}").json()
    return body.get("file") or body["folder"]


def test_favorites(user: User, other_user: User) -> None:
    album = mkdir(user, f"{V}/Album")
    photo = upload(user, f"{V}/Album/p.jpg", b"p")
    song = upload(user, f"{V}/s.mp3", b"s")
    doc = upload(user, f"{V}/r.pdf", b"r")
    web = upload(user, "/VZWEB/w.png", b"w")
    uris = [album["uri"], photo["uri"], song["uri"], doc["uri"], web["uri"]]

    since = etag(user)
    r = user.http.put("/favorites", json={"uri": uris, "createVersion": True})
    assert r.status_code == 200, r.text
    assert delta(user, since) == ([], [f"{V}/Album", f"{V}/Album/p.jpg", f"{V}/r.pdf",
                                       f"{V}/s.mp3", "/VZWEB/w.png"])
    since = etag(user)
    assert user.http.put("/favorites", json={"uri": uris}).status_code == 200
    assert delta(user, since) is None  # already favorites: nothing changed
    assert (_meta(user, f"{V}/Album/p.jpg")["favorite"], _meta(user, f"{V}/Album/p.jpg")["version"]) \
        == (True, photo["version"] + 1)
    assert _favorites(user) == ["Album", "p.jpg", "r.pdf", "s.mp3"]
    assert _favorites(user, virtualfolder="*") == ["Album", "p.jpg", "r.pdf", "s.mp3", "w.png"]
    assert _favorites(user, virtualfolder="VZWEB") == ["w.png"]
    assert _favorites(user, type="folder") == ["Album"]
    assert _favorites(user, type="file", filetype="image") == ["p.jpg"]
    assert _favorites(user, filetype="music") == ["s.mp3"]
    assert _favorites(user, filetype="document") == ["r.pdf"]
    assert _favorites(user, filetype="video") == []
    error(user.http.get("/favorites", params={"virtualfolder": "Nope"}), 404)
    error(user.http.get("/favorites", params={"filetype": "pictures"}), 400)

    # A trashed favorite is not listed; unfavorite takes repeated uri parameters.
    user.http.delete("/fops/delete", params={"path": f"{V}/r.pdf"})
    assert _favorites(user) == ["Album", "p.jpg", "s.mp3"]
    r = user.http.delete("/favorites", params=[("uri", album["uri"]), ("uri", song["uri"])])
    assert r.status_code == 200, r.text
    assert _favorites(user) == ["p.jpg"]
    assert _meta(user, f"{V}/s.mp3")["version"] == song["version"] + 1  # from the PUT only

    # All or nothing: one bad uri and nothing changes.
    missing = photo["uri"].replace("p.jpg", "nope.jpg")
    error(user.http.put("/favorites", json={"uri": [song["uri"], missing]}), 404)
    assert _favorites(user) == ["p.jpg"]
    error(user.http.put("/favorites", json={"uri": [doc["uri"]]}), 404)  # in the trash
    error(user.http.put("/favorites", json={"uri": ["http://example.com/x"]}), 400)
    error(user.http.put("/favorites", json={"uri": [album["uri"].replace("dv-folder",
                                                                          "dv-file")]}), 404)
    error(user.http.put("/favorites", json={"uri": []}), 400)
    # Another account's uri is a 404 for this one, even with the same path.
    upload(other_user, f"{V}/s.mp3", b"theirs")
    error(other_user.http.put("/favorites", json={"uri": [song["uri"]]}), 404)
    error(other_user.http.delete("/favorites", params={"uri": song["uri"]}), 404)
    assert _favorites(other_user) == []


def test_tags(user: User, other_user: User) -> None:
    f = upload(user, f"{V}/t.txt", b"t")
    since = etag(user)
    r = user.http.put("/tags", json={"uri": f["uri"], "Tags": " beach, Sun ,,beach,sun,  "})
    assert r.status_code == 200, r.text
    assert delta(user, since) == ([], [f"{V}/t.txt"])
    assert user.http.get(f"/tags{V}/t.txt").json() == {"Tags": "beach,Sun"}
    assert _meta(user, f"{V}/t.txt")["tags"] == "beach,Sun"
    assert _meta(user, f"{V}/t.txt")["version"] == f["version"]

    r = user.http.put("/tags", json={"uri": f["uri"], "Tags": "x", "createVersion": True})
    assert r.status_code == 200 and _meta(user, f"{V}/t.txt")["version"] == f["version"] + 1
    assert user.http.put("/tags", json={"uri": f["uri"], "Tags": " , "}).status_code == 200
    assert user.http.get(f"/tags{V}/t.txt").json() == {"Tags": ""}

    user.http.put("/tags", json={"uri": f["uri"], "Tags": "a"})
    r = user.http.delete("/tags", params={"uri": f["uri"]})
    assert r.status_code == 200 and user.http.get(f"/tags{V}/t.txt").json() == {"Tags": ""}
    folder = mkdir(user, f"{V}/d")
    assert user.http.put("/tags", json={"uri": folder["uri"], "Tags": "dir"}).status_code == 200
    assert user.http.get(f"/tags{V}/d").json() == {"Tags": "dir"}

    error(user.http.get(f"/tags{V}/nope"), 404)
    error(user.http.get("/tags/"), 400)
    error(user.http.put("/tags", json={"uri": f["uri"]}), 400)
    error(user.http.put("/tags", json={"uri": "dv-file://nope", "Tags": "a"}), 400)
    error(other_user.http.put("/tags", json={"uri": f["uri"], "Tags": "mine"}), 404)
    error(other_user.http.delete("/tags", params={"uri": f["uri"]}), 404)
    error(other_user.http.get(f"/tags{V}/t.txt"), 404)
    user.http.delete("/fops/delete", params={"path": f"{V}/t.txt"})
    error(user.http.get(f"/tags{V}/t.txt"), 404)
    error(user.http.delete("/tags", params={"uri": f["uri"]}), 404)
