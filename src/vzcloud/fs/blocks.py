"""The on-disk block cache: file content in fixed-size blocks keyed by (checksum, index).

Blocks are immutable: a checksum names one content forever, so a rename, a move or a new
version never makes a cached block stale (a new version simply has a new checksum).
Size-bounded with least-recently-used eviction (diskcache).

The kernel reads in 128 KiB requests, so one 1 MiB block serves several reads in a row:
the last few blocks used are also kept in memory (``hot``), and ``get_hot`` answers
from there without touching the disk. Every other method may block on disk: call them
from a worker thread (``trio.to_thread.run_sync``), never inline in a FUSE handler.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import diskcache

DEFAULT_BLOCK_SIZE = 1 << 20
HOT_BLOCKS = 32


class BlockCache:
    def __init__(
        self, directory: Path, size_limit: int, block_size: int = DEFAULT_BLOCK_SIZE,
        hot_blocks: int = HOT_BLOCKS,
    ) -> None:
        self.block_size = block_size
        self.cache = diskcache.Cache(
            str(directory),
            size_limit=size_limit,
            eviction_policy="least-recently-used",
            # diskcache culls lazily on writes; keep its own SQLite small and quick.
            cull_limit=16,
            statistics=False,
        )
        self._lock = threading.Lock()
        self._hot: OrderedDict[str, bytes] = OrderedDict()
        self._hot_max = hot_blocks
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(checksum: str, index: int) -> str:
        return f"{checksum}:{index}"

    def remember(self, checksum: str, index: int, data: bytes) -> None:
        """Keep a block in memory only (no disk access: fine on the trio thread); ``put``
        stores it on disk too."""
        self._remember(self.key(checksum, index), data)

    def _remember(self, key: str, data: bytes) -> None:
        with self._lock:
            self._hot[key] = data
            self._hot.move_to_end(key)
            while len(self._hot) > self._hot_max:
                self._hot.popitem(last=False)

    def get_hot(self, checksum: str, index: int) -> bytes | None:
        """The block if it is in memory (no disk access: fine on the trio thread)."""
        key = self.key(checksum, index)
        with self._lock:
            data = self._hot.get(key)
            if data is not None:
                self._hot.move_to_end(key)
                self.hits += 1
            return data

    def get(self, checksum: str, index: int) -> bytes | None:
        data = self.get_hot(checksum, index)
        if data is not None:
            return data
        key = self.key(checksum, index)
        raw = self.cache.get(key)
        if raw is None:
            with self._lock:
                self.misses += 1
            return None
        data = bytes(raw)
        with self._lock:
            self.hits += 1
        self._remember(key, data)
        return data

    def contains(self, checksum: str, index: int) -> bool:
        key = self.key(checksum, index)
        with self._lock:
            if key in self._hot:
                return True
        return key in self.cache

    def missing(self, checksum: str, indices: range) -> list[int]:
        """Which of ``indices`` are not cached."""
        return [i for i in indices if not self.contains(checksum, i)]

    def put(self, checksum: str, index: int, data: bytes) -> None:
        key = self.key(checksum, index)
        self.cache.set(key, data)
        self._remember(key, data)

    def put_file(self, checksum: str, path: Path) -> None:
        """Store a whole local file (staged content just uploaded) as blocks of ``checksum``."""
        with open(path, "rb") as f:
            index = 0
            while True:
                data = f.read(self.block_size)
                if not data:
                    break
                self.cache.set(self.key(checksum, index), data)
                index += 1

    def blocks_of(self, size: int) -> int:
        return (size + self.block_size - 1) // self.block_size

    def volume(self) -> int:
        """Bytes on disk used by cached blocks."""
        return int(self.cache.volume())

    def close(self) -> None:
        self.cache.close()
