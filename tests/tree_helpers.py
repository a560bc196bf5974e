"""Helpers of the folder-operation tests (fops, trash, virtual folders, favorites, tags,
search); every one goes over real HTTP. File content comes from ``helpers.upload``."""

from __future__ import annotations

from typing import Any

import httpx

from vzcloud.api import paths as P

from .conftest import User


def mkdir(user: User, path: str) -> dict[str, Any]:
    """Create the folder ``path`` (its parent must exist); returns the folder JSON."""
    parent, name = P.parent_and_name(path)
    r = user.http.post("/fops/createfolder", json={"path": parent, "name": name})
    assert r.status_code == 201, r.text
    folder: dict[str, Any] = r.json()["folder"]
    return folder


def fop(user: User, op: str, src: str, target: str, **extra: Any) -> httpx.Response:
    """POST /fops/{op} (copy, move, rename) with ``src``, ``target`` and ``extra``."""
    return user.http.post(f"/fops/{op}", json={"src": src, "target": target, **extra})


def children(user: User, path: str) -> list[str]:
    """Names in the folder ``path`` (folders, then files), from GET /metadata."""
    r = user.http.get(f"/metadata{path}", params={"count": 100})
    assert r.status_code == 200, r.text
    body = r.json()["folder"]
    return [f["name"] for f in body["folder"]] + [f["name"] for f in body["file"]]


def status(user: User, path: str) -> int:
    """The status of GET /metadata{path}: 200 live, 404 missing, 410 in the trash."""
    return user.http.get(f"/metadata{path}").status_code


def read(user: User, path: str) -> bytes:
    r = user.http.get(f"/files{path}")
    assert r.status_code == 200, r.text
    return r.content


def error(r: httpx.Response, status: int) -> str:
    """Assert ``r`` is a JSON error with ``status``; returns its description."""
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error", "error_description"}, body
    description: str = body["error_description"]
    return description


def etag(user: User) -> str:
    """The current fullview etag of the account."""
    r = user.http.get("/fullview")
    assert r.status_code == 200, r.text
    return r.headers["X-Header-ETag"]


def delta(user: User, since: str) -> tuple[list[str], list[str]] | None:
    """What fullview reports since the etag ``since``: (deleted paths, paths of changed
    files and folders), or None when it answers 412 (nothing changed)."""
    r = user.http.get("/fullview", headers={"X-Header-ETag": since})
    if r.status_code == 412:
        return None
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    changed = [f"{i['parentPath'].rstrip('/')}/{i['name']}" for i in data["folder"] + data["file"]]
    return data["deleted"]["path"], sorted(changed)
