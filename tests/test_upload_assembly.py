"""Chunked uploads assembled as chunks arrive in order (``routes.uploads._Assembly``):
the commit's result is the chunk files' content whatever the order, re-sends and
failed commits, and nothing is left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vzcloud.server.config import ServerConfig
from vzcloud.server.routes import uploads

from .conftest import Cloud, User
from .helpers import intent, sha256, with_query

KiB = 1024


@pytest.fixture
def server_config(tmp_path: Path) -> ServerConfig:
    return ServerConfig(data_dir=tmp_path / "cloud", max_chunk=32 * KiB)


def _open(user: User, path: str, data: bytes) -> dict[str, str]:
    r = intent(user, path, len(data), sha256(data), chunk=True)
    assert r.status_code == 200, r.text
    urls: dict[str, str] = r.json()["uploadurls"]
    return urls


def _chunk(user: User, urls: dict[str, str], data: bytes, offset: int, body: bytes) -> None:
    r = user.http.post(with_query(urls["uploadurl"], checksum=sha256(data), offset=offset),
                       content=body)
    assert r.status_code == 201, r.text


def _commit(user: User, urls: dict[str, str]) -> dict[str, object]:
    r = user.http.post(urls["commiturl"])
    assert r.status_code == 201, r.text
    file: dict[str, object] = r.json()["file"]
    return file


def _leftovers(cloud: Cloud) -> list[Path]:
    return list((cloud.server.cloud.config.data_dir / "tmp").iterdir())


def test_in_order_chunks_commit_without_rereading(cloud: Cloud, user: User) -> None:
    data = os.urandom(3 * 10 * KiB + 5)
    pieces = [data[i:i + 10 * KiB] for i in range(0, len(data), 10 * KiB)]
    urls = _open(user, "/VZMOBILE/in-order.bin", data)
    for n, piece in enumerate(pieces, 1):
        _chunk(user, urls, data, n, piece)
    upload_id = urls["commiturl"].rsplit("/", 1)[1]
    assert uploads._assemblies[upload_id].next == len(pieces) + 1  # all appended
    assert _commit(user, urls)["checksum"] == sha256(data)
    assert user.http.get("/files/VZMOBILE/in-order.bin").content == data
    assert upload_id not in uploads._assemblies and _leftovers(cloud) == []


def test_a_resent_appended_chunk_drops_the_assembly(cloud: Cloud, user: User) -> None:
    data = os.urandom(30)
    urls = _open(user, "/VZMOBILE/resent.bin", data)
    _chunk(user, urls, data, 1, os.urandom(10))  # wrong, appended at once
    _chunk(user, urls, data, 2, data[10:20])
    _chunk(user, urls, data, 1, data[:10])  # replaces the appended one
    _chunk(user, urls, data, 3, data[20:])
    assert _commit(user, urls)["checksum"] == sha256(data)
    assert user.http.get("/files/VZMOBILE/resent.bin").content == data
    assert _leftovers(cloud) == []


def test_failed_commit_then_the_missing_chunk(cloud: Cloud, user: User) -> None:
    data = os.urandom(40)
    urls = _open(user, "/VZMOBILE/late.bin", data)
    _chunk(user, urls, data, 2, data[20:])  # out of order: waits for chunk 1
    r = user.http.post(urls["commiturl"])
    assert r.status_code == 400 and r.json()["error"] == "missing_chunks"
    _chunk(user, urls, data, 1, data[:20])
    assert _commit(user, urls)["checksum"] == sha256(data)
    assert _leftovers(cloud) == []


def test_an_abandoned_session_leaves_no_writer(cloud: Cloud, user: User) -> None:
    data = os.urandom(20)
    urls = _open(user, "/VZMOBILE/gone.bin", data)
    _chunk(user, urls, data, 1, data[:10])
    upload_id = urls["commiturl"].rsplit("/", 1)[1]
    uploads._assemblies[upload_id].expires = 0  # as if expired
    other = _open(user, "/VZMOBILE/other.bin", data)
    _chunk(user, other, data, 1, data[:10])  # a new assembly sweeps expired ones
    assert upload_id not in uploads._assemblies
