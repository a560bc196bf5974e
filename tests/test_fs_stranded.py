"""A file whose close() got ENOSPC because its upload job could not be recorded (a full
cache disk) is queued by the mount's poller once the disk has room (``fs.mount.
queue_stranded``), not only by its next close or the next mount; a file still being
written is left to its own close."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from vzcloud.fs.mount import STRANDED_AFTER, queue_stranded

from . import test_fs_core
from .test_fs_core import cloud_bytes, disk_full_error, open_fs

cache = test_fs_core.cache  # the fixtures, used by name
sdk = test_fs_core.sdk


@pytest.mark.trio
async def test_a_file_closed_while_its_job_could_not_be_recorded_is_queued_later(
        cloud: Any, user: Any, sdk: Any, cache: Any) -> None:
    async with open_fs(cloud, user, cache) as fs:
        meta = fs.parts.meta

        def disk_full(*args: Any, **kwargs: Any) -> None:
            raise disk_full_error()

        meta.enqueue_upload = disk_full  # type: ignore[method-assign]
        fh = await fs.create("/VZMOBILE/stranded.txt")
        await fs.core.write(fh, 0, b"closed on a full disk")
        with pytest.raises(sqlite3.OperationalError):
            await fs.core.release(fh)
        ino = fs.ino("/VZMOBILE/stranded.txt")
        inode = meta.get(ino)
        assert inode is not None and inode.dirty and not meta.has_upload_job(ino)
        writing = await fs.create("/VZMOBILE/open.txt")  # written, not closed: not taken
        await fs.core.write(writing, 0, b"still being written")

        seen = queue_stranded(fs.parts, {}, 100.0)
        assert seen == {ino: 100.0} and not meta.has_upload_job(ino)  # found, not yet due
        seen = queue_stranded(fs.parts, seen, 100.0 + STRANDED_AFTER)
        assert seen == {ino: 100.0} and not meta.has_upload_job(ino)  # the disk is still full
        del meta.enqueue_upload  # room again
        assert queue_stranded(fs.parts, seen, 100.0 + 2 * STRANDED_AFTER) == {}
        assert meta.has_upload_job(ino)
        await fs.settle()
        assert cloud_bytes(sdk, "/VZMOBILE/stranded.txt") == b"closed on a full disk"
        assert not meta.has_upload_job(fs.ino("/VZMOBILE/open.txt"))
        await fs.core.release(writing)
        await fs.settle()
    assert cloud_bytes(sdk, "/VZMOBILE/open.txt") == b"still being written"


@pytest.mark.trio
async def test_bytes_staged_by_a_write_the_killed_mount_never_counted_are_uploaded_whole(
        cloud: Any, user: Any, sdk: Any, cache: Any) -> None:
    """Killed inside a write() handler: the staging file took the bytes, the inode never
    recorded its new size (seen in a CI run of the mount crash test: the next mount
    uploaded the bytes and kept the size 0, so the file read as empty). The next mount
    uploads the staged bytes and its inode says their size."""
    data = b"staged, never counted" * 1000
    async with open_fs(cloud, user, cache) as fs:
        fh = await fs.create("/VZMOBILE/killed.bin")
        ino = fs.ino("/VZMOBILE/killed.bin")
        fs.parts.staging.write(ino, 0, data)  # what the handler did before the kill
        fs.core.handles.pop(fh)  # ... and no close ever came
        inode = fs.parts.meta.get(ino)
        assert inode is not None and inode.size == 0
    async with open_fs(cloud, user, cache) as fs:
        await fs.settle()
        inode = fs.parts.meta.get(fs.ino("/VZMOBILE/killed.bin"))
        assert inode is not None and not inode.dirty and inode.size == len(data)
        assert await fs.read_file("/VZMOBILE/killed.bin") == data
    assert cloud_bytes(sdk, "/VZMOBILE/killed.bin") == data
