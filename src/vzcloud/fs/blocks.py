"""The on-disk block cache: file content in fixed-size blocks keyed by (checksum, index).

Blocks are immutable: a checksum names one content forever, so a rename, a move or a new
version never makes a cached block stale (a new version simply has a new checksum).
Size-bounded with least-recently-used eviction (diskcache: the index and the eviction).

Reads are cheap because a read takes only the bytes it asks for: diskcache keeps each
block (of 32 KiB or more) in a file of its own, and ``read`` ``pread``s the asked range
of that file, so a 4 KiB random read costs a 4 KiB disk read, not a 1 MiB one. Where
each block's file is, is remembered in memory (``_files``), so a warm read costs no
SQLite round trip; diskcache's LRU order is brought up to date in batches (``_touched``:
one UPDATE of diskcache's access times). A remembered file that eviction deleted simply
fails to open: then diskcache is asked again (a miss). The content of a file never
changes once written (diskcache writes a new file for every ``set``), so a stale entry
never yields wrong bytes.

Sequential readers of cached blocks: ``advise`` (in a thread of the cache's own, through
``advise_soon``) has the kernel read the next blocks' files into the page cache, all at
once, so the disk works ahead of the reader; ``read(nowait=True)`` then takes a block
from the page cache without waiting for the disk (``RWF_NOWAIT``), which is cheap enough
for the trio thread (a thread hop would cost more than the copy), into a ``bytearray``
handed on as is.

Memory: blocks just downloaded are kept in ``_hot`` (bounded by ``hot_bytes``) for the
reader that is about to ask for them, and in ``_pending`` until they are on disk (the
disk write is off the reader's path). ``get_hot``, ``remember``, ``stage``,
``contains_hot``, ``known_on_disk``, ``advise_soon`` and ``read(nowait=True)`` never wait
for the disk (fine on the trio thread); every other method may block: call it from a
worker thread, never inline in a FUSE handler.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import diskcache
import diskcache.core

log = logging.getLogger("vzcloud.fs.blocks")

DEFAULT_BLOCK_SIZE = 1 << 20
HOT_BYTES = 32 << 20  # blocks kept in memory (downloaded, about to be read)
REMEMBERED_FILES = 1 << 16  # block file paths remembered (~10 MiB of memory at most)
TOUCH_BATCH = 64  # warm reads between two LRU updates of diskcache
_nowait_supported = True  # until a read of the cache's filesystem says otherwise


# What a read returns: the bytes, or (read from the page cache into a buffer of its own,
# handed on without a copy) a bytearray of them.
Buffer = bytes | bytearray


class _BlockDisk(diskcache.Disk):
    """diskcache's Disk, storing a block with one write: diskcache writes a bytes value
    by iterating a BytesIO, that is line by line, thousands of small writes per MiB of
    binary data (most of the CPU a cold read spent caching). It also says where it put
    the last block stored by the calling thread (``last_path``), sparing a lookup."""

    def __init__(self, directory: str, **kwargs: Any) -> None:
        super().__init__(directory, **kwargs)
        self._last = threading.local()

    def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> Any:
        self._last.path = None
        if type(value) is not bytes or len(value) < self.min_file_size:
            return super().store(value, read, key=key)
        filename, full_path = self.filename(key, value)
        self._write(full_path, (value,), "xb")
        self._last.path = full_path
        return len(value), diskcache.core.MODE_BINARY, filename, None

    def last_path(self) -> str | None:
        return getattr(self._last, "path", None)


class BlockCache:
    def __init__(
        self, directory: Path, size_limit: int, block_size: int = DEFAULT_BLOCK_SIZE,
        hot_bytes: int = HOT_BYTES,
    ) -> None:
        self.block_size = block_size
        self.cache = diskcache.Cache(
            str(directory),
            size_limit=size_limit,
            eviction_policy="least-recently-used",
            # diskcache culls lazily on writes; keep its own SQLite small and quick.
            cull_limit=16,
            statistics=False,
            disk=_BlockDisk,
        )
        self._directory = str(directory)
        self._lock = threading.Lock()
        self._hot: OrderedDict[str, bytes] = OrderedDict()
        self._hot_size = 0
        self._hot_max = hot_bytes
        self._pending: dict[str, bytes] = {}
        self._files: OrderedDict[str, str] = OrderedDict()
        self._touched: set[str] = set()
        # ``advise_soon``'s jobs and the thread doing them (started on first use).
        self._advice: queue.SimpleQueue[tuple[str, list[int]] | None] = queue.SimpleQueue()
        self._advisor: threading.Thread | None = None
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(checksum: str, index: int) -> str:
        return f"{checksum}:{index}"

    def blocks_of(self, size: int) -> int:
        return (size + self.block_size - 1) // self.block_size

    # Memory (no disk access: fine on the trio thread) -------------------------------------

    def remember(self, checksum: str, index: int, data: bytes) -> None:
        """Keep a block in memory only; ``put`` stores it on disk too."""
        self._remember(self.key(checksum, index), data)

    def _remember(self, key: str, data: bytes) -> None:
        with self._lock:
            old = self._hot.pop(key, None)
            if old is not None:
                self._hot_size -= len(old)
            self._hot[key] = data
            self._hot_size += len(data)
            while self._hot_size > self._hot_max and len(self._hot) > 1:
                _, gone = self._hot.popitem(last=False)
                self._hot_size -= len(gone)

    def stage(self, checksum: str, index: int, data: bytes) -> None:
        """Keep a block in memory (hot, and pending until a ``put`` of it has it on disk),
        so it can be read before the disk write that follows is done."""
        key = self.key(checksum, index)
        with self._lock:
            self._pending[key] = data
        self._remember(key, data)

    def get_hot(self, checksum: str, index: int) -> bytes | None:
        """The block if it is in memory."""
        key = self.key(checksum, index)
        with self._lock:
            data = self._hot.get(key)
            if data is not None:
                self._hot.move_to_end(key)
            else:
                data = self._pending.get(key)
            if data is not None:
                self.hits += 1
            return data

    def contains_hot(self, checksum: str, index: int) -> bool:
        """Whether the block is in memory or known to be on disk (no disk access). A
        hint: False says nothing, and True can be stale (evicted since), which costs a
        download later, never wrong bytes."""
        key = self.key(checksum, index)
        with self._lock:
            return key in self._hot or key in self._pending or key in self._files

    # Disk (worker threads) -----------------------------------------------------------------

    def read(self, checksum: str, index: int, start: int = 0, length: int = -1,
             known_only: bool = False, nowait: bool = False) -> Buffer | None:
        """Bytes ``[start, start + length)`` of the block (to its end if ``length`` < 0),
        from memory or disk; None if it is not cached (or shorter than asked).
        ``known_only``: only from memory or a block file whose path is remembered (never
        a SQLite query, which may wait for diskcache's lock). ``nowait`` (implies
        ``known_only``): never wait for the disk either, only what the page cache holds
        of the block file (``advise`` gets it there ahead of a sequential reader); None
        otherwise. Fine on the trio thread."""
        hot = self.get_hot(checksum, index)
        if hot is not None:
            stop = len(hot) if length < 0 else start + length
            return hot[start:stop] if stop <= len(hot) else None
        key = self.key(checksum, index)
        with self._lock:
            path = self._files.get(key)
        if nowait:
            known_only = True
        if path is not None:
            data = _pread(path, start, length, nowait)
            if data is not None:
                with self._lock:
                    self.hits += 1
                    self._touched.add(key)
                    touched = len(self._touched)
                if touched >= TOUCH_BATCH and not known_only:
                    self.flush_touches()
                return data
            if not nowait:  # else it may just not be in the page cache
                with self._lock:  # evicted meanwhile
                    self._files.pop(key, None)
        # A miss (the usual case here: a block never read) costs a read-only query; only a
        # hit takes diskcache's write lock, for ``get`` moving it up the LRU order.
        if known_only:
            return None
        if key not in self.cache:
            with self._lock:
                self.misses += 1
            return None
        value = self.cache.get(key, read=True)
        data = None
        if isinstance(value, bytes):  # small blocks live inside diskcache's SQLite
            stop = len(value) if length < 0 else start + length
            data = value[start:stop] if stop <= len(value) else None
        elif value is not None:
            with value:
                self._note_file(key, value.name)
                data = _read_fd(value.fileno(), start, length)
        with self._lock:
            if data is None:
                self.misses += 1
            else:
                self.hits += 1
        return data

    def get(self, checksum: str, index: int) -> bytes | None:
        """The whole block, from memory or disk; None if it is not cached."""
        data = self.read(checksum, index)
        return data if data is None or isinstance(data, bytes) else bytes(data)

    def advise(self, checksum: str, indices: Iterable[int]) -> None:
        """Have the kernel start reading the files of these blocks into the page cache
        (``posix_fadvise`` WILLNEED: the disk works ahead of a sequential reader, which
        then reads them with ``read(nowait=True)`` without a thread hop, instead of one
        synchronous disk read per block). Only blocks whose file path is remembered;
        also brings diskcache's LRU order up to date when due (reads without a worker
        thread cannot). Blocks the disk."""
        for index in indices:
            key = self.key(checksum, index)
            with self._lock:
                path = self._files.get(key)
            if path is None:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                with self._lock:  # evicted
                    self._files.pop(key, None)
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            finally:
                os.close(fd)
        with self._lock:
            due = len(self._touched) >= TOUCH_BATCH
        if due:
            self.flush_touches()

    def advise_soon(self, checksum: str, indices: list[int]) -> None:
        """``advise`` in the background, in a thread of the cache's own: the caller
        neither waits nor pays for a trio thread hop (fine on the trio thread)."""
        with self._lock:
            if self._advisor is None:
                self._advisor = threading.Thread(target=self._advise_loop, daemon=True,
                                                 name="vzcloud-block-advice")
                self._advisor.start()
        self._advice.put((checksum, indices))

    def _advise_loop(self) -> None:
        while (job := self._advice.get()) is not None:
            try:
                self.advise(*job)
            except Exception as exc:  # best effort: the reader waits for the disk instead
                log.debug("advising blocks of %s failed: %r", job[0], exc)

    def known_on_disk(self, checksum: str, index: int) -> bool:
        """Whether the block's file path is remembered (and the block not in memory): a
        hint, as ``contains_hot``."""
        key = self.key(checksum, index)
        with self._lock:
            return key in self._files and key not in self._hot and key not in self._pending

    def _note_file(self, key: str, path: str) -> None:
        with self._lock:
            self._files[key] = path
            self._files.move_to_end(key)
            while len(self._files) > REMEMBERED_FILES:
                self._files.popitem(last=False)

    def flush_touches(self) -> None:
        """Tell diskcache which blocks were read from their files since the last call, so
        its least-recently-used eviction sees them as used (one transaction)."""
        with self._lock:
            keys, self._touched = self._touched, set()
        if not keys:
            return
        # What diskcache's ``get`` does to a hit under the least-recently-used policy
        # (set its access_time), without opening each block's file: one statement for
        # all, mostly in SQLite (few GIL-holding steps for the reader's thread to wait on).
        # diskcache has no public call for this; ``_con`` is its connection and ``Cache``
        # its table in the 5.x series pyproject.toml allows (tests/test_fs_read_cache.py
        # checks the order this gives).
        now = time.time()
        with self.cache.transact():
            self.cache._con.executemany(
                "UPDATE Cache SET access_time = ? WHERE key = ? AND raw = ?",
                [(now, *self.cache.disk.put(key)) for key in keys])

    def contains(self, checksum: str, index: int) -> bool:
        return self.contains_hot(checksum, index) or self.key(checksum, index) in self.cache

    def missing(self, checksum: str, indices: Iterable[int]) -> list[int]:
        """Which of ``indices`` are not cached."""
        return [i for i in indices if not self.contains(checksum, i)]

    def put(self, checksum: str, index: int, data: bytes) -> None:
        """Store a block on disk (and in memory until then, if it was ``stage``d)."""
        key = self.key(checksum, index)
        try:
            self.cache.set(key, bytes(data))
            # Where diskcache put it, so reads need no SQLite round trip (nor its write
            # lock, which concurrent reads would queue on).
            path = self.cache.disk.last_path()
            if path is not None:
                self._note_file(key, path)
        except (OSError, sqlite3.OperationalError) as exc:  # a full disk: caching is best effort
            log.warning("block %s not cached: %s", key, exc)
        finally:  # stored or not (a full disk), memory is not held for it any longer
            with self._lock:
                self._pending.pop(key, None)

    def put_many(self, blocks: list[tuple[str, int, bytes]]) -> None:
        """``put`` each (checksum, index, data) in one diskcache transaction: one SQLite
        commit for many small blocks (a prefetched directory of tiny files) instead of
        one each. Best effort like ``put``; memory is released for every block."""
        try:
            with self.cache.transact():
                for checksum, index, data in blocks:
                    self.put(checksum, index, data)
        except (OSError, sqlite3.OperationalError) as exc:
            log.warning("%d blocks not cached: %s", len(blocks), exc)
        finally:
            with self._lock:
                for checksum, index, _ in blocks:
                    self._pending.pop(self.key(checksum, index), None)

    def put_file(self, checksum: str, path: Path) -> None:
        """Store a whole local file (staged content just uploaded) as blocks of ``checksum``."""
        with open(path, "rb") as f:
            index = 0
            while True:
                data = f.read(self.block_size)
                if not data:
                    break
                try:
                    self.cache.set(self.key(checksum, index), data)
                except (OSError, sqlite3.OperationalError) as exc:  # best effort, as put
                    log.warning("blocks of %s not cached: %s", checksum, exc)
                    return
                index += 1

    def volume(self) -> int:
        """Bytes on disk used by cached blocks."""
        return int(self.cache.volume())

    def close(self) -> None:
        if self._advisor is not None:
            self._advice.put(None)
            self._advisor.join()
        try:
            self.flush_touches()
        finally:
            self.cache.close()


def _pread(path: str, start: int, length: int, nowait: bool = False) -> Buffer | None:
    """``[start, start + length)`` of the file at ``path`` (to its end if ``length`` < 0);
    None if it is gone or shorter, or (``nowait``) not all in the page cache."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        if nowait:
            return _read_fd_nowait(fd, start, length)
        return _read_fd(fd, start, length)
    finally:
        os.close(fd)


def _read_fd_nowait(fd: int, start: int, length: int) -> bytearray | None:
    """``_read_fd`` from the page cache only (``RWF_NOWAIT``): None rather than wait for
    the disk. Into a buffer of its own, handed on as is (no copy to bytes)."""
    if length < 0:
        length = os.fstat(fd).st_size - start
        if length < 0:
            return None
    global _nowait_supported
    if not _nowait_supported:
        return None
    buf = bytearray(length)
    try:
        n = os.preadv(fd, [buf], start, os.RWF_NOWAIT)
    except BlockingIOError:
        return None
    except OSError as exc:  # a filesystem without RWF_NOWAIT for buffered reads
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
        _nowait_supported = False
        log.info("the cache's filesystem cannot read without waiting (%s): reads of "
                 "cached blocks take a worker thread", exc)
        return None
    return buf if n == length else None


def _read_fd(fd: int, start: int, length: int) -> bytes | None:
    if length < 0:
        length = os.fstat(fd).st_size - start
        if length < 0:
            return None
    data = os.pread(fd, length, start)
    return data if len(data) == length else None
