"""``fs.blocks.BlockCache`` on a real directory: ranged reads from block files, memory
bounds, and what happens when diskcache evicts a block whose file the cache remembers."""

from __future__ import annotations

import os
from pathlib import Path

from vzcloud.fs.blocks import BlockCache

KiB = 1 << 10
SUM = "ab" * 32


def test_ranged_reads_from_files_and_small_inline_blocks(tmp_path: Path):
    cache = BlockCache(tmp_path / "b", 1 << 30, block_size=256 * KiB)
    big, small = os.urandom(256 * KiB), os.urandom(1000)  # small: inside diskcache's SQLite
    cache.put(SUM, 0, big)
    cache.put(SUM, 1, small)
    assert cache.read(SUM, 0, 1000, 4096) == big[1000:5096]
    assert cache.read(SUM, 0) == big
    assert cache.read(SUM, 1, 10, 20) == small[10:30]
    assert cache.read(SUM, 0, 256 * KiB - 10, 20) is None  # asks past the block's end
    assert cache.read(SUM, 2) is None
    assert cache.contains(SUM, 0) and not cache.contains(SUM, 2)
    assert cache.missing(SUM, range(4)) == [2, 3]
    cache.close()
    again = BlockCache(tmp_path / "b", 1 << 30, block_size=256 * KiB)  # no memory of paths
    assert again.read(SUM, 0, 5, 5) == big[5:10]
    again.close()


def test_hot_blocks_are_bounded_and_staged_ones_wait_for_the_disk(tmp_path: Path):
    cache = BlockCache(tmp_path / "b", 1 << 30, block_size=64 * KiB, hot_bytes=256 * KiB)
    blocks = [os.urandom(64 * KiB) for _ in range(8)]
    for i, b in enumerate(blocks):
        cache.remember(SUM, i, b)
    assert [i for i in range(8) if cache.get_hot(SUM, i) is not None] == [4, 5, 6, 7]
    cache.stage(SUM, 10, blocks[0])  # downloaded, not yet on disk
    for i in range(4):
        cache.remember(SUM, 20 + i, blocks[i])
    assert cache.get_hot(SUM, 10) == blocks[0]  # pushed out of hot, still pending
    cache.put(SUM, 10, blocks[0])
    assert cache.read(SUM, 10) == blocks[0]
    assert not cache._pending
    cache.close()


def test_an_evicted_block_is_a_miss_not_stale_bytes(tmp_path: Path):
    cache = BlockCache(tmp_path / "b", 1 << 30, block_size=64 * KiB)
    data = os.urandom(64 * KiB)
    cache.put(SUM, 0, data)
    assert cache.read(SUM, 0, 0, 10) == data[:10]
    cache.cache.delete(cache.key(SUM, 0))  # what diskcache's culling does
    assert cache.read(SUM, 0, 0, 10) is None
    assert not cache.contains(SUM, 0)
    cache.put(SUM, 0, data)
    assert cache.read(SUM, 0) == data
    cache.close()


def test_eviction_under_a_small_limit_keeps_reads_right(tmp_path: Path):
    cache = BlockCache(tmp_path / "b", 512 * KiB, block_size=64 * KiB, hot_bytes=64 * KiB)
    blocks = [os.urandom(64 * KiB) for _ in range(40)]
    for i, b in enumerate(blocks):
        cache.put(SUM, i, b)
    for i, b in enumerate(blocks):
        got = cache.read(SUM, i, 100, 200)
        assert got is None or got == b[100:300]
    assert cache.volume() <= 2 * 512 * KiB
    cache.close()
