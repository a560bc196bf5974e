"""Uploads over real HTTP: intent, unchunked and chunked POSTs, commit, limits."""

from __future__ import annotations

import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from vzcloud.server.admin import create_user
from vzcloud.server.config import ServerConfig

from .conftest import Cloud, User
from .helpers import intent, sha256, upload, upload_chunked, with_query
from .tree_helpers import mkdir

KiB = 1024


@pytest.fixture
def server_config(tmp_path: Path) -> ServerConfig:
    """Small limits so the tests reach them."""
    return ServerConfig(
        data_dir=tmp_path / "cloud", max_unchunked=64 * KiB, max_chunk=32 * KiB,
        versions_kept=3, folder_file_limit=5,
    )


def _open(user: User, path: str, data: bytes, chunk: bool = False) -> dict[str, str]:
    r = intent(user, path, len(data), sha256(data), chunk=chunk)
    assert r.status_code == 200, r.text
    urls: dict[str, str] = r.json()["uploadurls"]
    return urls


def _chunk(user: User, urls: dict[str, str], data: bytes, offset: int, body: bytes):
    return user.http.post(with_query(urls["uploadurl"], checksum=sha256(data), offset=offset),
                          content=body)


def _error(r, status: int, error: str | None = None) -> None:
    assert r.status_code == status, r.text
    if error is not None:
        assert r.json()["error"] == error, r.text


# Unchunked ---------------------------------------------------------------------------------

def test_unchunked_upload_returns_the_file(user: User) -> None:
    f = upload(user, "/VZMOBILE/a.txt", b"hello")
    assert f["name"] == "a.txt" and f["parentPath"] == "/VZMOBILE"
    assert f["size"] == 5 and f["checksum"] == sha256(b"hello")
    assert f["systemAttributes"]["mimeType"] == "text/plain"
    assert f["extension"] == "txt" and f["version"] == 1 and not f["deleted"]
    assert f["uri"] == f"dv-file://{user.user_id}:VZMOBILE/a.txt"
    assert user.http.get("/files/VZMOBILE/a.txt").content == b"hello"
    assert user.http.get("/account").json()["usage"]["quotaUsed"] == 5


def test_intent_urls_are_absolute(cloud: Cloud, user: User) -> None:
    urls = _open(user, "/VZMOBILE/a.bin", b"x")
    assert urls["uploadurl"].startswith(cloud.api + "/upload/")
    assert urls["uploadurl"].endswith("?chunk=false") and "commiturl" not in urls
    urls = _open(user, "/VZMOBILE/a.bin", b"x", chunk=True)
    assert urls["uploadurl"].endswith("?chunk=true")
    assert urls["commiturl"].startswith(cloud.api + "/commit/")


def test_empty_file_and_unknown_extension(user: User) -> None:
    f = upload(user, "/VZMOBILE/empty.zzqq", b"")
    assert f["size"] == 0 and f["systemAttributes"]["mimeType"] == "application/octet-stream"
    r = user.http.get("/files/VZMOBILE/empty.zzqq")
    assert r.status_code == 200 and r.content == b""


def test_same_name_makes_a_new_version_and_keeps_versions_kept(cloud: Cloud, user: User) -> None:
    for i in range(1, 6):
        f = upload(user, "/VZMOBILE/v.txt", f"version {i}".encode())
        assert f["version"] == i
    assert user.http.get("/files/VZMOBILE/v.txt").content == b"version 5"
    assert user.http.get("/account").json()["usage"]["quotaUsed"] == len(b"version 5")
    store = cloud.server.cloud.store
    with store.tx() as db:
        kept = [r[0] for r in db.execute("SELECT version FROM versions ORDER BY version")]
    assert kept == [3, 4, 5]
    blobs = cloud.server.cloud.blobs
    assert not blobs.exists(sha256(b"version 1")) and blobs.exists(sha256(b"version 3"))


def test_same_content_twice_is_stored_once(cloud: Cloud, user: User) -> None:
    upload(user, "/VZMOBILE/one", b"same")
    upload(user, "/VZWEB/two", b"same")
    assert cloud.server.cloud.blobs.all_checksums() == [sha256(b"same")]


