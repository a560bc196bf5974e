"""POST /fops/createfolder, copy, move, rename and DELETE /fops/delete over real HTTP."""

from __future__ import annotations

from .conftest import Cloud, User
from .helpers import upload
from .tree_helpers import children, delta, error, etag, fop, mkdir, read, status

V = "/VZMOBILE"


def _trash_names(user: User, vf: str = "VZMOBILE") -> list[str]:
    body = user.http.get("/trash", params={"virtualfolder": vf}).json()["trashCan"]
    return [f["name"] for f in body["folder"] + body["file"]]


def test_create_folder(user: User) -> None:
    since = etag(user)
    r = user.http.post("/fops/createfolder", json={"path": V, "name": "Photos"})
    assert r.status_code == 201, r.text
    folder = r.json()["folder"]
    assert (folder["name"], folder["parentPath"], folder["count"]) == ("Photos", V, 0)
    assert folder["uri"] == f"dv-folder://{user.user_id}:VZMOBILE/Photos"
    assert mkdir(user, f"{V}/Photos/2015")["parentPath"] == f"{V}/Photos"
    assert children(user, f"{V}/Photos") == ["2015"]
    assert delta(user, since) == ([], [f"{V}/Photos", f"{V}/Photos/2015"])


def test_create_folder_errors(user: User) -> None:
    def create(path: str, name: str, **extra: str) -> object:
        return user.http.post("/fops/createfolder", json={"path": path, "name": name, **extra})

    mkdir(user, f"{V}/a")
    upload(user, f"{V}/f.txt", b"x")
    assert "virtualfolder" in error(create("/", "x"), 400)
    assert "no such" in error(create(f"{V}/missing", "x"), 404)
    assert "not a folder" in error(create(f"{V}/f.txt", "x"), 400)
    error(create(V, "a/b"), 400)
    assert "override" in error(create(V, "a"), 409)
    for override in ("modify", "overwrite"):
        r = create(V, "a", override=override)
        assert r.status_code == 201 and r.json()["folder"]["name"] == "a"
    assert children(user, V) == ["a", "f.txt"]
    error(create(V, "f.txt", override="overwrite"), 409)
    error(create(V, "z", override="merge"), 400)
    assert user.http.delete("/fops/delete", params={"path": f"{V}/a"}).status_code == 200
    assert "trash" in error(create(f"{V}/a", "x"), 404)


def test_move_file_and_folder_keep_content(user: User) -> None:
    mkdir(user, f"{V}/src")
    mkdir(user, f"{V}/src/sub")
    upload(user, f"{V}/src/sub/a.txt", b"alpha")
    mkdir(user, f"{V}/dst")

    r = fop(user, "move", f"{V}/src/sub/a.txt", f"{V}/dst/b.txt")
    assert r.status_code == 200, r.text
    moved = r.json()["file"]
    assert (moved["name"], moved["parentPath"]) == ("b.txt", f"{V}/dst")
    assert read(user, f"{V}/dst/b.txt") == b"alpha"
    assert status(user, f"{V}/src/sub/a.txt") == 404

    since = etag(user)
    r = fop(user, "move", f"{V}/src", f"{V}/dst/moved")
    assert r.status_code == 200, r.text
    # A moved folder: its old path deleted, everything under its new path added.
    assert delta(user, since) == ([f"{V}/src"], [f"{V}/dst/moved", f"{V}/dst/moved/sub"])
    assert r.json()["folder"]["uri"] == f"dv-folder://{user.user_id}:VZMOBILE/dst/moved"
    assert children(user, f"{V}/dst") == ["moved", "b.txt"]
    assert children(user, f"{V}/dst/moved") == ["sub"]
    assert status(user, f"{V}/src") == 404

    # Moving onto itself changes nothing; so does moving across virtual folders back.
    r = fop(user, "move", f"{V}/dst/b.txt", f"{V}/dst/b.txt")
    assert r.status_code == 200 and r.json()["file"]["name"] == "b.txt"
    r = fop(user, "move", f"{V}/dst/b.txt", "/VZWEB/b.txt")
    assert r.status_code == 200 and read(user, "/VZWEB/b.txt") == b"alpha"


def test_rename(user: User) -> None:
    mkdir(user, f"{V}/d")
    upload(user, f"{V}/d/a.txt", b"1")
    r = fop(user, "rename", f"{V}/d/a.txt", f"{V}/d/A.txt")  # a case-only rename
    assert r.status_code == 200 and r.json()["file"]["name"] == "A.txt"
    r = fop(user, "rename", f"{V}/d", f"{V}/e")
    assert r.status_code == 200 and children(user, f"{V}/e") == ["A.txt"]
    assert "use move" in error(fop(user, "rename", f"{V}/e/A.txt", f"{V}/A.txt"), 400)


