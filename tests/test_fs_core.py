"""The filesystem core in-process: FilesystemCore methods called directly (no kernel),
over a real AsyncCloud and the real embedded cloud (its own thread), on a tmp cache dir.
What reached the cloud is checked through the synchronous SDK.

``open_fs`` builds the mount's pieces exactly as ``vzcloud mount`` does
(``fs.mount.build`` + ``prepare``), runs the uploader in a nursery, and yields an ``FS``
with path-based conveniences over the core's inode API.
"""

from __future__ import annotations

import errno
import io
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from vzcloud import AsyncCloud, Cloud
from vzcloud.api import paths as P
from vzcloud.api.errors import CloudError
from vzcloud.fs.core import RENAME_NOREPLACE, FilesystemCore
from vzcloud.fs.errno_map import FsError, to_errno
from vzcloud.fs.metadata import ROOT_INODE
from vzcloud.fs.mount import MountConfig, MountParts, build, prepare
from vzcloud.fs.remote import CloudRemote
from vzcloud.server.runner import BackgroundServer

from .conftest import Cloud as CloudFixture
from .conftest import User
from .sdk_fixtures import make_client

pytestmark = pytest.mark.timeout(60)

MiB = 1 << 20


class CountingRemote(CloudRemote):
    """The real remote, counting the calls the core makes (to prove "no network")."""

    def __init__(self, cloud: AsyncCloud) -> None:
        super().__init__(cloud)
        self.calls: dict[str, int] = {}
        self.ranges_read: list[str] = []  # the cloud path of every read_range, in order
        self.answer_delay = 0.0  # seconds a fullview answer takes to arrive

    async def fullview(self, etag: str | None, sink: Any = None) -> Any:
        result = await super().fullview(etag, sink)
        await trio.sleep(self.answer_delay)
        return result

    def __getattribute__(self, name: str) -> Any:
        attr = super().__getattribute__(name)
        if name.startswith("_") or name in ("cloud", "calls", "ranges_read", "answer_delay") \
                or not callable(attr):
            return attr

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            if name == "read_range":
                self.ranges_read.append(args[0])
            return await attr(*args, **kwargs)

        return counted


class FS:
    """The mount's pieces, with path helpers (``/VZMOBILE/a.txt`` -> inode)."""

    def __init__(self, parts: MountParts, remote: CountingRemote) -> None:
        self.parts = parts
        self.core: FilesystemCore = parts.core
        self.remote = remote

    def ino(self, path: str) -> int:
        ino = ROOT_INODE
        for name in P.split_path(path):
            ino = self.core.lookup(ino, name).ino
        return ino

    def names(self, path: str) -> list[str]:
        return sorted(i.name or "" for i in self.core.readdir(self.ino(path), 0, 10_000))

    async def create(self, path: str) -> int:
        parent, name = P.parent_and_name(path)
        handle, _ = await self.core.create(self.ino(parent), name, os.O_WRONLY | os.O_CREAT)
        return handle.fh

    async def write_file(self, path: str, data: bytes, *, fsync: bool = True) -> None:
        try:
            fh = (await self.core.open(self.ino(path), os.O_WRONLY | os.O_TRUNC)).fh
        except FsError as exc:
            if exc.errno != errno.ENOENT:
                raise
            fh = await self.create(path)
        await self.core.write(fh, 0, data)
        if fsync:
            await self.core.fsync(fh)
        await self.core.release(fh)

    async def read_file(self, path: str) -> bytes:
        fh = (await self.core.open(self.ino(path), os.O_RDONLY)).fh
        try:
            size = self.core.getattr(self.ino(path)).size
            return await self.core.read(fh, 0, size + 1)
        finally:
            await self.core.release(fh)

    async def settle(self) -> None:
        """Until the upload queue is empty (20 s at most)."""
        with trio.fail_after(20):
            await self.parts.uploader.drain()