def test_wrong_checksum_size_and_body(user: User) -> None:
    data = b"0123456789"
    urls = _open(user, "/VZMOBILE/c.bin", data)
    # The query checksum must be the intent's.
    r = user.http.post(with_query(urls["uploadurl"], checksum=sha256(b"other")), content=data)
    _error(r, 400, "checksum_mismatch")
    # The body must hash to it.
    r = user.http.post(with_query(urls["uploadurl"], checksum=sha256(data)), content=b"9876543210")
    _error(r, 400, "checksum_mismatch")
    # Too short.
    r = user.http.post(with_query(urls["uploadurl"], checksum=sha256(data)), content=data[:5])
    _error(r, 400, "size_mismatch")
    # Too long: 413 as soon as it is over.
    r = user.http.post(with_query(urls["uploadurl"], checksum=sha256(data)), content=data + b"!")
    _error(r, 413, "size_mismatch")

    def streamed():  # no Content-Length: the server counts as it reads
        yield data
        yield b"more"

    r = user.http.post(with_query(urls["uploadurl"], checksum=sha256(data)), content=streamed())
    _error(r, 413, "size_mismatch")
    # The session survived the failures: the right body still works.
    r = user.http.post(with_query(urls["uploadurl"], checksum=sha256(data)), content=data)
    assert r.status_code == 201, r.text
    # ... once.
    r = user.http.post(with_query(urls["uploadurl"], checksum=sha256(data)), content=data)
    _error(r, 404)
    assert user.http.get("/metadata/VZMOBILE/c.bin").json()["file"]["size"] == 10


def test_missing_checksum_parameter(user: User) -> None:
    urls = _open(user, "/VZMOBILE/c.bin", b"x")
    _error(user.http.post(urls["uploadurl"], content=b"x"), 400)


def test_intent_validation(user: User) -> None:
    good = sha256(b"x")
    _error(intent(user, "/a.txt", 1, good), 400)  # into "/" itself
    _error(intent(user, "/NOPE/a.txt", 1, good), 404)
    _error(intent(user, "/VZMOBILE/missing/a.txt", 1, good), 404)
    _error(intent(user, "/VZMOBILE/a.txt", 1, good.upper()), 400)
    _error(intent(user, "/VZMOBILE/a.txt", 1, "abc"), 400)
    _error(intent(user, "/VZMOBILE/a.txt", -1, good), 400)
    r = user.http.get("/fileupload/intent", params={"path": "/VZMOBILE", "name": "a/b",
                                                   "size": 1, "checksum": good})
    _error(r, 400)
    upload(user, "/VZMOBILE/f", b"file")
    _error(intent(user, "/VZMOBILE/f/a.txt", 1, good), 400)  # parent is a file
    _error(intent(user, "/VZMOBILE", 1, good), 400)  # a name in "/" is also "into /"


def test_name_of_a_folder_is_a_conflict(user: User) -> None:
    mkdir(user, "/VZMOBILE/dir")
    _error(intent(user, "/VZMOBILE/dir", 1, sha256(b"x")), 409)


def test_over_max_unchunked_says_use_chunks(user: User) -> None:
    r = intent(user, "/VZMOBILE/big", 64 * KiB + 1, sha256(b""))
    _error(r, 413, "file_too_large")
    assert "chunk=true" in r.json()["error_description"]
    assert intent(user, "/VZMOBILE/big", 64 * KiB, sha256(b"")).status_code == 200


def test_over_quota(cloud: Cloud) -> None:
    u = cloud.new_user("small", quota=100)
    upload(u, "/VZMOBILE/a", b"x" * 60)
    _error(intent(u, "/VZMOBILE/b", 41, sha256(b"")), 413, "quota_exceeded")
    assert intent(u, "/VZMOBILE/b", 40, sha256(b"")).status_code == 200
    # Replacing a file counts only the difference.
    assert intent(u, "/VZMOBILE/a", 100, sha256(b"")).status_code == 200
    u.http.close()