def test_file_conflicts(user: User) -> None:
    upload(user, f"{V}/a.txt", b"old")
    upload(user, f"{V}/b.txt", b"new")
    upload(user, f"{V}/c.txt", b"third")
    assert "conflictsolve" in error(fop(user, "copy", f"{V}/b.txt", f"{V}/a.txt", safe=True), 409)

    r = fop(user, "copy", f"{V}/b.txt", f"{V}/a.txt", safe=True, conflictsolve="copy")
    assert r.status_code == 200 and r.json()["file"]["name"] == "a (1).txt"
    r = fop(user, "copy", f"{V}/b.txt", f"{V}/a (1).txt", safe=True, conflictsolve="copy")
    assert r.json()["file"]["name"] == "a (2).txt"

    # safe=false replaces; the replaced file goes to the trash, not away for good.
    since = etag(user)
    r = fop(user, "move", f"{V}/b.txt", f"{V}/a.txt")
    assert r.status_code == 200 and read(user, f"{V}/a.txt") == b"new"
    # Deletions come first in a delta, so the replaced a.txt goes before the new one lands.
    assert delta(user, since) == ([f"{V}/a.txt", f"{V}/b.txt"], [f"{V}/a.txt"])
    assert _trash_names(user) == ["a.txt"]
    assert user.http.post("/fops/restore", json={"path": [f"{V}/a.txt"]}).status_code == 409

    # A file never replaces a folder, nor a folder a file.
    mkdir(user, f"{V}/dir")
    assert "folder exists" in error(fop(user, "move", f"{V}/c.txt", f"{V}/dir"), 409)
    assert "file exists" in error(
        fop(user, "move", f"{V}/dir", f"{V}/c.txt", override="overwrite"), 409)


def test_folder_conflicts_merge_and_overwrite(user: User) -> None:
    for d in ("x", "x/sub", "y", "y/sub", "y/only_y"):
        mkdir(user, f"{V}/{d}")
    upload(user, f"{V}/x/sub/same.txt", b"from x")
    upload(user, f"{V}/x/sub/x.txt", b"x")
    upload(user, f"{V}/y/sub/same.txt", b"from y")
    upload(user, f"{V}/y/y.txt", b"y")
    assert "override=modify" in error(fop(user, "move", f"{V}/x", f"{V}/y"), 409)
    # With safe=true a file conflict inside the merge stops everything (all or nothing).
    error(fop(user, "copy", f"{V}/x", f"{V}/y", override="modify", safe=True), 409)
    assert children(user, f"{V}/y/sub") == ["same.txt"]

    r = fop(user, "copy", f"{V}/x", f"{V}/y", override="modify")
    assert r.status_code == 200 and r.json()["folder"]["name"] == "y"
    assert children(user, f"{V}/y") == ["only_y", "sub", "y.txt"]
    assert children(user, f"{V}/y/sub") == ["same.txt", "x.txt"]
    assert read(user, f"{V}/y/sub/same.txt") == b"from x"
    assert children(user, f"{V}/x/sub") == ["same.txt", "x.txt"]  # a copy leaves the source

    upload(user, f"{V}/x/sub/new.txt", b"n")
    since = etag(user)
    r = fop(user, "move", f"{V}/x", f"{V}/y", override="modify")
    assert r.status_code == 200
    deleted, changed = delta(user, since) or ([], [])
    assert f"{V}/x" in deleted and f"{V}/y/sub/new.txt" in changed
    assert status(user, f"{V}/x") == 404
    assert children(user, f"{V}/y/sub") == ["new.txt", "same.txt", "x.txt"]

    mkdir(user, f"{V}/z")
    r = fop(user, "move", f"{V}/z", f"{V}/y", override="overwrite")
    assert r.status_code == 200 and children(user, f"{V}/y") == []
    assert "y" in _trash_names(user)


def test_move_and_copy_errors(user: User, other_user: User) -> None:
    mkdir(user, f"{V}/a")
    mkdir(user, f"{V}/a/b")
    upload(user, f"{V}/f.txt", b"f")
    r = fop(user, "copy", f"{V}/f.txt", f"{V}/f.txt", safe=True, conflictsolve="copy")
    assert r.status_code == 200 and r.json()["file"]["name"] == "f (1).txt"
    user.http.delete("/fops/delete", params={"path": f"{V}/f (1).txt", "purge": "true"})
    since = etag(user)
    assert "into itself" in error(fop(user, "move", f"{V}/a", f"{V}/a/b/a"), 400)
    assert "into itself" in error(fop(user, "copy", f"{V}/a", f"{V}/a/a"), 400)
    assert "contains the source" in error(
        fop(user, "move", f"{V}/a/b", f"{V}/a", override="modify"), 400)
    assert "virtual folder" in error(fop(user, "move", V, "/VZWEB/x"), 400)
    assert "into '/'" in error(fop(user, "move", f"{V}/a", "/a"), 400)
    assert "onto itself" in error(fop(user, "copy", f"{V}/f.txt", f"{V}/f.txt"), 400)
    error(fop(user, "move", f"{V}/nope", f"{V}/x"), 404)
    error(fop(user, "move", f"{V}/f.txt", f"{V}/nope/f.txt"), 404)
    error(fop(user, "move", f"{V}/f.txt", "relative"), 400)
    error(user.http.post("/fops/move", json={"src": f"{V}/f.txt"}), 400)
    # Another account's paths do not exist for this one.
    for op in ("move", "copy", "rename"):
        error(fop(other_user, op, f"{V}/f.txt", f"{V}/g.txt"), 404)
    error(other_user.http.delete("/fops/delete", params={"path": f"{V}/f.txt"}), 404)
    assert children(user, V) == ["a", "f.txt"]
    assert delta(user, since) is None  # refused operations change nothing


