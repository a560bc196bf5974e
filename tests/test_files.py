"""GET /metadata (listings and file metadata) and GET /files (content with Range)."""

from __future__ import annotations

import os

import httpx
import pytest

from vzcloud.api.endpoints import BY_NAME

from .conftest import Cloud, User
from .helpers import sha256, upload
from .tree_helpers import mkdir

# Download ----------------------------------------------------------------------------------

@pytest.fixture
def blob(user: User) -> bytes:
    data = os.urandom(3 * 1024 * 1024 + 123)  # several 1 MiB reads
    upload(user, "/VZMOBILE/pic.jpg", data)
    return data


def test_download_whole(user: User, blob: bytes) -> None:
    r = user.http.get("/files/VZMOBILE/pic.jpg")
    assert r.status_code == 200 and r.content == blob
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["content-length"] == str(len(blob))
    assert r.headers["etag"] == f'"{sha256(blob)}"'
    assert r.headers["accept-ranges"] == "bytes"


@pytest.mark.parametrize("spec, start, end", [
    ("bytes=0-9", 0, 10),                      # first bytes
    ("bytes=1048570-2097160", 1048570, 2097161),  # middle, across read boundaries
    (None, -10, None),                         # last ten: a suffix range
    ("bytes=3145000-", 3145000, None),         # open-ended
    ("bytes=3145000-99999999", 3145000, None),  # end past the file: clipped
])
def test_download_range(user: User, blob: bytes, spec: str | None, start: int,
                        end: int | None) -> None:
    spec = spec or "bytes=-10"
    r = user.http.get("/files/VZMOBILE/pic.jpg", headers={"Range": spec})
    assert r.status_code == 206, r.text
    want = blob[start:end]
    assert r.content == want
    first = start if start >= 0 else len(blob) + start
    assert r.headers["content-range"] == f"bytes {first}-{first + len(want) - 1}/{len(blob)}"
    assert r.headers["content-length"] == str(len(want))