@asynccontextmanager
async def open_fs(cloud: CloudFixture, user: User, cache: Path) -> AsyncIterator[FS]:
    acloud = make_client(cloud, user, AsyncCloud)
    remote = CountingRemote(acloud)
    parts = build(MountConfig(mountpoint=cache / "unused", cache_dir=cache,
                              cache_size=256 * MiB), remote)
    try:
        async with trio.open_nursery() as nursery:
            await prepare(parts)
            await nursery.start(parts.uploader.run)
            parts.core.nursery = nursery
            yield FS(parts, remote)
            nursery.cancel_scope.cancel()
    finally:
        parts.close()
        await acloud.aclose()


def cloud_bytes(sdk: Cloud, path: str) -> bytes:
    buf = io.BytesIO()
    sdk.download(path, buf)
    return buf.getvalue()


@pytest.fixture
def sdk(cloud: CloudFixture, user: User) -> Any:
    with make_client(cloud, user) as client:
        yield client


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


# Tree -------------------------------------------------------------------------------


@pytest.mark.trio
async def test_root_lists_virtual_folders_and_top_level_rules(cloud, user, sdk, cache):
    async with open_fs(cloud, user, cache) as fs:
        # and the special directories (fs.special), listed last
        assert fs.names("/") == [".favorites", ".trash", "MyComputer", "VZMOBILE", "VZWEB"]
        with pytest.raises(FsError) as e:
            await fs.core.create(ROOT_INODE, "file.txt", os.O_WRONLY)
        assert e.value.errno == errno.EPERM

        # mkdir / rename / rmdir at the root are virtual folder operations.
        archive = await fs.core.mkdir(ROOT_INODE, "Archive")
        assert "Archive" in [f.name for f in sdk.metadata("/").folders]
        await fs.core.rename(ROOT_INODE, "Archive", ROOT_INODE, "Old", 0)
        assert fs.ino("/Old") == archive.ino
        assert "Old" in [f.name for f in sdk.metadata("/").folders]
        await fs.write_file("/Old/x.txt", b"x")
        with pytest.raises(FsError) as e:
            await fs.core.rmdir(ROOT_INODE, "Old")
        assert e.value.errno == errno.ENOTEMPTY
        await fs.core.unlink(fs.ino("/Old"), "x.txt")
        await fs.core.rmdir(ROOT_INODE, "Old")  # its trash goes with it
        assert "Old" not in [f.name for f in sdk.metadata("/").folders]
        # Nothing but virtual folders at the top: moving a folder there is refused.
        d = await fs.core.mkdir(fs.ino("/VZMOBILE"), "d")
        with pytest.raises(FsError) as e:
            await fs.core.rename(fs.ino("/VZMOBILE"), "d", ROOT_INODE, "d", 0)
        assert e.value.errno == errno.EPERM
        assert fs.ino("/VZMOBILE/d") == d.ino


@pytest.mark.trio
async def test_mkdir_rmdir_and_errors(cloud, user, sdk, cache):
    async with open_fs(cloud, user, cache) as fs:
        vz = fs.ino("/VZMOBILE")
        a = await fs.core.mkdir(vz, "a")
        await fs.core.mkdir(a.ino, "b")
        assert [f.name for f in sdk.metadata("/VZMOBILE/a").folders] == ["b"]
        with pytest.raises(FsError) as e:
            await fs.core.mkdir(vz, "a")
        assert e.value.errno == errno.EEXIST
        with pytest.raises(FsError) as e:
            await fs.core.rmdir(vz, "a")
        assert e.value.errno == errno.ENOTEMPTY
        with pytest.raises(FsError) as e:
            await fs.core.mkdir(vz, "x" * 256)
        assert e.value.errno == errno.ENAMETOOLONG
        await fs.core.rmdir(a.ino, "b")
        await fs.core.rmdir(vz, "a")
        assert fs.names("/VZMOBILE") == []
        assert "a" in [f.name for f in sdk.trash("VZMOBILE").folders]
        with pytest.raises(FsError) as e:
            fs.core.lookup(vz, "a")
        assert e.value.errno == errno.ENOENT


# Writes -----------------------------------------------------------------------------


