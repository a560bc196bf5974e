"""Staging files: local content of files being written or waiting for upload."""

from __future__ import annotations

import os
import threading
from pathlib import Path


class StagingArea:
    """Sparse local files holding the content of files open for writing or queued for upload.

    One file per inode (``<dir>/<ino>``), so local state stays keyed by id. Created from
    the current content on the first write (or empty after O_TRUNC / create); written
    with pwrite, which zero-fills gaps sparsely.

    Concurrency contract: ``exists`` is a set lookup (no disk access) and may be called
    inline on the trio thread; every other method blocks on disk: call it from a worker
    thread. The caller serialises work on one inode (the core's content lock), so an fd
    is never closed while another thread uses it.
    """

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self._fds: dict[int, int] = {}
        self._lock = threading.Lock()
        # Which inodes have a staging file: kept in memory so ``exists`` never stats.
        self._present: set[int] = {int(p.name) for p in self.dir.iterdir() if p.name.isdigit()}

    def path(self, ino: int) -> Path:
        return self.dir / str(ino)

    def exists(self, ino: int) -> bool:
        with self._lock:
            return ino in self._present

    def inodes(self) -> set[int]:
        with self._lock:
            return set(self._present)

    def _fd(self, ino: int) -> int:
        with self._lock:
            fd = self._fds.get(ino)
            if fd is None:
                fd = os.open(self.path(ino), os.O_RDWR | os.O_CREAT, 0o600)
                self._fds[ino] = fd
                self._present.add(ino)
            return fd

    def create(self, ino: int, size: int = 0) -> None:
        """An empty (or sparse ``size``-byte) staging file, replacing any old one."""
        self.close(ino)
        fd = os.open(self.path(ino), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.ftruncate(fd, size)
        with self._lock:
            self._fds[ino] = fd
            self._present.add(ino)

    def write(self, ino: int, offset: int, data: bytes) -> int:
        return os.pwrite(self._fd(ino), data, offset)

    def read(self, ino: int, offset: int, size: int) -> bytes:
        return os.pread(self._fd(ino), size, offset)

    def truncate(self, ino: int, size: int) -> None:
        os.ftruncate(self._fd(ino), size)

    def size(self, ino: int) -> int:
        return os.fstat(self._fd(ino)).st_size

    def fsync(self, ino: int) -> None:
        os.fsync(self._fd(ino))

    def close(self, ino: int) -> None:
        with self._lock:
            fd = self._fds.pop(ino, None)
        if fd is not None:
            os.close(fd)

    def remove(self, ino: int) -> None:
        self.close(ino)
        self.path(ino).unlink(missing_ok=True)
        with self._lock:
            self._present.discard(ino)

    def close_all(self) -> None:
        with self._lock:
            fds, self._fds = list(self._fds.values()), {}
        for fd in fds:
            os.close(fd)