def test_folder_file_limit_is_413(user: User) -> None:
    for i in range(5):
        upload(user, f"/VZMOBILE/{i}", b"x")
    _error(intent(user, "/VZMOBILE/5", 1, sha256(b"x")), 413, "folder_full")
    upload(user, "/VZMOBILE/4", b"new version is fine")


def test_another_accounts_upload_is_not_found(user: User, other_user: User) -> None:
    data = b"secret"
    urls = _open(user, "/VZMOBILE/s", data)
    r = other_user.http.post(with_query(urls["uploadurl"], checksum=sha256(data)), content=data)
    _error(r, 404)
    urls = _open(user, "/VZMOBILE/s", data, chunk=True)
    _error(_chunk(other_user, urls, data, 1, data), 404)
    _error(other_user.http.post(urls["commiturl"]), 404)
    assert user.http.get("/metadata/VZMOBILE/s").status_code == 404
    r = user.http.post("/upload/nope", params={"chunk": "true", "checksum": sha256(data),
                                                "offset": 1}, content=data)
    _error(r, 404)


def test_upload_without_token_is_401(user: User) -> None:
    import httpx

    urls = _open(user, "/VZMOBILE/t", b"t")
    r = httpx.post(with_query(urls["uploadurl"], checksum=sha256(b"t")), content=b"t")
    assert r.status_code == 401


# Chunked -----------------------------------------------------------------------------------

def test_chunked_in_order(user: User) -> None:
    data = os.urandom(100 * KiB + 7)
    f = upload_chunked(user, "/VZMOBILE/b.bin", data, 32 * KiB)
    assert f["size"] == len(data) and f["checksum"] == sha256(data)
    assert user.http.get("/files/VZMOBILE/b.bin").content == data


def test_chunked_out_of_order_in_parallel_with_a_resent_chunk(cloud: Cloud, user: User) -> None:
    size = 10 * KiB
    data = os.urandom(size * 12 + 100)
    pieces = {i + 1: data[start:start + size] for i, start in enumerate(range(0, len(data), size))}
    urls = _open(user, "/VZMOBILE/p.bin", data, chunk=True)
    # A wrong chunk 3 first, replaced later by the right one.
    assert _chunk(user, urls, data, 3, os.urandom(size)).status_code == 201
    order = list(pieces)
    random.Random(7).shuffle(order)
    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(lambda i: _chunk(user, urls, data, i, pieces[i]), order))
    assert [r.status_code for r in results] == [201] * len(order)
    assert all(r.content == b"" for r in results)
    r = user.http.post(urls["commiturl"])
    assert r.status_code == 201, r.text
    assert r.json()["file"]["checksum"] == sha256(data)
    assert user.http.get("/files/VZMOBILE/p.bin").content == data
    # Session and chunk files are gone.
    upload_id = urls["commiturl"].rsplit("/", 1)[1]
    assert not (cloud.server.cloud.config.data_dir / "uploads" / upload_id).exists()
    _error(user.http.post(urls["commiturl"]), 404)


def test_commit_names_missing_chunks(user: User) -> None:
    data = os.urandom(50)
    urls = _open(user, "/VZMOBILE/m.bin", data, chunk=True)
    _error(user.http.post(urls["commiturl"]), 400, "missing_chunks")
    for i in (1, 3, 5):
        assert _chunk(user, urls, data, i, data[(i - 1) * 10:i * 10]).status_code == 201
    r = user.http.post(urls["commiturl"])
    _error(r, 400, "missing_chunks")
    assert "2, 4" in r.json()["error_description"]
    for i in (2, 4):
        assert _chunk(user, urls, data, i, data[(i - 1) * 10:i * 10]).status_code == 201
    assert user.http.post(urls["commiturl"]).status_code == 201


def test_commit_checks_size_and_checksum(user: User) -> None:
    data = os.urandom(40)
    urls = _open(user, "/VZMOBILE/k.bin", data, chunk=True)
    assert _chunk(user, urls, data, 1, data[:20]).status_code == 201
    _error(user.http.post(urls["commiturl"]), 400, "size_mismatch")  # last chunk never came
    assert _chunk(user, urls, data, 2, os.urandom(20)).status_code == 201
    _error(user.http.post(urls["commiturl"]), 400, "checksum_mismatch")
    assert _chunk(user, urls, data, 2, data[20:]).status_code == 201  # re-sent: replaces
    assert user.http.post(urls["commiturl"]).status_code == 201


