"""GET/DELETE /trash and POST /fops/restore over real HTTP."""

from __future__ import annotations

from typing import Any

from .conftest import User
from .helpers import upload
from .tree_helpers import children, delta, error, etag, mkdir, read, status

V = "/VZMOBILE"


def _delete(user: User, path: str, purge: bool = False) -> None:
    r = user.http.delete("/fops/delete", params={"path": path, "purge": str(purge).lower()})
    assert r.status_code == 200, r.text


def _trash(user: User, **params: Any) -> dict[str, Any]:
    r = user.http.get("/trash", params={"virtualfolder": "VZMOBILE", **params})
    assert r.status_code == 200, r.text
    can: dict[str, Any] = r.json()["trashCan"]
    return can


def _paths(listing: dict[str, Any]) -> list[str]:
    return [f"{f['parentPath']}/{f['name']}" for f in listing["folder"] + listing["file"]]


def _restore(user: User, *paths: str) -> Any:
    return user.http.post("/fops/restore", json={"path": list(paths)})


def test_trash_listing(user: User, other_user: User) -> None:
    mkdir(user, f"{V}/d")
    mkdir(user, f"{V}/d/sub")
    upload(user, f"{V}/d/sub/deep.txt", b"deep")
    upload(user, f"{V}/d/alone.txt", b"alone!")
    upload(user, f"{V}/d/kept.txt", b"k")
    upload(user, f"{V}/top.jpg", b"jpg")
    upload(user, "/VZWEB/elsewhere.txt", b"e")
    _delete(user, f"{V}/d/alone.txt")  # trashed on its own, then its folder too
    _delete(user, f"{V}/d")
    _delete(user, f"{V}/top.jpg")
    _delete(user, "/VZWEB/elsewhere.txt")

    can = _trash(user)
    assert _paths(can) == [f"{V}/d", f"{V}/d/alone.txt", f"{V}/top.jpg"]
    assert all(f["deleted"] for f in can["folder"] + can["file"])
    assert _paths(_trash(user, deep="true")) == [
        f"{V}/d", f"{V}/d/sub", f"{V}/d/alone.txt", f"{V}/d/sub/deep.txt", f"{V}/d/kept.txt",
        f"{V}/top.jpg"]
    assert all(f["deleted"] for f in _trash(user, deep="true")["file"])
    assert _paths(_trash(user, filter="file")) == [f"{V}/d/alone.txt", f"{V}/top.jpg"]
    assert _paths(_trash(user, sort="size+desc", filter="file")) == [
        f"{V}/d/alone.txt", f"{V}/top.jpg"]
    assert _paths(_trash(user, count=1, page=2)) == [f"{V}/d/alone.txt"]
    assert _paths(_trash(user, count=1, page=9)) == []

    error(user.http.get("/trash", params={"virtualfolder": "Nope"}), 404)
    error(user.http.get("/trash"), 400)
    error(user.http.get("/trash", params={"virtualfolder": "VZMOBILE", "sort": "bogus+asc"}),
          400)
    assert _paths(_trash(other_user)) == []


def test_empty_trash(user: User, other_user: User) -> None:
    mkdir(user, f"{V}/d")
    upload(user, f"{V}/d/a.txt", b"aaaa")
    upload(user, f"{V}/b.txt", b"bb")
    upload(user, "/VZWEB/c.txt", b"c")
    _delete(user, f"{V}/d/a.txt")
    _delete(user, f"{V}/d")
    _delete(user, f"{V}/b.txt")
    _delete(user, "/VZWEB/c.txt")
    error(other_user.http.delete("/trash", params={"virtualfolder": "Nope"}), 404)
    assert other_user.http.delete("/trash", params={"virtualfolder": "VZMOBILE"}).status_code == 200
    assert len(_paths(_trash(user))) == 3

    since = etag(user)
    r = user.http.delete("/trash", params={"virtualfolder": "VZMOBILE"})
    assert r.status_code == 200 and r.content == b""
    assert delta(user, since) is None  # the live view did not change
    assert _paths(_trash(user, deep="true")) == []
    assert user.http.get("/account").json()["usage"]["quotaUsed"] == 1  # VZWEB's trash stays
    error(_restore(user, f"{V}/b.txt"), 404)
    error(user.http.delete("/trash", params={"virtualfolder": "Nope"}), 404)


def test_restore(user: User, other_user: User) -> None:
    mkdir(user, f"{V}/d")
    upload(user, f"{V}/d/a.txt", b"first")
    _delete(user, f"{V}/d/a.txt")
    upload(user, f"{V}/d/a.txt", b"second")
    _delete(user, f"{V}/d/a.txt")
    upload(user, f"{V}/d/a.txt", b"live")

    assert "live item" in error(_restore(user, f"{V}/d/a.txt"), 409)
    error(_restore(other_user, f"{V}/d/a.txt"), 404)
    _delete(user, f"{V}/d/a.txt", purge=True)
    r = _restore(user, f"{V}/d/a.txt", f"{V}/d/a.txt")  # given twice, restored once
    assert r.status_code == 204 and r.content == b""
    assert read(user, f"{V}/d/a.txt") == b"second"  # the one trashed last
    error(_restore(user, f"{V}/d/a.txt"), 409)  # "first" is still there, the name is not
    _delete(user, f"{V}/d/a.txt")
    # All or nothing: an unknown path restores nothing.
    error(_restore(user, f"{V}/d/a.txt", f"{V}/nope"), 404)
    assert status(user, f"{V}/d/a.txt") == 410
    error(_restore(user, "not/a/path"), 400)
    error(_restore(user, V), 404)
    error(user.http.post("/fops/restore", json={"path": []}), 400)


def test_restore_out_of_a_trashed_folder(user: User) -> None:
    mkdir(user, f"{V}/d")
    mkdir(user, f"{V}/d/e")
    upload(user, f"{V}/d/e/x.txt", b"x")
    upload(user, f"{V}/d/y.txt", b"y")
    _delete(user, f"{V}/d")

    # Restoring one file recreates the folders on its way, and only those.
    since = etag(user)
    assert _restore(user, f"{V}/d/e/x.txt").status_code == 204
    assert delta(user, since) == ([], [f"{V}/d", f"{V}/d/e", f"{V}/d/e/x.txt"])
    assert read(user, f"{V}/d/e/x.txt") == b"x"
    assert children(user, f"{V}/d") == ["e"]
    assert _paths(_trash(user, deep="true")) == [f"{V}/d", f"{V}/d/e", f"{V}/d/y.txt"]
    # The trashed folder itself now meets the recreated one.
    assert "live item" in error(_restore(user, f"{V}/d"), 409)
    assert _restore(user, f"{V}/d/y.txt").status_code == 204
    assert children(user, f"{V}/d") == ["e", "y.txt"]

    # A file standing where a folder on the way should be: 409.
    mkdir(user, f"{V}/p")
    upload(user, f"{V}/p/q.txt", b"q")
    _delete(user, f"{V}/p")
    upload(user, f"{V}/p", b"a file named p")
    assert "is a file" in error(_restore(user, f"{V}/p/q.txt"), 409)
