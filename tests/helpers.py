"""Helpers shared by the server tests; every one goes over real HTTP.

- ``upload(user, path, data)``: upload ``data`` as the file ``path`` (parent folder must
  exist) with an unchunked intent + POST; returns the file's JSON (wire names). Asserts
  success, so a test that expects a failure calls the endpoints itself.
- ``upload_chunked(user, path, data, chunk_size)``: the same with a chunked session, chunks
  sent in order, then committed; returns the file's JSON.
- ``intent(user, path, size, checksum, chunk=False)``: the raw intent response.
- ``with_query(url, **params)``: append parameters to a URL that has a query already.
- ``sha256(data)``: lower-case hex SHA-256, as the intent and upload URLs want it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from vzcloud.api import paths as P

from .conftest import User


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def with_query(url: str, **params: Any) -> str:
    """``url`` with ``params`` appended to its query (httpx's ``params=`` would replace
    the query the server put in an upload URL)."""
    return str(httpx.URL(url).copy_merge_params(params))


def intent(user: User, path: str, size: int, checksum: str, chunk: bool = False) -> httpx.Response:
    """GET /fileupload/intent for the file ``path`` (its parent folder and its name)."""
    parent, name = P.parent_and_name(path)
    return user.http.get("/fileupload/intent", params={
        "path": parent, "name": name, "size": size, "checksum": checksum,
        "chunk": "true" if chunk else "false",
    })


def upload(user: User, path: str, data: bytes) -> dict[str, Any]:
    """Upload ``data`` as ``path`` (unchunked); returns the file JSON of the 201 answer."""
    digest = sha256(data)
    r = intent(user, path, len(data), digest)
    assert r.status_code == 200, r.text
    url = r.json()["uploadurls"]["uploadurl"]
    r = user.http.post(with_query(url, checksum=digest), content=data,
                       headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    file: dict[str, Any] = r.json()["file"]
    return file


def upload_chunked(user: User, path: str, data: bytes, chunk_size: int) -> dict[str, Any]:
    """Upload ``data`` as ``path`` in chunks of ``chunk_size``; returns the file JSON."""
    digest = sha256(data)
    r = intent(user, path, len(data), digest, chunk=True)
    assert r.status_code == 200, r.text
    urls = r.json()["uploadurls"]
    for i, start in enumerate(range(0, max(len(data), 1), chunk_size), start=1):
        r = user.http.post(with_query(urls["uploadurl"], checksum=digest, offset=i),
                           content=data[start:start + chunk_size])
        assert r.status_code == 201, r.text
    r = user.http.post(urls["commiturl"])
    assert r.status_code == 201, r.text
    file: dict[str, Any] = r.json()["file"]
    return file