def test_chunk_limits(user: User) -> None:
    data = os.urandom(80 * KiB)
    urls = _open(user, "/VZMOBILE/l.bin", data, chunk=True)
    _error(_chunk(user, urls, data, 1, data[:32 * KiB + 1]), 413, "chunk_too_large")
    assert _chunk(user, urls, data, 1, data[:32 * KiB]).status_code == 201
    assert _chunk(user, urls, data, 2, data[32 * KiB:64 * KiB]).status_code == 201
    # Chunks adding up past the declared size.
    _error(_chunk(user, urls, data, 3, os.urandom(16 * KiB + 1)), 413, "size_mismatch")
    _error(user.http.post(with_query(urls["uploadurl"], checksum=sha256(data)), content=b"x"),
           400)  # no offset
    _error(user.http.post(with_query(urls["uploadurl"], checksum=sha256(data), offset=0),
                          content=b"x"), 400)
    assert _chunk(user, urls, data, 3, data[64 * KiB:]).status_code == 201
    assert user.http.post(urls["commiturl"]).status_code == 201


def test_unchunked_session_has_no_commit(user: User) -> None:
    urls = _open(user, "/VZMOBILE/u", b"u")
    upload_id = urls["uploadurl"].split("/upload/")[1].split("?")[0]
    _error(user.http.post(f"/commit/{upload_id}"), 400)


def test_expired_sessions_are_removed(cloud: Cloud, user: User) -> None:
    data = b"abandoned"
    urls = _open(user, "/VZMOBILE/x", data, chunk=True)
    assert _chunk(user, urls, data, 1, data).status_code == 201
    upload_id = urls["commiturl"].rsplit("/", 1)[1]
    store = cloud.server.cloud.store
    with store.tx() as db:
        db.execute("UPDATE uploads SET expires=0 WHERE id=?", (upload_id,))
    _error(user.http.post(urls["commiturl"]), 404)
    _open(user, "/VZMOBILE/y", b"y")  # an intent cleans up lazily
    assert not (cloud.server.cloud.config.data_dir / "uploads" / upload_id).exists()
    with store.tx() as db:
        assert db.execute("SELECT COUNT(*) FROM uploads WHERE id=?", (upload_id,)).fetchone()[0] == 0


def test_start_removes_crash_leftovers(server_config: ServerConfig) -> None:
    from vzcloud.server.app import CloudServer

    cloud = CloudServer(server_config)
    orphan = cloud.blobs.put_bytes(b"never committed")
    (cloud.blobs.tmp_dir / "half.part").write_bytes(b"half")
    stray = server_config.data_dir / "uploads" / "no-such-session"
    stray.mkdir(parents=True)
    (stray / "1").write_bytes(b"chunk")
    cloud.close()
    cloud = CloudServer(server_config)
    assert not cloud.blobs.exists(orphan)
    assert list(cloud.blobs.tmp_dir.iterdir()) == []
    assert not stray.exists()
    cloud.close()


# Concurrent small uploads: blobs placed outside the store lock, one shared WAL flush -----

def test_concurrent_uploads_all_land_once_each(cloud: Cloud, user: User) -> None:
    """Sixteen unchunked uploads at once, half of them the same content: every one is
    answered 201 and readable, each content is one blob, nothing is left in tmp/."""
    for d in range(4):  # folders hold at most 5 files here
        mkdir(user, f"/VZMOBILE/many{d}")
    contents = {f"/VZMOBILE/many{i % 4}/f{i:02d}": (b"same" if i % 2 else b"own %d" % i)
                for i in range(16)}
    with ThreadPoolExecutor(16) as pool:
        files = list(pool.map(lambda item: upload(user, *item), contents.items()))
    assert sorted(f["name"] for f in files) == sorted(p.rsplit("/", 1)[1] for p in contents)
    for path, data in contents.items():
        assert user.http.get(f"/files{path}").content == data
    blobs = cloud.server.cloud.blobs
    assert sorted(blobs.all_checksums()) == sorted({sha256(d) for d in contents.values()})
    assert list(blobs.tmp_dir.iterdir()) == []
    quota = user.http.get("/account").json()["usage"]["quotaUsed"]
    assert quota == sum(len(d) for d in contents.values())