def test_copy(cloud: Cloud, user: User) -> None:
    mkdir(user, f"{V}/d")
    mkdir(user, f"{V}/d/e")
    original = upload(user, f"{V}/d/e/p.jpg", b"picture")
    upload(user, f"{V}/d/gone.txt", b"bye")
    user.http.delete("/fops/delete", params={"path": f"{V}/d/gone.txt"})
    user.http.put("/tags", json={"uri": original["uri"], "Tags": "sea"})
    user.http.put("/favorites", json={"uri": [original["uri"]]})

    since = etag(user)
    r = fop(user, "copy", f"{V}/d", "/VZWEB/d2")
    assert r.status_code == 200, r.text
    assert delta(user, since) == ([], ["/VZWEB/d2", "/VZWEB/d2/e", "/VZWEB/d2/e/p.jpg"])
    assert children(user, "/VZWEB/d2") == ["e"]  # the trashed file stays behind
    copy = user.http.get("/metadata/VZWEB/d2/e/p.jpg").json()["file"]
    assert copy["checksum"] == original["checksum"] and copy["version"] == 1
    assert copy["contentToken"] != original["contentToken"]
    assert (copy["tags"], copy["favorite"]) == ("sea", False)
    assert read(user, "/VZWEB/d2/e/p.jpg") == b"picture"
    used = user.http.get("/account").json()["usage"]["quotaUsed"]
    assert used == 2 * len(b"picture") + len(b"bye")

    # The copy is independent: purging the original keeps the shared content.
    user.http.delete("/fops/delete", params={"path": f"{V}/d", "purge": "true"})
    assert read(user, "/VZWEB/d2/e/p.jpg") == b"picture"

    small = cloud.new_user("small", quota=10)
    upload(small, f"{V}/six.txt", b"123456")
    assert "over quota" in error(fop(small, "copy", f"{V}/six.txt", f"{V}/copy.txt"), 413)
    small.http.close()


def test_folder_file_limit(cloud: Cloud, user: User) -> None:
    cloud.server.cloud.config.folder_file_limit = 2
    mkdir(user, f"{V}/full")
    upload(user, f"{V}/full/1", b"1")
    upload(user, f"{V}/full/2", b"2")
    upload(user, f"{V}/3", b"3")
    r = fop(user, "move", f"{V}/3", f"{V}/full/3")
    error(r, 413)
    assert r.json()["error"] == "folder_full"
    # Renaming inside a full folder adds no file to it.
    assert fop(user, "rename", f"{V}/full/1", f"{V}/full/one").status_code == 200


def test_delete_trash_and_purge(user: User) -> None:
    mkdir(user, f"{V}/d")
    upload(user, f"{V}/d/a.txt", b"aaaa")
    upload(user, f"{V}/b.txt", b"bb")
    since = etag(user)
    r = user.http.delete("/fops/delete", params={"path": f"{V}/d"})
    assert r.status_code == 200 and r.content == b""
    assert delta(user, since) == ([f"{V}/d"], [])
    assert status(user, f"{V}/d") == 410
    assert "trash" in error(user.http.delete("/fops/delete", params={"path": f"{V}/d"}), 404)
    # Trashed files still count toward the quota; purged ones do not.
    assert user.http.get("/account").json()["usage"]["quotaUsed"] == 6
    r = user.http.delete("/fops/delete", params={"path": f"{V}/b.txt", "purge": "TRUE"})
    assert r.status_code == 200
    assert status(user, f"{V}/b.txt") == 404 and _trash_names(user) == ["d"]
    assert delta(user, since) == ([f"{V}/d", f"{V}/b.txt"], [])
    assert user.http.get("/account").json()["usage"]["quotaUsed"] == 4
    error(user.http.delete("/fops/delete", params={"path": V}), 400)
    error(user.http.delete("/fops/delete", params={"path": "/"}), 400)
    error(user.http.delete("/fops/delete", params={"path": f"{V}/nope"}), 404)
    error(user.http.delete("/fops/delete", params={"path": f"{V}/d", "purge": "maybe"}), 400)
