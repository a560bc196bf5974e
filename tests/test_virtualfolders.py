"""POST/PUT/DELETE /virtualfolder over real HTTP."""

from __future__ import annotations

from .conftest import User
from .helpers import upload
from .tree_helpers import children, delta, error, etag, mkdir, read, status


def test_create_virtual_folder(user: User, other_user: User) -> None:
    since = etag(user)
    r = user.http.post("/virtualfolder/Backup", json={})
    assert r.status_code == 201, r.text
    assert delta(user, since) == ([], ["/Backup"])
    folder = r.json()["folder"]
    assert (folder["name"], folder["parentPath"]) == ("Backup", "/")
    assert folder["uri"] == f"dv-folder://{user.user_id}:Backup"
    assert "Backup" in children(user, "/")
    assert "exists" in error(user.http.post("/virtualfolder/Backup", json={}), 409)
    error(user.http.post("/virtualfolder/VZWEB", json={}), 409)
    assert "control" in error(user.http.post("/virtualfolder/a%01b", json={}), 400)
    # Each account has its own virtual folders.
    assert "Backup" not in children(other_user, "/")
    assert other_user.http.post("/virtualfolder/Backup", json={}).status_code == 201


def test_rename_virtual_folder(user: User, other_user: User) -> None:
    mkdir(user, "/VZWEB/docs")
    upload(user, "/VZWEB/docs/a.txt", b"a")
    upload(user, "/VZWEB/trashed.txt", b"t")
    user.http.delete("/fops/delete", params={"path": "/VZWEB/trashed.txt"})

    since = etag(user)
    r = user.http.put("/virtualfolder", json={"src": "VZWEB", "target": "Web"})
    assert r.status_code == 200, r.text
    assert delta(user, since) == (["/VZWEB"], ["/Web", "/Web/docs", "/Web/docs/a.txt"])
    assert r.json()["folder"]["name"] == "Web"
    assert read(user, "/Web/docs/a.txt") == b"a"
    assert status(user, "/VZWEB") == 404
    trash = user.http.get("/trash", params={"virtualfolder": "Web"}).json()["trashCan"]
    assert [f["parentPath"] for f in trash["file"]] == ["/Web"]  # the trash follows

    r = user.http.put("/virtualfolder", json={"src": "Web", "target": "Web"})
    assert r.status_code == 200
    assert "exists" in error(
        user.http.put("/virtualfolder", json={"src": "Web", "target": "VZMOBILE"}), 409)
    error(user.http.put("/virtualfolder", json={"src": "Nope", "target": "X"}), 404)
    error(user.http.put("/virtualfolder", json={"src": "Web", "target": "a/b"}), 400)
    error(other_user.http.put("/virtualfolder", json={"src": "Web", "target": "X"}), 404)


def test_delete_virtual_folder(user: User, other_user: User) -> None:
    assert user.http.delete("/virtualfolder", params={"name": "MyComputer"}).status_code == 200
    assert "MyComputer" not in children(user, "/")
    error(user.http.delete("/virtualfolder", params={"name": "MyComputer"}), 404)

    mkdir(user, "/VZWEB/d")
    upload(user, "/VZWEB/d/a.txt", b"abc")
    error(other_user.http.delete("/virtualfolder", params={"name": "Nope"}), 404)
    assert "not empty" in error(user.http.delete("/virtualfolder", params={"name": "VZWEB"}), 409)
    # Only trashed content still counts: deleting would purge it.
    user.http.delete("/fops/delete", params={"path": "/VZWEB/d"})
    assert "1 more in its trash" in error(
        user.http.delete("/virtualfolder", params={"name": "VZWEB"}), 409)
    since = etag(user)
    r = user.http.delete("/virtualfolder", params={"name": "VZWEB", "force": "true"})
    assert r.status_code == 200
    assert delta(user, since) == (["/VZWEB"], [])
    assert children(user, "/") == ["VZMOBILE"]
    assert user.http.get("/account").json()["usage"]["quotaUsed"] == 0
    error(user.http.get("/trash", params={"virtualfolder": "VZWEB"}), 404)