@pytest.mark.trio
async def test_create_write_fsync_reaches_cloud_and_reads_back_without_network(
        cloud, user, sdk, cache):
    async with open_fs(cloud, user, cache) as fs:
        data = os.urandom(3 * MiB + 123)
        fh = await fs.create("/VZMOBILE/new.bin")
        ino = fs.ino("/VZMOBILE/new.bin")
        for off in range(0, len(data), 128 * 1024):
            await fs.core.write(fh, off, data[off: off + 128 * 1024])
        # The metadata shows the new size at once, before any upload.
        assert fs.core.getattr(ino).size == len(data)
        await fs.core.fsync(fh)  # returns only once the cloud has it
        assert cloud_bytes(sdk, "/VZMOBILE/new.bin") == data
        await fs.core.release(fh)
        assert not fs.parts.staging.exists(ino)  # staged content became cache blocks
        before = fs.remote.calls.get("read_range", 0)
        assert await fs.read_file("/VZMOBILE/new.bin") == data
        assert fs.remote.calls.get("read_range", 0) == before


@pytest.mark.trio
async def test_random_writes_truncate_and_o_trunc(cloud, user, sdk, cache):
    async with open_fs(cloud, user, cache) as fs:
        model = bytearray()
        fh = await fs.create("/VZMOBILE/r.bin")
        ino = fs.ino("/VZMOBILE/r.bin")

        async def pwrite(off: int, data: bytes) -> None:
            assert await fs.core.write(fh, off, data) == len(data)
            if off > len(model):
                model.extend(b"\0" * (off - len(model)))  # a write past EOF zero-fills
            model[off: off + len(data)] = data

        await pwrite(0, b"hello world")
        await pwrite(6, b"WORLD")
        await pwrite(100, b"tail")           # past EOF
        await pwrite(len(model), b"+append")  # append
        await fs.core.setattr(ino, size=50, fh=fh)   # truncate down
        del model[50:]
        await fs.core.setattr(ino, size=2 * MiB + 5, fh=fh)  # truncate up: zeros
        model.extend(b"\0" * (2 * MiB + 5 - len(model)))
        await pwrite(MiB + 7, b"middle")
        assert await fs.core.read(fh, 0, len(model) + 10) == bytes(model)
        await fs.core.fsync(fh)
        await fs.core.release(fh)
        assert cloud_bytes(sdk, "/VZMOBILE/r.bin") == bytes(model)

        # Opening an existing file for writing starts from its current content.
        fh = (await fs.core.open(ino, os.O_RDWR)).fh
        await fs.core.write(fh, 1, b"EL")
        await fs.core.fsync(fh)
        await fs.core.release(fh)
        model[1:3] = b"EL"
        assert cloud_bytes(sdk, "/VZMOBILE/r.bin") == bytes(model)

        # O_TRUNC empties it; truncate(2) of a path (no handle) reaches the cloud too.
        await fs.write_file("/VZMOBILE/r.bin", b"short")
        assert cloud_bytes(sdk, "/VZMOBILE/r.bin") == b"short"
        await fs.core.setattr(ino, size=2)
        await fs.settle()
        assert cloud_bytes(sdk, "/VZMOBILE/r.bin") == b"sh"
        assert fs.core.getattr(ino).size == 2


@pytest.mark.trio
async def test_empty_file_and_mtime(cloud, user, sdk, cache):
    async with open_fs(cloud, user, cache) as fs:
        fh = await fs.create("/VZMOBILE/empty")
        await fs.core.release(fh)
        await fs.settle()
        assert sdk.file_metadata("/VZMOBILE/empty").size == 0
        ino = fs.ino("/VZMOBILE/empty")
        await fs.core.setattr(ino, mtime_ns=1_000_000_000_000_000_000)
        assert fs.core.getattr(ino).mtime_ns == 1_000_000_000_000_000_000
        await fs.parts.syncer.sync_once()  # the echo of the upload keeps the local mtime
        assert fs.core.getattr(ino).mtime_ns == 1_000_000_000_000_000_000


