"""The on-disk block cache: file content in fixed-size blocks keyed by (checksum, index).

Blocks are immutable: a checksum names one content forever, so a rename, a move or a new
version never makes a cached block stale (a new version simply has a new checksum).
Size-bounded with least-recently-used eviction (diskcache). Every method may block on
disk: call them from a worker thread (``trio.to_thread.run_sync``), never inline in a
FUSE handler.
"""

from __future__ import annotations

import threading
from pathlib import Path

import diskcache

DEFAULT_BLOCK_SIZE = 1 << 20


class BlockCache:
    def __init__(
        self, directory: Path, size_limit: int, block_size: int = DEFAULT_BLOCK_SIZE
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
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(checksum: str, index: int) -> str:
        return f"{checksum}:{index}"

    def get(self, checksum: str, index: int) -> bytes | None:
        data = self.cache.get(self.key(checksum, index))
        with self._lock:
            if data is None:
                self.misses += 1
            else:
                self.hits += 1
        return data if data is None else bytes(data)

    def contains(self, checksum: str, index: int) -> bool:
        return self.key(checksum, index) in self.cache

    def put(self, checksum: str, index: int, data: bytes) -> None:
        self.cache.set(self.key(checksum, index), data)

    def put_file(self, checksum: str, path: Path) -> None:
        """Store a whole local file (staged content just uploaded) as blocks of ``checksum``."""
        with open(path, "rb") as f:
            index = 0
            while True:
                data = f.read(self.block_size)
                if not data:
                    break
                self.put(checksum, index, data)
                index += 1

    def blocks_of(self, size: int) -> int:
        return (size + self.block_size - 1) // self.block_size

    def volume(self) -> int:
        """Bytes on disk used by cached blocks."""
        return int(self.cache.volume())

    def close(self) -> None:
        self.cache.close()
