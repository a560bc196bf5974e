"""Staging files: local content of files being written or waiting for upload."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections.abc import Callable
from pathlib import Path

WRITEBACK_EVERY = 8 << 20  # bytes written to a staging file between writeback starts


def _sync_file_range() -> Callable[[int, int, int], None]:
    """``sync_file_range(fd, offset, n, SYNC_FILE_RANGE_WRITE)``: start writing those
    dirty pages to disk without waiting (Linux; elsewhere a no-op). It makes nothing
    durable by itself: it only leaves less for the fsync at close to wait for."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return lambda fd, offset, n: None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    write = 2  # SYNC_FILE_RANGE_WRITE

    def start(fd: int, offset: int, n: int) -> None:
        call(fd, offset, n, write)  # a failure only means the fsync does all the work

    return start


start_writeback = _sync_file_range()


class StagingArea:
    """Sparse local files holding the content of files open for writing or queued for upload.

    One file per inode (``<dir>/<ino>``), so local state stays keyed by id. Created from
    the current content on the first write (or empty after O_TRUNC / create); written
    with pwrite, which zero-fills gaps sparsely. Every ``WRITEBACK_EVERY`` bytes written
    to a file, writeback of what it holds is started (``start_writeback``), so the fsync
    that makes a large file durable at close finds most of it on disk already.

    Concurrency contract: ``exists`` is a set lookup (no disk access) and may be called
    inline on the trio thread; every other method blocks on disk: call it from a worker
    thread. The caller serialises work on one inode (the core's content lock), so an fd
    is never closed while another thread uses it.
    """

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self._fds: dict[int, int] = {}
        self._unsynced: dict[int, int] = {}  # bytes written since the last writeback start
        self._lock = threading.Lock()
        # Which inodes have a staging file: kept in memory so ``exists`` never stats.
        self._present: set[int] = {int(p.name) for p in self.dir.iterdir() if p.name.isdigit()}
        self._prefix = os.path.join(str(directory), "")  # hot calls build str paths

    def path(self, ino: int) -> Path:
        return self.dir / str(ino)

    def _file(self, ino: int) -> str:
        """``path(ino)`` as a str: os.* calls on it skip pathlib's overhead (per file)."""
        return f"{self._prefix}{ino}"

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
                fd = os.open(self._file(ino), os.O_RDWR | os.O_CREAT, 0o600)
                self._fds[ino] = fd
                self._present.add(ino)
            return fd

    def create(self, ino: int, size: int = 0) -> None:
        """An empty (or sparse ``size``-byte) staging file, replacing any old one."""
        self.close(ino)
        fd = os.open(self._file(ino), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        if size:  # O_TRUNC left it empty: a new file (the common case) needs no more
            os.ftruncate(fd, size)
        with self._lock:
            self._fds[ino] = fd
            self._present.add(ino)

    def write(self, ino: int, offset: int, data: bytes) -> int:
        fd = self._fd(ino)
        written = os.pwrite(fd, data, offset)
        with self._lock:
            unsynced = self._unsynced.get(ino, 0) + written
            self._unsynced[ino] = 0 if unsynced >= WRITEBACK_EVERY else unsynced
        if unsynced >= WRITEBACK_EVERY:
            start_writeback(fd, 0, 0)  # the whole file: pages already queued cost nothing
        return written

    def read_all(self, ino: int) -> bytes:
        """The whole staged content (for small files)."""
        fd = self._fd(ino)
        size = os.fstat(fd).st_size
        data = os.pread(fd, size, 0)
        while len(data) < size:  # pread may return less on some filesystems
            more = os.pread(fd, size - len(data), len(data))
            if not more:
                break
            data += more
        return data

    def restore(self, ino: int, content: bytes) -> bool:
        """Make the staging file hold exactly ``content`` (journaled content after a
        crash: an unsynced staging file may have lost it). Not synced: the journal holds
        it. Returns whether the file had to be rewritten."""
        if self.exists(ino) and self.size(ino) == len(content) and self.read_all(ino) == content:
            return False
        self.create(ino, 0)
        os.pwrite(self._fd(ino), content, 0)
        return True

    def read(self, ino: int, offset: int, size: int) -> bytes:
        return os.pread(self._fd(ino), size, offset)

    def truncate(self, ino: int, size: int) -> None:
        os.ftruncate(self._fd(ino), size)

    def size(self, ino: int) -> int:
        return os.fstat(self._fd(ino)).st_size

    def fsync(self, ino: int) -> None:
        """Make the staged content durable (fdatasync: size and data; the file's times
        do not matter)."""
        os.fdatasync(self._fd(ino))

    def close(self, ino: int) -> None:
        with self._lock:
            fd = self._fds.pop(ino, None)
            self._unsynced.pop(ino, None)
        if fd is not None:
            os.close(fd)

    def remove(self, ino: int) -> None:
        self.close(ino)
        try:
            os.unlink(self._file(ino))
        except FileNotFoundError:
            pass
        with self._lock:
            self._present.discard(ino)

    def close_all(self) -> None:
        with self._lock:
            fds, self._fds = list(self._fds.values()), {}
        for fd in fds:
            os.close(fd)
