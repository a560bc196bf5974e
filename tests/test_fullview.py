"""GET /fullview: the full view, deltas by etag, 412, 205 and change-log retention."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vzcloud.server.config import ServerConfig

from .conftest import Cloud, User
from .helpers import upload
from .tree_helpers import fop, mkdir

ETAG = "X-Header-ETag"


@pytest.fixture
def server_config(tmp_path: Path) -> ServerConfig:
    return ServerConfig(data_dir=tmp_path / "cloud", change_log_retention=20)


def _view(user: User, etag: str | None = None, **params: str) -> tuple[dict[str, Any], str]:
    r = user.http.get("/fullview", params=params, headers={ETAG: etag} if etag else {})
    assert r.status_code == 200, r.text
    return r.json()["data"], r.headers[ETAG]


def _paths(items: list[dict[str, Any]]) -> list[str]:
    return [i["parentPath"].rstrip("/") + "/" + i["name"] for i in items]


def test_full_view(cloud: Cloud, user: User) -> None:
    upload(user, "/VZMOBILE/a.txt", b"a")
    mkdir(user, "/VZMOBILE/full")
    mkdir(user, "/VZMOBILE/full/deep")
    upload(user, "/VZMOBILE/full/deep/b.txt", b"b")
    mkdir(user, "/VZMOBILE/empty")
    mkdir(user, "/VZMOBILE/empty/inner")
    data, etag = _view(user)
    assert _paths(data["file"]) == ["/VZMOBILE/a.txt", "/VZMOBILE/full/deep/b.txt"]
    # Folders with no file anywhere below them, virtual folders included.
    assert _paths(data["folder"]) == ["/MyComputer", "/VZMOBILE/empty", "/VZMOBILE/empty/inner",
                                      "/VZWEB"]
    assert data["deleted"] == {"path": []}
    epoch, _, seq = etag.rpartition("-")
    assert epoch == cloud.server.cloud.store.epoch and seq.isdigit()
    assert data["file"][1]["checksum"] and data["folder"][1]["count"] == 1

    data, _ = _view(user, virtualfolder="VZMOBILE")
    assert _paths(data["file"]) == ["/VZMOBILE/a.txt", "/VZMOBILE/full/deep/b.txt"]
    assert _paths(data["folder"]) == ["/VZMOBILE/empty", "/VZMOBILE/empty/inner"]
    data, _ = _view(user, virtualfolder="VZWEB")
    assert data["file"] == [] and _paths(data["folder"]) == ["/VZWEB"]
    assert user.http.get("/fullview", params={"virtualfolder": "NOPE"}).status_code == 404


def test_delta_after_add_and_change(user: User) -> None:
    upload(user, "/VZMOBILE/a.txt", b"a")
    _, etag = _view(user)
    r = user.http.get("/fullview", headers={ETAG: etag})
    assert r.status_code == 412 and r.json()["error"] == "not_modified"
    assert r.headers[ETAG] == etag

    upload(user, "/VZMOBILE/a.txt", b"a2")
    upload(user, "/VZWEB/new.txt", b"n")
    mkdir(user, "/VZMOBILE/newdir")
    data, etag2 = _view(user, etag)
    assert etag2 != etag
    assert _paths(data["file"]) == ["/VZMOBILE/a.txt", "/VZWEB/new.txt"]
    assert data["file"][0]["version"] == 2
    assert _paths(data["folder"]) == ["/VZMOBILE/newdir"]
    assert data["deleted"]["path"] == []
    data, _ = _view(user, etag, virtualfolder="VZWEB")
    assert _paths(data["file"]) == ["/VZWEB/new.txt"] and data["folder"] == []
    assert user.http.get("/fullview", headers={ETAG: etag2}).status_code == 412


def test_bad_and_foreign_etags(user: User) -> None:
    _, etag = _view(user)
    for bad in ("garbage", "abc-", "-5", "abc-x1"):
        r = user.http.get("/fullview", headers={ETAG: bad})
        assert r.status_code == 400, (bad, r.text)
    epoch, _, seq = etag.rpartition("-")
    for foreign in (f"other{epoch}-{seq}", f"{epoch}-{int(seq) + 1000}"):
        r = user.http.get("/fullview", headers={ETAG: foreign})
        assert r.status_code == 205 and r.content == b""


def test_205_after_retention_pruning(cloud: Cloud, user: User) -> None:
    _, old = _view(user)
    for i in range(25):  # past change_log_retention=20
        upload(user, f"/VZMOBILE/{i}", b"x")
    r = user.http.get("/fullview", headers={ETAG: old})
    assert r.status_code == 205
    store = cloud.server.cloud.store
    account = store.account_by_username(user.username)
    assert account is not None
    with store.tx() as db:
        rows = db.execute("SELECT COUNT(*) FROM changes WHERE account_id=?",
                          (account.id,)).fetchone()[0]
    assert rows == 20 and store.log_floor(account.id) > 0
    # A recent etag still works.
    data, etag = _view(user)
    upload(user, "/VZMOBILE/last", b"x")
    data, _ = _view(user, etag)
    assert _paths(data["file"]) == ["/VZMOBILE/last"]


def test_deleted_paths_in_the_delta(user: User) -> None:
    upload(user, "/VZMOBILE/doomed.txt", b"d")
    _, etag = _view(user)
    r = user.http.delete("/fops/delete", params={"path": "/VZMOBILE/doomed.txt", "purge": "true"})
    assert r.status_code == 200, r.text
    data, _ = _view(user, etag)
    assert data["deleted"]["path"] == ["/VZMOBILE/doomed.txt"]
    assert data["file"] == []
    data, _ = _view(user)
    assert data["file"] == []


def test_accounts_are_separate(user: User, other_user: User) -> None:
    upload(user, "/VZMOBILE/mine.txt", b"m")
    data, _ = _view(other_user)
    assert data["file"] == []


def test_trash_and_move_in_the_delta(user: User) -> None:
    mkdir(user, "/VZMOBILE/dir")
    upload(user, "/VZMOBILE/dir/in.txt", b"i")
    upload(user, "/VZMOBILE/trashed.txt", b"t")
    _, etag = _view(user)
    r = fop(user, "move", "/VZMOBILE/dir", "/VZWEB/dir")
    assert r.status_code == 200, r.text
    r = user.http.delete("/fops/delete", params={"path": "/VZMOBILE/trashed.txt"})
    assert r.status_code == 200, r.text
    data, _ = _view(user, etag)
    # A moved folder: its old path deleted, its new contents added.
    assert sorted(data["deleted"]["path"]) == ["/VZMOBILE/dir", "/VZMOBILE/trashed.txt"]
    assert _paths(data["file"]) == ["/VZWEB/dir/in.txt"]
    assert _paths(data["folder"]) == ["/VZWEB/dir"]
    data, _ = _view(user, etag, virtualfolder="VZWEB")
    assert data["deleted"]["path"] == [] and _paths(data["file"]) == ["/VZWEB/dir/in.txt"]


def test_pruning_keeps_exactly_the_newest_rows(cloud: Cloud, user: User,
                                               other_user: User) -> None:
    """prune_changes remembers each account's row count: with other accounts' changes
    interleaved, calls in a row, and a call inside an enclosing transaction, it still
    keeps exactly the newest ``keep`` rows and raises log_floor to the newest one gone."""
    store = cloud.server.cloud.store
    mine, theirs = (store.account_by_username(u.username) for u in (user, other_user))
    assert mine is not None and theirs is not None

    def seqs() -> list[int]:
        with store.tx() as db:
            return [r[0] for r in db.execute(
                "SELECT seq FROM changes WHERE account_id=? ORDER BY seq", (mine.id,))]

    logged = seqs()
    keep = 7
    for round_ in range(8):
        for _ in range(round_ * 2):
            store.log_change(theirs.id, item_id=theirs.root_id)
            store.log_change(mine.id, item_id=mine.root_id)
            logged.append(seqs()[-1])
        if round_ == 5:
            with store.tx():  # nested: the count is not trusted afterwards
                store.prune_changes(mine.id, keep)
        else:
            store.prune_changes(mine.id, keep)
        store.prune_changes(mine.id, keep)  # a call with nothing new changes nothing
        assert seqs() == logged[-keep:]
        gone = logged[:-keep]
        assert store.log_floor(mine.id) == (gone[-1] if gone else 0)
