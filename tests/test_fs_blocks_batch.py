"""``BlockCache.put_many``: many small blocks stored in one transaction (the small-file
prefetcher's batches), readable from memory until then and from disk after."""

from __future__ import annotations

from pathlib import Path

from vzcloud.fs.blocks import BlockCache

KiB = 1024


def test_put_many_stores_small_and_large_blocks_and_releases_memory(tmp_path: Path) -> None:
    cache = BlockCache(tmp_path / "b", 1 << 30, block_size=256 * KiB, hot_bytes=1)
    blocks = [(f"c{i}", 0, bytes([i]) * (100 + i)) for i in range(40)]
    blocks.append(("big", 0, b"x" * (100 * KiB)))  # a block in a file of its own
    for checksum, index, data in blocks:
        cache.stage(checksum, index, data)
        assert cache.get_hot(checksum, index) == data  # pending: readable before the disk
    cache.put_many(blocks)
    assert not cache._pending
    cache.close()
    again = BlockCache(tmp_path / "b", 1 << 30, block_size=256 * KiB)
    for checksum, index, data in blocks:
        assert again.get(checksum, index) == data
    assert again.read("big", 0, 10, 5) == b"x" * 5
    again.close()