def test_upload_whose_folder_went_away_leaves_no_blob(cloud: Cloud, user: User) -> None:
    mkdir(user, "/VZMOBILE/gone")
    data = b"orphan to be"
    urls = _open(user, "/VZMOBILE/gone/x", data)
    r = user.http.delete("/fops/delete", params={"path": "/VZMOBILE/gone", "purge": "true"})
    assert r.status_code == 200, r.text
    r = user.http.post(with_query(urls["uploadurl"], checksum=sha256(data)), content=data)
    _error(r, 404)
    blobs = cloud.server.cloud.blobs
    assert not blobs.exists(sha256(data))
    assert list(blobs.tmp_dir.iterdir()) == []


def test_a_placed_blob_collected_before_its_record_is_put_back(tmp_path: Path) -> None:
    """``place`` links the blob outside the store lock; a garbage collection may delete
    it before the version row exists (same content released meanwhile):
    ``ensure_placed``, under the lock, links it again from the writer's file."""
    from vzcloud.server.blobs import BlobStore

    blobs = BlobStore(tmp_path)
    writer = blobs.writer()
    writer.write(b"content")
    checksum = blobs.place(writer)
    assert blobs.path(checksum).read_bytes() == b"content"
    blobs.delete(checksum)  # what a collection does
    blobs.ensure_placed(writer, checksum)
    writer.abort()  # the temporary name goes, the blob stays
    assert blobs.path(checksum).read_bytes() == b"content"
    assert list(blobs.tmp_dir.iterdir()) == []


def test_wal_sync_shares_flushes_among_concurrent_callers(tmp_path: Path) -> None:
    """Every caller returns after a flush that began after it called; callers arriving
    during a flush share the next one."""
    import threading
    import time

    from vzcloud.durable import WalSync

    class Counted(WalSync):
        def __init__(self, db_path: Path) -> None:
            super().__init__(db_path)
            self.flushes = 0
            self.started: list[float] = []

        def _fdatasync(self) -> None:
            self.started.append(time.monotonic())
            time.sleep(0.05)  # a slow disk: callers pile up meanwhile
            super()._fdatasync()
            self.flushes += 1

    db = tmp_path / "x.db"
    db.write_bytes(b"")
    sync = Counted(db)
    called: list[float] = []
    returned: list[float] = []
    lock = threading.Lock()

    def caller() -> None:
        t = time.monotonic()
        sync.sync()
        with lock:
            called.append(t)
            returned.append(time.monotonic())

    threads = [threading.Thread(target=caller) for _ in range(20)]
    for thread in threads:
        thread.start()
        time.sleep(0.005)
    for thread in threads:
        thread.join()
    assert len(returned) == 20
    assert 2 <= sync.flushes < 20
    for at in called:  # some flush started after each call
        assert any(start >= at for start in sync.started)


def test_quota_used_is_counted_for_a_database_without_the_usage_table(
        server_config: ServerConfig) -> None:
    import sqlite3

    from vzcloud.server.app import CloudServer

    cloud = CloudServer(server_config)
    account, _ = create_user(cloud, "old")
    store = cloud.store
    root = store.resolve_folder(account, "/VZMOBILE")["id"]
    with store.tx():
        store.insert_item(account.id, root, "a", is_folder=False, size=7, checksum="0" * 64)
        store.insert_item(account.id, root, "b", is_folder=False, size=5, checksum="1" * 64)
    assert store.quota_used(account.id) == 12
    path = store.path
    cloud.close()
    db = sqlite3.connect(path)  # as a database made before the table existed
    db.execute("DROP TABLE usage")
    for trigger in ("items_usage_insert", "items_usage_delete", "items_usage_update"):
        db.execute(f"DROP TRIGGER {trigger}")
    db.commit()
    db.close()
    cloud = CloudServer(server_config)
    assert cloud.store.quota_used(account.id) == 12
    cloud.close()