# Reads ------------------------------------------------------------------------------


@pytest.mark.trio
async def test_read_of_sdk_uploaded_file_with_read_ahead(cloud, user, sdk, cache):
    data = os.urandom(5 * MiB + 77)
    sdk.upload(io.BytesIO(data), "/VZMOBILE", name="big.bin")
    async with open_fs(cloud, user, cache) as fs:
        ino = fs.ino("/VZMOBILE/big.bin")
        assert fs.core.getattr(ino).size == len(data)
        fh = (await fs.core.open(ino, os.O_RDONLY)).fh
        got = bytearray()
        for off in range(0, len(data), 128 * 1024):
            got += await fs.core.read(fh, off, 128 * 1024)
        assert bytes(got) == data
        # Random reads across block boundaries.
        for off, n in [(MiB - 10, 20), (3 * MiB + 5, 2 * MiB), (len(data) - 3, 100)]:
            assert await fs.core.read(fh, off, n) == data[off: off + n]
        await fs.core.release(fh)
        fetched = fs.remote.calls["read_range"]
        assert fetched < 12  # blocks of 1 MiB, fetched ahead two at a time
        assert await fs.read_file("/VZMOBILE/big.bin") == data
        assert fs.remote.calls["read_range"] == fetched  # read again: no network


@pytest.mark.trio
async def test_random_read_of_content_changed_in_the_cloud(cloud, user, sdk, cache):
    old, new = os.urandom(3 * MiB), os.urandom(3 * MiB)
    sdk.upload(io.BytesIO(old), "/VZMOBILE", name="moving.bin")
    async with open_fs(cloud, user, cache) as fs:
        ino = fs.ino("/VZMOBILE/moving.bin")
        fh = (await fs.core.open(ino, os.O_RDONLY)).fh
        off = 2 * MiB + 7
        assert await fs.core.read(fh, off, 4096) == old[off:off + 4096]
        sdk.upload(io.BytesIO(new), "/VZMOBILE", name="moving.bin")
        off = MiB + 300_000  # not cached: fetched, and the ETag tells the content changed
        with pytest.raises(FsError) as e:
            await fs.core.read(fh, off, 4096)
        assert e.value.errno == errno.EIO
        assert await fs.core.read(fh, off, 4096) == new[off:off + 4096]  # refreshed
        off = 2 * MiB + 7
        assert await fs.core.read(fh, off, 4096) == new[off:off + 4096]
        await fs.core.release(fh)


@pytest.mark.trio
async def test_remote_change_seen_after_sync(cloud, user, sdk, cache):
    sdk.upload(io.BytesIO(b"version one"), "/VZMOBILE", name="v.txt")
    async with open_fs(cloud, user, cache) as fs:
        assert await fs.read_file("/VZMOBILE/v.txt") == b"version one"
        ino = fs.ino("/VZMOBILE/v.txt")
        sdk.upload(io.BytesIO(b"version two!"), "/VZMOBILE", name="v.txt")
        sdk.upload(io.BytesIO(b"other"), "/VZWEB", name="o.txt")
        changes = await fs.parts.syncer.sync_once()
        assert changes is not None and ino in changes.changed
        assert fs.ino("/VZMOBILE/v.txt") == ino  # same inode, new content
        assert await fs.read_file("/VZMOBILE/v.txt") == b"version two!"
        assert await fs.read_file("/VZWEB/o.txt") == b"other"


# Namespace --------------------------------------------------------------------------