def test_download_unsatisfiable_and_malformed_ranges(user: User, blob: bytes) -> None:
    r = user.http.get("/files/VZMOBILE/pic.jpg", headers={"Range": f"bytes={len(blob)}-"})
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{len(blob)}"
    assert r.json()["error"] == "range_not_satisfiable"
    r = user.http.get("/files/VZMOBILE/pic.jpg", headers={"Range": "pages=1-2"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_download_if_range(user: User, blob: bytes) -> None:
    etag = user.http.get("/files/VZMOBILE/pic.jpg").headers["etag"]
    r = user.http.get("/files/VZMOBILE/pic.jpg", headers={"Range": "bytes=0-0", "If-Range": etag})
    assert r.status_code == 206 and r.content == blob[:1]
    r = user.http.get("/files/VZMOBILE/pic.jpg", headers={"Range": "bytes=0-0", "If-Range": '"x"'})
    assert r.status_code == 200 and r.content == blob  # changed: the whole new content


def test_download_head(user: User, blob: bytes) -> None:
    r = user.http.head("/files/VZMOBILE/pic.jpg")
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-length"] == str(len(blob))
    r = user.http.head("/files/VZMOBILE/pic.jpg", headers={"Range": "bytes=-5"})
    assert r.status_code == 206 and r.headers["content-length"] == "5"


def test_download_with_access_token_query(cloud: Cloud, user: User, blob: bytes) -> None:
    assert BY_NAME["download"].auth == "bearer_or_query"
    url = f"{cloud.api}/files/VZMOBILE/pic.jpg"
    r = httpx.get(url, params={"access-token": user.access_token})
    assert r.status_code == 200 and r.content == blob
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, params={"access-token": "nope"}).status_code == 401


def test_download_errors(user: User, other_user: User, blob: bytes) -> None:
    r = other_user.http.get("/files/VZMOBILE/pic.jpg")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert user.http.get("/files/VZMOBILE/nope.jpg").status_code == 404
    r = user.http.get("/files/VZMOBILE")
    assert r.status_code == 400 and "folder" in r.json()["error_description"]
    assert user.http.get("/files/VZMOBILE/pic.jpg/x").status_code == 404


def test_download_serves_the_current_version(user: User) -> None:
    upload(user, "/VZMOBILE/v.txt", b"one")
    upload(user, "/VZMOBILE/v.txt", b"two!")
    r = user.http.get("/files/VZMOBILE/v.txt")
    assert r.content == b"two!" and r.headers["etag"] == f'"{sha256(b"two!")}"'


# Metadata ----------------------------------------------------------------------------------

def test_metadata_root_lists_virtual_folders(user: User) -> None:
    for path in ("/", ""):
        r = user.http.get(f"/metadata{path}")
        assert r.status_code == 200, r.text
        listing = r.json()["folder"]
        assert sorted(f["name"] for f in listing["folder"]) == ["MyComputer", "VZMOBILE", "VZWEB"]
        assert all(f["parentPath"] == "/" for f in listing["folder"])
        assert listing["file"] == []


def test_metadata_of_a_file(user: User) -> None:
    f = upload(user, "/VZMOBILE/a.txt", b"abc")
    r = user.http.get("/metadata/VZMOBILE/a.txt")
    assert r.status_code == 200 and r.json() == {"file": f}


def test_metadata_missing_and_other_account(user: User, other_user: User) -> None:
    upload(user, "/VZMOBILE/a.txt", b"abc")
    assert user.http.get("/metadata/VZMOBILE/b.txt").status_code == 404
    assert user.http.get("/metadata/NOPE").status_code == 404
    assert other_user.http.get("/metadata/VZMOBILE/a.txt").status_code == 404
    assert user.http.get("/metadata/VZMOBILE//a").status_code == 400


def test_metadata_listing_has_own_fields_files_and_folders(user: User) -> None:
    upload(user, "/VZMOBILE/b.txt", b"bb")
    mkdir(user, "/VZMOBILE/sub")
    upload(user, "/VZMOBILE/sub/inner", b"x")
    body = user.http.get("/metadata/VZMOBILE").json()["folder"]
    assert body["name"] == "VZMOBILE" and body["parentPath"] == "/" and body["count"] == 2
    assert [f["name"] for f in body["file"]] == ["b.txt"]
    assert [(f["name"], f["count"], f["parentPath"]) for f in body["folder"]] == [
        ("sub", 1, "/VZMOBILE")]
    assert body["file"][0]["uri"] == f"dv-file://{user.user_id}:VZMOBILE/b.txt"


def test_metadata_sort_page_filter(user: User) -> None:
    sizes = {"c.png": 3, "a.txt": 1, "B.jpg": 5, "d.gif": 2}
    for name, size in sizes.items():
        upload(user, f"/VZWEB/{name}", b"x" * size)
    mkdir(user, "/VZWEB/zdir")
    mkdir(user, "/VZWEB/adir")

    def names(**params) -> list[str]:
        r = user.http.get("/metadata/VZWEB", params=params)
        assert r.status_code == 200, r.text
        body = r.json()["folder"]
        return [f["name"] for f in body["folder"]] + [f["name"] for f in body["file"]]

    assert names() == ["adir", "zdir", "a.txt", "B.jpg", "c.png", "d.gif"]
    assert names(sort="name+desc") == ["zdir", "adir", "d.gif", "c.png", "B.jpg", "a.txt"]
    assert names(sort="size+desc") == ["adir", "zdir", "B.jpg", "c.png", "d.gif", "a.txt"]
    assert names(sort="size asc") == ["adir", "zdir", "a.txt", "d.gif", "c.png", "B.jpg"]
    assert names(sort="extension+asc", filter="file") == ["d.gif", "B.jpg", "c.png", "a.txt"]
    assert names(sort="contentType+asc", filter="file") == ["d.gif", "B.jpg", "c.png", "a.txt"]
    assert names(sort="versionCreated+desc", filter="file") == ["d.gif", "B.jpg", "a.txt",
                                                               "c.png"]
    assert names(sort="creationDate+asc", filter="folder") == ["zdir", "adir"]
    assert names(sort="favorite+desc", filter="file") == ["a.txt", "B.jpg", "c.png", "d.gif"]
    assert names(filter="folder") == ["adir", "zdir"]
    # Pages run over folders then files.
    assert names(count=4) == ["adir", "zdir", "a.txt", "B.jpg"]
    assert names(count=4, page=2) == ["c.png", "d.gif"]
    assert names(count=4, start=2) == ["c.png", "d.gif"]
    assert names(count=4, page=3) == []
    for bad in ({"sort": "color+asc"}, {"count": 0}, {"count": 101}, {"page": 0},
                {"filter": "link"}, {"include_deleted": "maybe"}):
        r = user.http.get("/metadata/VZWEB", params=bad)
        assert r.status_code == 400, (bad, r.text)


def test_metadata_trashed_is_410_and_listed_with_include_deleted(user: User) -> None:
    upload(user, "/VZMOBILE/gone.txt", b"bye")
    upload(user, "/VZMOBILE/kept.txt", b"hi")
    r = user.http.delete("/fops/delete", params={"path": "/VZMOBILE/gone.txt"})
    assert r.status_code == 200, r.text
    r = user.http.get("/metadata/VZMOBILE/gone.txt")
    assert r.status_code == 410 and r.json()["error"] == "gone"
    body = user.http.get("/metadata/VZMOBILE").json()["folder"]
    assert [f["name"] for f in body["file"]] == ["kept.txt"]
    body = user.http.get("/metadata/VZMOBILE", params={"include_deleted": "TRUE"}).json()["folder"]
    assert {(f["name"], f["deleted"]) for f in body["file"]} == {
        ("gone.txt", True), ("kept.txt", False)}
    assert user.http.get("/files/VZMOBILE/gone.txt").status_code == 410
