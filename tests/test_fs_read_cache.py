"""The warm read path: cached blocks read from the page cache without a thread hop
(``BlockCache.read(nowait=True)``), brought there ahead of a sequential reader
(``BlockCache.advise``), and the inode an open handle keeps between reads
(``FilesystemCore._read_inode``), which must never serve stale content: a new version
synced from the cloud, a local write or truncation, an upload landing, each seen by the
next read of a handle opened before."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest

from vzcloud.fs.blocks import BlockCache

from . import test_fs_core
from .test_fs_core import open_fs

cache = test_fs_core.cache  # the fixtures, used by name
sdk = test_fs_core.sdk

pytestmark = pytest.mark.timeout(60)

KiB, MiB = 1 << 10, 1 << 20
SUM = "cd" * 32


def _drop_from_page_cache(blocks: BlockCache, index: int) -> None:
    """Evict one block file's pages (as a drop of the page cache would; the kernel may
    keep a page it is busy with)."""
    fd = os.open(blocks._files[blocks.key(SUM, index)], os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def test_nowait_reads_only_what_the_page_cache_has_and_advise_brings_it(tmp_path: Path):
    blocks = BlockCache(tmp_path / "b", 1 << 30, block_size=256 * KiB)
    data = [os.urandom(256 * KiB) for _ in range(3)]
    for i, d in enumerate(data):
        blocks.put(SUM, i, d)
        _drop_from_page_cache(blocks, i)
    # Not in memory: nothing rather than a wait for the disk. (A nowait read that finds
    # nothing starts the kernel's readahead, and a drop may leave pages: so tried again
    # until it finds nothing, and what it finds meanwhile must be the block's bytes.)
    for _ in range(50):
        got = blocks.read(SUM, 0, 0, 256 * KiB, nowait=True)
        if got is None:
            break
        assert got == data[0]
        _drop_from_page_cache(blocks, 0)
    assert got is None, "the block never left the page cache"
    for _ in range(20):  # (other programs may drop the page cache meanwhile)
        assert blocks.read(SUM, 0, 0, 256 * KiB) == data[0]  # blocking: from disk
        got = blocks.read(SUM, 0, 1000, 5000, nowait=True)  # now in the page cache
        if got is not None:
            break
    assert isinstance(got, bytearray) and got == data[0][1000:6000]
    assert blocks.read(SUM, 9, 0, 10, nowait=True) is None  # never cached
    # advise asks the disk for the blocks; nowait reads then find them (or nothing,
    # never other bytes).
    blocks.advise(SUM, [1, 2, 9])
    deadline = time.monotonic() + 10
    for i in (1, 2):
        while (got := blocks.read(SUM, i, 0, 256 * KiB, nowait=True)) is None:
            assert time.monotonic() < deadline, "advised block never reached the page cache"
            time.sleep(0.01)
        assert got == data[i]
    blocks.close()


def test_nowait_read_of_an_evicted_block_is_a_miss_and_advice_skips_it(tmp_path: Path):
    blocks = BlockCache(tmp_path / "b", 1 << 30, block_size=64 * KiB)
    data = os.urandom(64 * KiB)
    blocks.put(SUM, 0, data)
    assert blocks.read(SUM, 0, 0, 10, nowait=True) == data[:10]
    blocks.cache.delete(blocks.key(SUM, 0))  # what diskcache's culling does
    assert blocks.read(SUM, 0, 0, 10, nowait=True) is None
    blocks.advise(SUM, [0])  # the file is gone: forgotten, nothing raised
    assert not blocks.contains(SUM, 0)
    blocks.advise_soon(SUM, [0, 1])  # in the cache's thread; close waits for it
    blocks.close()
    assert blocks._advisor is not None and not blocks._advisor.is_alive()


def test_reads_without_a_worker_thread_still_count_for_eviction(tmp_path: Path):
    blocks = BlockCache(tmp_path / "b", 1 << 30, block_size=64 * KiB)
    for i in range(2):
        blocks.put(SUM, i, os.urandom(64 * KiB))

    def access_time(i: int) -> float:
        row = blocks.cache._sql("SELECT access_time FROM Cache WHERE key = ?",
                                (blocks.key(SUM, i),)).fetchone()
        return float(row[0])

    before = [access_time(0), access_time(1)]
    time.sleep(0.01)
    assert blocks.read(SUM, 0, 0, 10, nowait=True) is not None
    blocks.advise(SUM, [])  # not due yet (fewer than TOUCH_BATCH reads)
    assert access_time(0) == before[0]
    blocks.flush_touches()
    assert access_time(0) > before[0] and access_time(1) == before[1]
    blocks.close()


# The inode an open handle keeps ------------------------------------------------------


@pytest.mark.trio
async def test_open_handle_reads_a_version_synced_from_the_cloud(cloud, user, sdk, cache):
    old, new = os.urandom(3 * MiB + 5), os.urandom(2 * MiB + 11)
    sdk.upload(io.BytesIO(old), "/VZMOBILE", name="f.bin")
    async with open_fs(cloud, user, cache) as fs:
        ino = fs.ino("/VZMOBILE/f.bin")
        fh = (await fs.core.open(ino, os.O_RDONLY)).fh
        for _ in range(2):  # the second pass is warm, from the kept inode
            got = b"".join([bytes(await fs.core.read(fh, off, MiB))
                            for off in range(0, len(old), MiB)])
            assert got == old
        sdk.upload(io.BytesIO(new), "/VZMOBILE", name="f.bin")
        await fs.parts.syncer.sync_once()
        got = b"".join([bytes(await fs.core.read(fh, off, MiB))
                        for off in range(0, len(old), MiB)])
        assert got == new  # new content and the new, shorter size
        await fs.core.release(fh)


@pytest.mark.trio
async def test_open_handle_reads_local_writes_truncation_and_the_upload(
        cloud, user, sdk, cache):
    data = os.urandom(2 * MiB)
    sdk.upload(io.BytesIO(data), "/VZMOBILE", name="w.bin")
    async with open_fs(cloud, user, cache) as fs:
        ino = fs.ino("/VZMOBILE/w.bin")
        reader = (await fs.core.open(ino, os.O_RDONLY)).fh
        assert await fs.core.read(reader, MiB, 100) == data[MiB:MiB + 100]
        writer = (await fs.core.open(ino, os.O_RDWR)).fh
        await fs.core.write(writer, MiB, b"local!")
        expected = data[:MiB] + b"local!" + data[MiB + 6:]
        assert await fs.core.read(reader, MiB, 100) == expected[MiB:MiB + 100]
        await fs.core.setattr(ino, size=MiB + 3, fh=writer)
        assert await fs.core.read(reader, MiB, 100) == b"loc"
        await fs.core.write(writer, MiB + 3, b"al, longer")
        await fs.core.fsync(writer)  # uploaded: the row gets the new checksum
        await fs.core.release(writer)
        await fs.settle()
        final = data[:MiB] + b"local, longer"
        assert await fs.core.read(reader, 0, 2 * MiB) == final
        await fs.core.release(reader)
        # Staging gone once nothing has it open: read from the cache blocks of the
        # uploaded checksum, through a new handle and the same inode.
        assert await fs.read_file("/VZMOBILE/w.bin") == final
        fh = (await fs.core.open(ino, os.O_RDONLY)).fh
        assert await fs.core.read(fh, MiB, 100) == b"local, longer"
        await fs.core.release(fh)