@pytest.mark.trio
async def test_rename_file_dir_over_existing_and_noreplace(cloud, user, sdk, cache):
    async with open_fs(cloud, user, cache) as fs:
        vz = fs.ino("/VZMOBILE")
        # A deep tree, renamed with one API call.
        d = vz
        for name in ("a", "b", "c", "d"):
            d = (await fs.core.mkdir(d, name)).ino
        for i in range(5):
            await fs.write_file(f"/VZMOBILE/a/b/c/d/f{i}.txt", f"file {i}".encode(), fsync=False)
        await fs.write_file("/VZMOBILE/a/top.txt", b"top", fsync=False)
        await fs.settle()
        moves = fs.remote.calls.get("move", 0)
        await fs.core.rename(vz, "a", vz, "z", 0)
        assert fs.remote.calls["move"] == moves + 1
        assert fs.ino("/VZMOBILE/z/b/c/d") == d
        for i in range(5):
            assert cloud_bytes(sdk, f"/VZMOBILE/z/b/c/d/f{i}.txt") == f"file {i}".encode()
        assert sdk.fullview().files and not any(
            f.path.startswith("/VZMOBILE/a/") for f in sdk.fullview().files)

        # A file over an existing file: the old one goes to the trash.
        await fs.write_file("/VZMOBILE/old.txt", b"old")
        await fs.write_file("/VZMOBILE/new.txt", b"new")
        new_ino = fs.ino("/VZMOBILE/new.txt")
        with pytest.raises(FsError) as e:
            await fs.core.rename(vz, "new.txt", vz, "old.txt", RENAME_NOREPLACE)
        assert e.value.errno == errno.EEXIST
        await fs.core.rename(vz, "new.txt", vz, "old.txt", 0)
        assert fs.ino("/VZMOBILE/old.txt") == new_ino
        assert cloud_bytes(sdk, "/VZMOBILE/old.txt") == b"new"
        assert "new.txt" not in fs.names("/VZMOBILE")
        # A queued (never uploaded) file renamed over a cloud file.
        await fs.write_file("/VZMOBILE/q.txt", b"queued", fsync=False)
        await fs.core.rename(vz, "q.txt", vz, "old.txt", 0)
        await fs.settle()
        assert cloud_bytes(sdk, "/VZMOBILE/old.txt") == b"queued"
        # A directory over an empty directory; over a non-empty one is ENOTEMPTY.
        await fs.core.mkdir(vz, "empty")
        await fs.core.rename(vz, "z", vz, "empty", 0)
        assert cloud_bytes(sdk, "/VZMOBILE/empty/top.txt") == b"top"
        await fs.core.mkdir(vz, "other")
        with pytest.raises(FsError) as e:
            await fs.core.rename(vz, "other", vz, "empty", 0)
        assert e.value.errno == errno.ENOTEMPTY
        with pytest.raises(FsError) as e:
            await fs.core.rename(vz, "empty", fs.ino("/VZMOBILE/empty/b"), "x", 0)
        assert e.value.errno == errno.EINVAL


@pytest.mark.trio
async def test_unlink_goes_to_trash_and_unlink_while_open(cloud, user, sdk, cache):
    sdk.upload(io.BytesIO(b"remote content"), "/VZMOBILE", name="r.txt")
    async with open_fs(cloud, user, cache) as fs:
        vz = fs.ino("/VZMOBILE")
        await fs.write_file("/VZMOBILE/gone.txt", b"bye")
        await fs.core.unlink(vz, "gone.txt")
        assert "gone.txt" not in fs.names("/VZMOBILE")
        assert "gone.txt" in [f.name for f in sdk.trash("VZMOBILE").files]

        # Open, never read, then unlinked: the handle still reads everything.
        ino = fs.ino("/VZMOBILE/r.txt")
        fs.core.remember(ino)  # the kernel looked it up
        fh = (await fs.core.open(ino, os.O_RDONLY)).fh
        await fs.core.unlink(vz, "r.txt")
        assert await fs.core.read(fh, 0, 100) == b"remote content"
        assert fs.core.getattr(ino).size == 14
        await fs.core.release(fh)
        assert fs.parts.meta.get(ino) is not None  # still looked up
        await fs.core.forget(ino, 1)
        assert fs.parts.meta.get(ino) is None
        assert not fs.parts.staging.exists(ino)

        # A file written, unlinked while open and still written: never uploaded.
        fh = await fs.create("/VZMOBILE/tmp.txt")
        ino = fs.ino("/VZMOBILE/tmp.txt")
        await fs.core.write(fh, 0, b"scratch")
        await fs.core.unlink(vz, "tmp.txt")
        await fs.core.write(fh, 7, b"!")
        assert await fs.core.read(fh, 0, 100) == b"scratch!"
        await fs.core.release(fh)
        await fs.settle()
        assert "tmp.txt" not in [f.name for f in sdk.metadata("/VZMOBILE").files]

        # Inode numbers are never reused.
        fh = await fs.create("/VZMOBILE/tmp.txt")
        assert fs.ino("/VZMOBILE/tmp.txt") > ino
        await fs.core.release(fh)


@pytest.mark.trio
async def test_statfs_reports_quota(cloud, user, sdk, cache):
    async with open_fs(cloud, user, cache) as fs:
        quota, used = await fs.core.statfs()
        account = sdk.account()
        assert (quota, used) == (account.quota, account.quota_used)


# Remount, faults, offline --------------------------------------------------------------


@pytest.mark.trio
async def test_remount_from_cache_keeps_tree_and_applies_delta(cloud, user, sdk, cache):
    async with open_fs(cloud, user, cache) as fs:
        await fs.core.mkdir(fs.ino("/VZMOBILE"), "docs")
        await fs.write_file("/VZMOBILE/docs/keep.txt", b"keep")
        await fs.write_file("/VZMOBILE/docs/drop.txt", b"drop")
        await fs.write_file("/VZMOBILE/docs/move.txt", b"move")
        keep_ino = fs.ino("/VZMOBILE/docs/keep.txt")
        await fs.parts.syncer.sync_once()
    # While unmounted, another client changes the cloud.
    sdk.delete("/VZMOBILE/docs/drop.txt")
    sdk.move("/VZMOBILE/docs/move.txt", "/VZMOBILE/moved.txt")
    sdk.upload(io.BytesIO(b"added"), "/VZMOBILE/docs", name="added.txt")
    async with open_fs(cloud, user, cache) as fs:
        assert fs.remote.calls["fullview"] == 1  # one delta, not a full listing
        assert fs.ino("/VZMOBILE/docs/keep.txt") == keep_ino
        assert fs.names("/VZMOBILE/docs") == ["added.txt", "keep.txt"]
        assert "moved.txt" in fs.names("/VZMOBILE")
        # (The small-file prefetcher may fetch added.txt meanwhile: count by path.)
        assert await fs.read_file("/VZMOBILE/docs/keep.txt") == b"keep"
        assert await fs.read_file("/VZMOBILE/moved.txt") == b"move"  # cached by checksum
        fetched = set(fs.remote.ranges_read)
        assert not fetched & {"/VZMOBILE/docs/keep.txt", "/VZMOBILE/moved.txt"}, fetched
        assert await fs.read_file("/VZMOBILE/docs/added.txt") == b"added"


@pytest.mark.trio
async def test_queue_survives_remount(cloud, user, sdk, cache):
    faults = cloud.server.cloud.faults
    faults.fail("upload_intent", 503, times=1000)
    async with open_fs(cloud, user, cache) as fs:
        await fs.write_file("/VZMOBILE/later.txt", b"later", fsync=False)
        assert fs.parts.uploader.pending() == 1
    faults.queued.clear()
    async with open_fs(cloud, user, cache) as fs:
        await fs.settle()
    assert cloud_bytes(sdk, "/VZMOBILE/later.txt") == b"later"


@pytest.mark.trio
async def test_uploader_retries_after_injected_faults(cloud, user, sdk, cache):
    cloud.server.cloud.faults.fail("upload_intent", 503, times=2)
    async with open_fs(cloud, user, cache) as fs:
        fh = await fs.create("/VZMOBILE/retry.txt")
        await fs.core.write(fh, 0, b"eventually")
        await fs.core.fsync(fh)  # waits through two failed attempts
        await fs.core.release(fh)
        assert fs.parts.uploader.failures == 2
    assert cloud_bytes(sdk, "/VZMOBILE/retry.txt") == b"eventually"


@pytest.mark.trio
async def test_fsync_reports_eio_when_uploads_keep_failing(cloud, user, sdk, cache):
    cloud.server.cloud.faults.fail("upload_intent", 503, times=1000)
    async with open_fs(cloud, user, cache) as fs:
        fh = await fs.create("/VZMOBILE/stuck.txt")
        await fs.core.write(fh, 0, b"stuck")
        started = time.monotonic()
        with pytest.raises(FsError) as e:
            await fs.core.fsync(fh)
        assert e.value.errno == errno.EIO
        assert time.monotonic() - started < 15
        await fs.core.release(fh)
        assert fs.parts.uploader.pending() == 1  # still queued, never dropped


def disk_full_error() -> sqlite3.OperationalError:
    """A real SQLITE_FULL, as SQLite raises it when the disk fills (a database not
    allowed to grow past one page)."""
    db = sqlite3.connect(":memory:")
    try:
        db.execute("PRAGMA max_page_count=1")
        db.execute("CREATE TABLE t (x BLOB)")
        db.execute("INSERT INTO t VALUES (zeroblob(100000))")
    except sqlite3.OperationalError as exc:
        assert exc.sqlite_errorcode == sqlite3.SQLITE_FULL
        return exc
    finally:
        db.close()
    raise AssertionError("SQLite stored 100 kB in one page")


@pytest.mark.trio
async def test_upload_landed_but_not_recorded_is_ours_for_sync_and_retry(
        cloud, user, sdk, cache):
    """The cache disk fills between an upload landing and its recording (the CI run that
    found it: the sync then took the cloud's new version for another device's change and
    made a conflict copy). The sync must see it as our own content, and the retry must
    record it without sending it again."""
    async with open_fs(cloud, user, cache) as fs:
        meta = fs.parts.meta
        real_tx = meta.tx
        refused: list[int] = []
        was_refused = trio.Event()

        def tx_failing_while_sending() -> Any:
            # The uploader recording what it sent, and again once it released its
            # reserve (fs/reserve.py): the disk is still full.
            if meta.sending and len(refused) < 2:
                refused.append(next(iter(meta.sending)))
                if len(refused) == 2:
                    was_refused.set()
                raise disk_full_error()
            return real_tx()

        meta.tx = tx_failing_while_sending  # type: ignore[method-assign]
        await fs.write_file("/VZMOBILE/full.txt", b"landed unrecorded", fsync=False)
        with trio.fail_after(10):
            await was_refused.wait()
        ino = refused[0]
        # The retry waits out its backoff (0.5 s): the sync comes first.
        assert meta.has_upload_job(ino)
        await fs.parts.syncer.sync_once()
        assert fs.parts.syncer.conflicts == 0
        assert fs.names("/VZMOBILE") == ["full.txt"]
        await fs.settle()
        assert fs.remote.calls.get("upload") == 1  # recognised, not sent again

        def queue_unwritable() -> None:
            raise disk_full_error()

        # When the cloud answers again the poller makes the queue due; on a full disk
        # that cannot be written, which once ended the mount (the same CI run).
        meta.retry_all_now = queue_unwritable  # type: ignore[method-assign]
        fs.parts.uploader.retry_all_now()
    assert cloud_bytes(sdk, "/VZMOBILE/full.txt") == b"landed unrecorded"
    assert [f.name for f in sdk.metadata("/VZMOBILE").files] == ["full.txt"]


@pytest.mark.trio
async def test_a_full_disk_records_an_upload_with_the_room_kept_back(cloud, user, sdk, cache):
    """Recording a landed upload is what frees its staged file; on a full disk (SQLITE_FULL
    once) the uploader releases its reserve and records at once, then takes the reserve
    back once the staged file is gone."""
    async with open_fs(cloud, user, cache) as fs:
        meta, reserve = fs.parts.meta, fs.parts.uploader.reserve
        assert reserve is not None and reserve.held and reserve.path.stat().st_size > 0
        real_tx = meta.tx
        refused: list[int] = []

        def tx_full_once() -> Any:
            if meta.sending and not refused:
                refused.append(next(iter(meta.sending)))
                raise disk_full_error()
            return real_tx()

        meta.tx = tx_full_once  # type: ignore[method-assign]
        await fs.write_file("/VZMOBILE/recorded.txt", b"recorded at once", fsync=True)
        assert len(refused) == 1 and not meta.has_upload_job(refused[0])
        assert fs.remote.calls.get("upload") == 1 and fs.parts.uploader.failures == 0
        assert reserve.held and reserve.path.exists()  # taken back after the record
    assert cloud_bytes(sdk, "/VZMOBILE/recorded.txt") == b"recorded at once"


@pytest.mark.trio
async def test_offline_cached_reads_listings_queued_writes_then_resume(
        cloud, user, sdk, cache):
    sdk.upload(io.BytesIO(b"cached"), "/VZMOBILE", name="cached.txt")
    sdk.upload(io.BytesIO(b"never read"), "/VZMOBILE", name="cold.txt")
    async with open_fs(cloud, user, cache) as fs:
        fs.remote.cloud.retry = type(fs.remote.cloud.retry)(
            max_attempts=3, base_delay=0.05, max_delay=0.2, max_total=3)
        assert await fs.read_file("/VZMOBILE/cached.txt") == b"cached"
        server = cloud.server
        host, port = server.sock.getsockname()[:2]
        config = server.cloud.config
        server.stop()

        assert await fs.read_file("/VZMOBILE/cached.txt") == b"cached"
        assert fs.names("/VZMOBILE") == ["cached.txt", "cold.txt"]
        started = time.monotonic()
        with pytest.raises(CloudError) as err:  # the adapter maps it (errno_map)
            await fs.read_file("/VZMOBILE/cold.txt")
        assert to_errno(err.value) == errno.EIO
        assert time.monotonic() - started < 10
        # Writes are accepted and queued.
        await fs.write_file("/VZMOBILE/offline.txt", b"written offline", fsync=False)
        assert await fs.read_file("/VZMOBILE/offline.txt") == b"written offline"
        await trio.sleep(1)  # an attempt or two fail meanwhile
        assert fs.parts.uploader.pending() == 1

        cloud.server = BackgroundServer(config, host, port).start()
        fs.parts.uploader.retry_all_now()  # what the poller does when the cloud answers again
        await fs.settle()
        assert cloud_bytes(sdk, "/VZMOBILE/offline.txt") == b"written offline"
        assert await fs.read_file("/VZMOBILE/cold.txt") == b"never read"


@pytest.mark.trio
async def test_fullview_racing_a_local_rename_is_not_applied(cloud, user, sdk, cache):
    async with open_fs(cloud, user, cache) as fs:
        await fs.write_file("/VZMOBILE/a.txt", b"a")
        await fs.parts.syncer.sync_once()
        sdk.upload(io.BytesIO(b"b"), "/VZMOBILE", name="b.txt")  # a change to fetch
        sdk.upload(io.BytesIO(b"a2"), "/VZMOBILE", name="a.txt")  # and one to a.txt
        fs.remote.answer_delay = 0.5  # the answer (computed before the rename) is slow
        results: list[object] = []

        async def sync() -> None:
            results.append(await fs.parts.syncer.sync_once())

        async with trio.open_nursery() as n:
            n.start_soon(sync)
            await trio.sleep(0.25)
            vz = fs.ino("/VZMOBILE")
            await fs.core.rename(vz, "a.txt", vz, "renamed.txt", 0)
        fs.remote.answer_delay = 0
        # Applied, the stale answer would bring a.txt back as a second file.
        assert fs.names("/VZMOBILE") == ["renamed.txt"]
        assert results == [None]
        await fs.parts.syncer.sync_once()
        assert fs.names("/VZMOBILE") == ["b.txt", "renamed.txt"]
        assert await fs.read_file("/VZMOBILE/renamed.txt") == b"a2"
