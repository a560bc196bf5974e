"""POSIX semantics over the metadata store, block cache, staging area, uploader and cloud.

The core speaks inodes, handles and errno (``FsError``); it knows nothing of FUSE
(``operations.py`` adapts it) and nothing of HTTP (``remote.py``). Caches, the uploader
and the remote are handed in through the constructor.

Concurrency contract: every method runs on the mount's single trio thread; they overlap
only at ``await``. State read before an await may be stale after it, so every method that
awaits re-reads the inode afterwards. Per-inode content changes (staging, size) happen
under ``self.content_lock(ino)``, which the uploader also takes to snapshot a staging
file; reads of staged content take it too, so they never see a half-built staging file.
Disk work (blocks, staging) goes to worker threads, except reads of cached blocks the
page cache holds (``BlockCache.read(nowait=True)``).

Content: a file's bytes come from its staging file when it has one (written locally,
not yet uploaded, or kept for an unlinked-but-open file), else from cache blocks of its
checksum, fetched from the cloud with ranged GETs on a miss (sequential readers get
read-ahead: several blocks fetched in parallel, in the mount's nursery, and cached
blocks read from disk into the page cache ahead of them).

Namespace changes call the cloud first and change the local tree only once it agreed;
each such change is counted (``meta.note_local_change``) so a fullview fetched meanwhile
is not applied over it (``fs.sync``).

Special entries (``.favorites``, ``.trash``: inode numbers from ``SPECIAL_INO_BASE``, and
the reserved names at the root) and extended attributes are delegated to ``fs.special``
and ``fs.xattrs`` (``self.special``, ``self.xattrs``, set by the mount).
"""

from __future__ import annotations

import bisect
import errno
import logging
import os
import stat
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from vzcloud.api import paths as P
from vzcloud.api.errors import CloudError, ConflictError, NotFoundError
from vzcloud.fs.blocks import BlockCache, Buffer
from vzcloud.fs.errno_map import FsError
from vzcloud.fs.metadata import ROOT_INODE, SPECIAL_INO_BASE, Entry, Inode, MetadataStore
from vzcloud.fs.prefetch import SmallFilePrefetcher
from vzcloud.fs.remote import Remote
from vzcloud.fs.staging import StagingArea

if TYPE_CHECKING:
    from vzcloud.fs.special import SpecialDirs
    from vzcloud.fs.xattrs import Xattrs

log = logging.getLogger("vzcloud.fs")

READAHEAD_BLOCKS = 24  # blocks fetched ahead of a sequential reader
PREFETCH_SPAN = 4  # blocks per read-ahead GET; the GETs run in parallel
PREFETCH_PARALLEL = 4  # read-ahead GETs in flight at once, for the whole mount
INLINE_READ_MAX = 16 << 10  # bytes of cached blocks read without a worker thread
MAX_FILE_SIZE = 1 << 40
LISTING_PAGE = 1024  # directory entries read from the metadata store at a time
LISTINGS_KEPT = 4  # directories whose last page is kept for the next readdir call
STATFS_TTL = 30.0
BUSY_WINDOW = 0.2  # seconds after a request the filesystem counts as busy (uploads yield)
WRITE_BACK_DELAY = 1.0  # seconds a flushed file still open for writing waits for upload
JOURNAL_MAX = 256 << 10  # bytes: a file this small is journaled in its upload job
UPLOAD_HOLD = 60.0  # at most, seconds a file's upload waits while its path changes
# rename(2) flags (Linux values; pyfuse3 passes them through).
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


@dataclass
class MountOptions:
    uid: int = field(default_factory=os.getuid)
    gid: int = field(default_factory=os.getgid)
    umask: int = 0o022
    read_only: bool = False
    entry_timeout: float = 60.0
    attr_timeout: float = 60.0


@dataclass
class Handle:
    fh: int
    ino: int
    writable: bool
    keep_cache: bool = True  # the kernel may keep the pages it has of this file
    dirty: bool = False  # written through this handle since the last flush
    next_offset: int = -1  # where a sequential reader would read next (read-ahead)
    ahead: tuple[str, int] = ("", -1)  # (checksum, last block) read-ahead was started for
    # The inode as last read by ``read``, with the metadata version it was read at.
    seen: tuple[int, Inode] | None = None


class Notifier:
    """Tells the kernel that entries or inodes changed. The FUSE adapter provides the real
    one. The methods may block: the syncer calls them in a worker thread, never inside a
    handler (a kernel invalidation can wait for a request the trio thread must answer)."""

    def entry_removed(self, parent: int, name: str, ino: int = 0) -> None:
        """``name`` left ``parent``; ``ino``: the inode that is gone (0: the name lives on
        with another inode)."""

    def inode_changed(self, ino: int) -> None: ...


class FilesystemCore:
    def __init__(
        self,
        meta: MetadataStore,
        blocks: BlockCache,
        staging: StagingArea,
        remote: Remote,
        options: MountOptions | None = None,
    ) -> None:
        self.meta = meta
        self.blocks = blocks
        self.staging = staging
        self.remote = remote
        self.options = options or MountOptions()
        self.lookups: dict[int, int] = defaultdict(int)
        self.handles: dict[int, Handle] = {}
        self.open_count: dict[int, int] = defaultdict(int)
        self._next_fh = 1
        self._locks: dict[int, trio.Lock] = {}
        self._inflight: dict[tuple[str, int], trio.Event] = {}
        self._prefetch_slots = trio.Semaphore(PREFETCH_PARALLEL)
        self._store_slots = trio.Semaphore(2 * PREFETCH_PARALLEL)  # see ``_prefetch``
        # What content the kernel may hold pages of, per inode (see ``open``).
        self._kernel_view: dict[int, str] = {}
        self._statfs_cache: tuple[float, tuple[int, int]] | None = None
        self.last_request = -1e9  # trio.current_time() of the last request (``busy``)
        self.nursery: trio.Nursery | None = None  # set by the mount: read-ahead tasks
        self.uploader: Any = None  # set by the mount (fs.uploads.Uploader)
        self.special: SpecialDirs | None = None  # set by the mount
        self.xattrs: Xattrs | None = None  # set by the mount
        self.prefetcher = SmallFilePrefetcher(self)  # works once ``nursery`` is set
        # The last page ``readdir`` read per directory, with the metadata version it was
        # read at (see ``readdir``).
        self._listings: dict[int, tuple[int, int, int, list[int], list[Entry]]] = {}

    # Helpers ---------------------------------------------------------------------------

    def content_lock(self, ino: int) -> trio.Lock:
        lock = self._locks.get(ino)
        if lock is None:
            lock = self._locks[ino] = trio.Lock()
        return lock

    def inode(self, ino: int) -> Inode:
        inode = self.meta.get(ino)
        if inode is None:
            raise FsError(errno.ENOENT, f"no inode {ino}")
        return inode

    def cloud_path(self, ino: int) -> str:
        parts = self.meta.path_parts(ino)
        if parts is None:
            raise FsError(errno.ENOENT, f"inode {ino} has no path")
        return P.join(parts)

    def _check_name(self, name: str) -> None:
        if len(name.encode("utf-8", "surrogateescape")) > P.MAX_NAME_BYTES:
            raise FsError(errno.ENAMETOOLONG)
        problem = P.name_problem(name)
        if problem:
            raise FsError(errno.EINVAL, f"invalid name {name!r}: {problem}")

    def _writable(self) -> None:
        if self.options.read_only:
            raise FsError(errno.EROFS, "mounted read-only")

    def _not_special(self, parent: int, name: str, creating: bool = False) -> None:
        """The special directories' errno if ``name`` in ``parent`` is one or in one."""
        if self.special is not None:
            self.special.check_change(parent, name, creating)

    def _directory(self, ino: int) -> Inode:
        inode = self.inode(ino)
        if not inode.is_dir:
            raise FsError(errno.ENOTDIR)
        return inode

    def mode_of(self, inode: Inode) -> int:
        if self.special is not None and self.special.owns(inode.ino):
            return self.special.mode_of(inode)
        return self.plain_mode(inode.is_dir)

    def plain_mode(self, is_dir: bool | int) -> int:
        """The mode of a directory or file that is not a special entry."""
        if is_dir:
            return stat.S_IFDIR | (0o777 & ~self.options.umask)
        return stat.S_IFREG | (0o666 & ~self.options.umask)

    def has_unflushed(self, ino: int) -> bool:
        """A handle wrote to ``ino`` and was not flushed yet (its close will queue it)."""
        return any(h.ino == ino and h.dirty for h in self.handles.values())

    def is_open(self, ino: int) -> bool:
        return bool(self.open_count.get(ino))

    def note_request(self) -> None:
        """The adapter saw a request (see ``busy``)."""
        self.last_request = trio.current_time()

    def busy(self) -> bool:
        """Programs are using the filesystem (a request in the last BUSY_WINDOW s)."""
        return trio.current_time() - self.last_request < BUSY_WINDOW

    # Lookup counts ---------------------------------------------------------------------

    def remember(self, ino: int) -> None:
        """The kernel got a reference to ``ino`` (lookup, create, mkdir, readdirplus)."""
        self.lookups[ino] += 1

    async def forget(self, ino: int, n: int) -> None:
        left = self.lookups[ino] - n
        if left > 0:
            self.lookups[ino] = left
            return
        self.lookups.pop(ino, None)
        await self.maybe_drop(ino)

    async def maybe_drop(self, ino: int) -> None:
        """Delete an unlinked inode once nothing refers to it any more."""
        if ino == ROOT_INODE or self.lookups.get(ino) or self.open_count.get(ino):
            return
        inode = self.meta.get(ino)
        if inode is None or inode.parent is not None:
            return
        self.meta.delete(ino)
        self._kernel_view.pop(ino, None)
        if self.staging.exists(ino):
            async with self.content_lock(ino):
                await trio.to_thread.run_sync(self.staging.remove, ino)
        self._locks.pop(ino, None)

    # Attributes and lookups -------------------------------------------------------------

    def lookup(self, parent: int, name: str) -> Inode:
        if self.special is not None and self.special.covers(parent, name):
            return self.special.lookup(parent, name)
        if name == ".":
            return self.inode(parent)
        if name == "..":
            p = self.inode(parent)
            return self.inode(p.parent or ROOT_INODE)
        inode = self.meta.lookup(parent, name)
        if inode is None:
            raise FsError(errno.ENOENT)
        return inode

    async def lookup_entry(self, parent: int, name: str) -> Inode:
        """``lookup`` for the kernel: in a special directory, what it needs is loaded
        first (a ``.trash`` listing may come from the cloud)."""
        if self.special is not None and self.special.owns(parent):
            await self.special.load(parent)
        return self.lookup(parent, name)

    def getattr(self, ino: int) -> Inode:
        if ino >= SPECIAL_INO_BASE and self.special is not None:
            return self.special.getattr(ino)
        return self.inode(ino)

    async def opendir(self, ino: int) -> None:
        """ENOTDIR unless ``ino`` is a directory; a special one loads its listing."""
        if not self.getattr(ino).is_dir:
            raise FsError(errno.ENOTDIR)
        if self.special is not None and self.special.owns(ino):
            await self.special.load(ino)

    async def setattr(
        self, ino: int, *, size: int | None = None, mtime_ns: int | None = None,
        fh: int | None = None,
    ) -> Inode:
        """Truncate and/or set mtime. Mode and owner come from mount options (accepted,
        not stored: the cloud has no such notion)."""
        if self.special is not None and self.special.owns(ino):
            raise self.special.refusal(ino)
        inode = self.inode(ino)
        if size is not None:
            self._writable()
            if inode.is_dir:
                raise FsError(errno.EISDIR)
            if size < 0 or size > MAX_FILE_SIZE:
                raise FsError(errno.EFBIG, f"size {size} over the limit")
            async with self.content_lock(ino):
                await self._ensure_staged(ino, keep_content=size > 0)
                await trio.to_thread.run_sync(self.staging.truncate, ino, size)
                inode = self.inode(ino)
                self.meta.update(ino, size=size, mtime_ns=time.time_ns(), dirty=1,
                                 write_gen=inode.write_gen + 1)
                # A writable handle's close queues the upload; without one (truncate(1)
                # of a path) the change is queued now.
                handle = self.handles.get(fh) if fh is not None else None
                if handle is None or handle.ino != ino or not handle.writable:
                    handle = next((h for h in self.handles.values()
                                   if h.ino == ino and h.writable), None)
                if handle is not None:
                    handle.dirty = True
                else:
                    await self._stage_for_upload(ino)
        if mtime_ns is not None:
            self.meta.update(ino, mtime_ns=mtime_ns)
        return self.inode(ino)

    def readdir(self, ino: int, after: int, limit: int = 256) -> Sequence[Inode | Entry]:
        """Up to ``limit`` children after inode number ``after``; the adapter uses each
        ino as next_id. Real entries come as ``Entry`` (what a listing shows; cheaper
        than an ``Inode``), special ones as ``Inode``. The root ends with the special
        directories (the highest numbers) and hides real entries with their names. A
        listing from the start tells the prefetcher (``fs.prefetch``)."""
        if self.special is not None and self.special.owns(ino):
            return self.special.readdir(ino, after, limit)
        self._directory(ino)
        if after == 0:
            self.prefetcher.directory_listed(ino)
        if ino != ROOT_INODE or self.special is None:
            return self._children(ino, after, limit)
        special = self.special
        page = self._children(ino, after, limit)
        real: list[Inode | Entry] = [c for c in page if not special.reserved(ino, c.name)]
        if limit < 0 or len(page) < limit:  # the real entries are all listed
            real += special.root_entries(after, -1 if limit < 0 else limit - len(real))
        return real

    def _children(self, ino: int, after: int, limit: int) -> list[Entry]:
        """``meta.entries``, reusing the page read last for ``ino``: the kernel's buffer
        takes a few dozen entries per readdir call, so a page serves several calls in a
        row. Reused only while no row of the metadata store changed since it was read
        (``total_changes`` of its one connection), so it is never staler than a fresh
        query."""
        version = self.meta.db.total_changes
        cached = self._listings.get(ino)
        if cached is not None and cached[0] == version and after >= cached[1] and limit > 0:
            _, _, asked, inos, page = cached
            start = bisect.bisect_right(inos, after)
            if start < len(page) or len(page) < asked:  # within it, or at the end
                return page[start:start + limit]
        if limit < 0:
            return self.meta.entries(ino, after, limit)
        asked = max(limit, LISTING_PAGE)
        page = self.meta.entries(ino, after, asked)
        self._listings.pop(ino, None)
        if len(self._listings) >= LISTINGS_KEPT:
            self._listings.pop(next(iter(self._listings)))
        self._listings[ino] = (version, after, asked, [c.ino for c in page], page)
        return page[:limit]

    # Opening, reading ------------------------------------------------------------------

    async def open(self, ino: int, flags: int) -> Handle:
        if self.special is not None and self.special.owns(ino):
            raise FsError(errno.EISDIR if self.special.getattr(ino).is_dir else errno.EACCES,
                          "trashed content cannot be read; restore it first")
        inode = self.inode(ino)
        if inode.is_dir:
            raise FsError(errno.EISDIR)
        accmode = flags & os.O_ACCMODE
        writable = accmode in (os.O_WRONLY, os.O_RDWR)
        if writable:
            self._writable()
        handle = self._new_handle(ino, writable, inode)
        if not writable:
            self.prefetcher.file_opened(inode)
        if writable and flags & os.O_TRUNC:
            async with self.content_lock(ino):
                await trio.to_thread.run_sync(self.staging.create, ino, 0)
                inode = self.inode(ino)
                self.meta.update(ino, size=0, mtime_ns=time.time_ns(), dirty=1,
                                 write_gen=inode.write_gen + 1)
                handle.dirty = True
        return handle

    def _new_handle(self, ino: int, writable: bool, inode: Inode | None = None) -> Handle:
        """A handle on ``ino``; ``inode``: its current row, if the caller just read it."""
        fh = self._next_fh
        self._next_fh += 1
        # The kernel's pages of this file stay valid while its content is the one they
        # were read from: the same checksum, or local content (the kernel saw every
        # local write go through it).
        if inode is None:
            inode = self.inode(ino)
        view = "local" if inode.dirty or self.staging.exists(ino) else inode.checksum or ""
        keep = self._kernel_view.get(ino) == view
        self._kernel_view[ino] = view
        handle = Handle(fh, ino, writable, keep_cache=keep)
        self.handles[fh] = handle
        self.open_count[ino] += 1
        return handle

    def handle(self, fh: int) -> Handle:
        h = self.handles.get(fh)
        if h is None:
            raise FsError(errno.EBADF)
        return h

    async def read(self, fh: int, offset: int, size: int) -> Buffer:
        handle = self.handle(fh)
        ino = handle.ino
        if size <= 0:
            return b""
        lock = self.content_lock(ino)
        if self.staging.exists(ino) or lock.locked():
            async with lock:  # never read a staging file while it is being built
                if self.staging.exists(ino):
                    inode = self.inode(ino)
                    end = min(offset + size, inode.size)
                    if offset >= end:
                        return b""
                    return await trio.to_thread.run_sync(
                        self.staging.read, ino, offset, end - offset)
        inode = self._read_inode(handle)
        end = min(offset + size, inode.size)
        if offset >= end:
            return b""
        if not inode.checksum:
            return b"\0" * (end - offset)
        # Read-ahead first: its GETs then run while this read waits for its own blocks.
        self._read_ahead(handle, inode, offset, end, (end - 1) // self.blocks.block_size)
        return await self._read_span(inode, offset, end)

    def _read_inode(self, handle: Handle) -> Inode:
        """The handle's inode, read again only when a row of the metadata store changed
        since (``total_changes`` of its one connection, as ``_children``): a write, a
        truncation, a synced or uploaded version all change its row, so the inode is
        never staler than a fresh query, and a sequential reader's requests cost no
        query each."""
        version = self.meta.db.total_changes
        seen = handle.seen
        if seen is not None and seen[0] == version:
            return seen[1]
        inode = self.inode(handle.ino)
        handle.seen = (version, inode)
        return inode

    def _read_ahead(self, handle: Handle, inode: Inode, offset: int, end: int, last: int) -> None:
        """Start fetching the next blocks from the cloud when ``handle`` reads
        sequentially. The kernel sends several readahead requests at once, so
        "sequential" allows a block of reordering. The blocks are claimed here, before
        any await, so a reader that gets there first waits for them instead of fetching
        them again. Blocks already on disk are read into the page cache ahead of the
        reader (``BlockCache.advise``), which then reads them without a thread hop
        (``_read_span``) instead of waiting for one disk read per block."""
        bs = self.blocks.block_size
        sequential = offset == 0 or abs(offset - handle.next_offset) <= bs
        handle.next_offset = end
        if not sequential or self.nursery is None or not inode.checksum:
            return
        checksum = inode.checksum
        started = handle.ahead[1] if handle.ahead[0] == checksum else -1
        start = max(last + 1, started + 1)
        stop = min(last + 1 + READAHEAD_BLOCKS, self.blocks.blocks_of(inode.size))
        if start >= stop:
            return
        handle.ahead = (checksum, stop - 1)
        window = range(start, stop)
        claimed = self._claim(checksum, [i for i in window
                                         if not self.blocks.contains_hot(checksum, i)])
        if claimed:
            self.nursery.start_soon(self._prefetch, inode, claimed)
        on_disk = [i for i in window if self.blocks.known_on_disk(checksum, i)]
        if on_disk:
            self.blocks.advise_soon(checksum, on_disk)

    def _claim(self, checksum: str, indices: list[int]) -> list[int]:
        """Mark the blocks of ``indices`` nobody is fetching as fetched by the caller, who
        must ``_unclaim`` them (fetched or not); returns them."""
        mine = [i for i in indices if (checksum, i) not in self._inflight]
        for i in mine:
            self._inflight[(checksum, i)] = trio.Event()
        return mine

    def _unclaim(self, checksum: str, indices: list[int]) -> None:
        for i in indices:
            event = self._inflight.pop((checksum, i), None)
            if event is not None:
                event.set()

    async def _read_span(self, inode: Inode, offset: int, end: int) -> Buffer:
        """Bytes ``[offset, end)`` of a clean file: from memory when its blocks are there
        (no thread hop), else with one worker-thread call reading just those bytes from
        the blocks' files, and what is not cached from the cloud. Each byte is copied
        once (a whole block in memory, not at all)."""
        assert inode.checksum
        checksum = inode.checksum
        bs = self.blocks.block_size
        first, last = offset // bs, (end - 1) // bs
        # (index, start, stop) of each block's part of the span
        spans = [(i, max(offset, i * bs) - i * bs, min(end, (i + 1) * bs) - i * bs)
                 for i in range(first, last + 1)]
        parts: dict[int, Buffer] = {}
        for i, s, e in spans:
            hot = self.blocks.get_hot(checksum, i)
            if hot is not None:
                parts[i] = hot[s:e]
        cold = [span for span in spans if span[0] not in parts]
        # Blocks being downloaded (read-ahead) are not on disk yet: wait for them and
        # take them from memory, without a disk lookup.
        for i, s, e in cold:
            event = self._inflight.get((checksum, i))
            if event is not None:
                await event.wait()
                hot = self.blocks.get_hot(checksum, i)
                if hot is not None:
                    parts[i] = hot[s:e]
        cold = [span for span in cold if span[0] not in parts]
        if cold and all(self.blocks.contains_hot(checksum, i) for i, _, _ in cold):
            # Block files we know, read without a thread hop (it would cost more than
            # the read): a small read even from the disk (a few KiB: the latency of one
            # disk read, like a SQLite query), a larger one only from the page cache
            # (where ``_read_ahead`` gets a sequential reader's blocks).
            small = sum(e - s for _, s, e in cold) <= INLINE_READ_MAX
            parts.update(self._load_spans(checksum, cold, known_only=True, nowait=not small))
            cold = [span for span in cold if span[0] not in parts]
        if cold:
            parts.update(await trio.to_thread.run_sync(self._load_spans, checksum, cold))
            missing = [i for i, _, _ in cold if i not in parts]
            if missing:
                fetched = await self._fetch(inode, missing, loaded=True)
                parts.update((i, fetched[i][s:e]) for i, s, e in spans
                             if i in fetched and i not in parts)
        if len(spans) == 1:
            return parts[first]
        return b"".join(parts[i] for i in range(first, last + 1))

    def _load_spans(self, checksum: str, spans: list[tuple[int, int, int]],
                    known_only: bool = False, nowait: bool = False) -> dict[int, Buffer]:
        """In a worker thread (inline if ``known_only``, see ``BlockCache.read``): the
        parts ``(index, start, stop)`` of blocks the cache has."""
        got = {i: self.blocks.read(checksum, i, s, e - s, known_only, nowait)
               for i, s, e in spans}
        return {i: d for i, d in got.items() if d is not None}

    async def _read_blocks(self, inode: Inode, first: int, last: int) -> bytes:
        """Blocks ``first..last`` of a clean file, from memory, the disk cache or the cloud."""
        bs = self.blocks.block_size
        data = await self._read_span(inode, first * bs, min((last + 1) * bs, inode.size))
        return data if isinstance(data, bytes) else bytes(data)

    async def _prefetch(self, inode: Inode, claimed: list[int]) -> None:
        """Read-ahead of the ``claimed`` blocks: those not on disk from the cloud, in
        parallel GETs of PREFETCH_SPAN blocks, at most PREFETCH_PARALLEL at once for the
        whole mount. Downloaded blocks wait in memory (``BlockCache.stage``) until they
        are on disk; at most 2 x PREFETCH_PARALLEL GETs are downloading or being stored,
        which bounds the memory of read-ahead and keeps the downloads from outrunning
        the disk. Runs in the mount's nursery, so nothing may escape it."""
        assert inode.checksum
        checksum = inode.checksum
        try:
            on_disk = await trio.to_thread.run_sync(
                lambda: [i for i in claimed if self.blocks.contains(checksum, i)])
            self._unclaim(checksum, on_disk)
            runs: list[list[int]] = []
            for i in claimed:
                if i in on_disk:
                    continue
                if runs and runs[-1][-1] == i - 1 and len(runs[-1]) < PREFETCH_SPAN:
                    runs[-1].append(i)
                else:
                    runs.append([i])

            async def one(run: list[int]) -> None:
                async with self._store_slots:
                    async with self._prefetch_slots:
                        try:
                            fetched = await self._download(inode, run[0], run[-1])
                        finally:
                            self._unclaim(checksum, run)
                    await self._store(checksum, fetched)

            async with trio.open_nursery() as n:
                for run in runs:
                    n.start_soon(one, run)
        except Exception as exc:  # read-ahead is best effort: the read itself will retry
            log.debug("read-ahead of inode %d failed: %r", inode.ino, exc)
        finally:
            self._unclaim(checksum, claimed)

    def _load(self, checksum: str, indices: list[int]) -> dict[int, bytes]:
        """In a worker thread: the whole blocks of ``indices`` the cache has."""
        got = {i: self.blocks.get(checksum, i) for i in indices}
        return {i: d for i, d in got.items() if d is not None}

    async def _store(self, checksum: str, fetched: dict[int, bytes]) -> None:
        """Put downloaded blocks on disk (they stay readable from memory until then)."""
        def store() -> None:
            for i, block in fetched.items():
                self.blocks.put(checksum, i, block)

        await trio.to_thread.run_sync(store)

    async def _store_soon(self, checksum: str, fetched: dict[int, bytes]) -> None:
        """``_store`` off the caller's path (in the mount's nursery); failures are logged:
        the blocks are fetched again when next needed."""
        async def store() -> None:
            try:
                await self._store(checksum, fetched)
            except Exception as exc:
                log.warning("could not cache blocks of %s: %r", checksum, exc)

        if self.nursery is None:
            await store()
        else:
            self.nursery.start_soon(store)

    async def _fetch(self, inode: Inode, wanted: list[int], loaded: bool = False,
                     ) -> dict[int, bytes]:
        """Blocks ``wanted`` (increasing) from memory, the disk cache or the cloud,
        returned (``loaded``: the caller just found them missing on disk).

        A block another task is fetching is waited for and then taken from memory or the
        cache (fetched here if that fetch failed); the rest is claimed and downloaded with
        one ranged GET spanning it, and stored on disk in the background.
        """
        assert inode.checksum
        checksum = inode.checksum
        result: dict[int, bytes] = {}
        if not loaded:
            result = await trio.to_thread.run_sync(self._load, checksum, wanted)
        while True:
            todo = [i for i in wanted if i not in result]
            if not todo:
                return result
            waits = [self._inflight[(checksum, i)] for i in todo if (checksum, i) in self._inflight]
            if waits:
                for event in waits:
                    await event.wait()
                for i in todo:
                    hot = self.blocks.get_hot(checksum, i)
                    if hot is not None:
                        result[i] = hot
                todo = [i for i in wanted if i not in result]
                if todo:
                    result.update(await trio.to_thread.run_sync(self._load, checksum, todo))
                    todo = [i for i in wanted if i not in result]
            mine = self._claim(checksum, todo)
            if not mine:
                continue
            try:
                fetched = await self._download(inode, mine[0], mine[-1])
            finally:
                self._unclaim(checksum, mine)
            result.update(fetched)
            await self._store_soon(checksum, fetched)

    async def _download(self, inode: Inode, first: int, last: int) -> dict[int, bytes]:
        """Blocks ``first..last`` with one ranged GET; they are in memory on return (on
        disk once the caller ``_store``s them).

        If the cloud's content no longer has our checksum (changed remotely, not yet
        synced), nothing is cached under the old checksum: the inode is refreshed and EIO
        raised (the next read uses the new content).
        """
        assert inode.checksum
        checksum = inode.checksum
        bs = self.blocks.block_size
        start, end = first * bs, min((last + 1) * bs, inode.size)
        path = self.cloud_path(inode.ino)
        data, etag = await self.remote.read_range(path, start, end)
        if etag and etag.strip('"') != checksum:
            await self._refresh_file(inode.ino)
            raise FsError(errno.EIO, f"{path} changed in the cloud while reading; retry")
        if len(data) != end - start:
            raise FsError(errno.EIO, f"short read of {path}: {len(data)} of {end - start}")
        if first == last:
            fetched = {first: data}
        else:
            fetched = {i: data[n * bs: (n + 1) * bs] for n, i in enumerate(range(first, last + 1))}
        for i, block in fetched.items():
            self.blocks.stage(checksum, i, block)
        return fetched

    async def _refresh_file(self, ino: int) -> None:
        try:
            f = await self.remote.file_metadata(self.cloud_path(ino))
        except (NotFoundError, FsError):
            return
        inode = self.meta.get(ino)
        if inode is not None and not inode.dirty and not self.staging.exists(ino):
            self.meta.update(ino, checksum=f.checksum, size=f.size, version=f.version)

    # Writing ---------------------------------------------------------------------------

    async def _ensure_staged(self, ino: int, keep_content: bool = True) -> None:
        """Make sure the staging file exists, holding the current content if asked.

        Caller holds the content lock.
        """
        if self.staging.exists(ino):
            return
        inode = self.inode(ino)
        if not keep_content or not inode.checksum or inode.size == 0:
            # Without a checksum there is no content to copy (a never-uploaded file):
            # keep its size, as zeros.
            size = inode.size if keep_content and not inode.checksum else 0
            await trio.to_thread.run_sync(self.staging.create, ino, size)
            return
        await trio.to_thread.run_sync(self.staging.create, ino, 0)
        bs = self.blocks.block_size
        total = self.blocks.blocks_of(inode.size)
        step = 16
        try:
            for first in range(0, total, step):
                last = min(first + step, total) - 1
                data = await self._read_blocks(inode, first, last)
                await trio.to_thread.run_sync(self.staging.write, ino, first * bs, data)
        except BaseException:
            # Inline on purpose: no await is possible while cancelled.
            self.staging.remove(ino)
            raise

    async def write(self, fh: int, offset: int, data: bytes) -> int:
        self._writable()
        handle = self.handle(fh)
        if not handle.writable:
            raise FsError(errno.EBADF)
        if offset + len(data) > MAX_FILE_SIZE:
            raise FsError(errno.EFBIG)
        ino = handle.ino
        async with self.content_lock(ino):
            await self._ensure_staged(ino)
            written = await trio.to_thread.run_sync(self.staging.write, ino, offset, data)
            inode = self.inode(ino)
            self.meta.update(
                ino, size=max(inode.size, offset + written), mtime_ns=time.time_ns(),
                dirty=1, write_gen=inode.write_gen + 1,
            )
        handle.dirty = True
        self._kernel_view[ino] = "local"
        return written

    async def _stage_for_upload(self, ino: int, delay: float = 0.0) -> None:
        """Make the staged content durable and queue its upload (before close returns),
        due in ``delay`` seconds. Caller holds the content lock. An unlinked file is not
        uploaded.

        One sync per close for a small file (at most JOURNAL_MAX bytes): its content
        goes into the job row itself (``journal``), so syncing the metadata WAL makes
        job and content durable together; the staging file is not synced (recovery
        rewrites it from the journal, ``fs.uploads.restore_journaled``). A larger file
        costs two: its staging file, then the job."""
        inode = self.meta.get(ino)
        if inode is None or inode.parent is None:
            return
        journal: bytes | None = None
        if inode.size <= JOURNAL_MAX:
            journal = await trio.to_thread.run_sync(self.staging.read_all, ino)
        if journal is None or len(journal) > JOURNAL_MAX:
            journal = None
            await trio.to_thread.run_sync(self.staging.fsync, ino)
        self.meta.enqueue_upload(ino, delay, journal, inode.write_gen if journal is not None
                                 else None)
        await trio.to_thread.run_sync(self.meta.sync_to_disk)
        if self.uploader is not None:
            self.uploader.wake()

    async def flush(self, fh: int) -> None:
        """Queue what ``fh`` wrote. The job waits WRITE_BACK_DELAY seconds, because a
        flush also comes from closing a duplicate of a descriptor still open (a shell
        redirection flushes before anything is written); the last close (``release``)
        and ``fsync`` make it due at once."""
        handle = self.handle(fh)
        if not handle.dirty:
            return
        async with self.content_lock(handle.ino):
            if self.staging.exists(handle.ino):
                await self._stage_for_upload(handle.ino, WRITE_BACK_DELAY)
        handle.dirty = False

    async def fsync(self, fh: int) -> None:
        """Return only once the file's content has reached the cloud."""
        handle = self.handle(fh)
        await self.flush(fh)
        if self.uploader is not None and self.meta.has_upload_job(handle.ino):
            await self.uploader.wait_uploaded(handle.ino)

    async def release(self, fh: int) -> None:
        handle = self.handles.get(fh)
        if handle is None:
            return
        try:
            await self.flush(fh)
        finally:
            del self.handles[fh]
            ino = handle.ino
            if handle.writable and not any(h.ino == ino and h.writable
                                           for h in self.handles.values()):
                self.meta.retry_now(ino)  # the last writer closed: upload now
                if self.uploader is not None:
                    self.uploader.wake()
            self.open_count[ino] -= 1
            if self.open_count[ino] <= 0:
                self.open_count.pop(ino, None)
                await self._drop_clean_staging(ino)
                await self.maybe_drop(ino)

    async def _drop_clean_staging(self, ino: int) -> None:
        """A staging file whose content is in the cloud (and in cache blocks) can go."""
        if not self.staging.exists(ino):
            return  # the common case (a file only read): no query
        inode = self.meta.get(ino)
        if (inode is not None and inode.parent is not None and not inode.dirty
                and self.staging.exists(ino) and not self.meta.has_upload_job(ino)):
            async with self.content_lock(ino):
                if not self.is_open(ino):
                    await trio.to_thread.run_sync(self.staging.remove, ino)

    async def create(self, parent: int, name: str, flags: int) -> tuple[Handle, Inode]:
        self._writable()
        self._not_special(parent, name, creating=True)
        self._check_name(name)
        self._directory(parent)
        if parent == ROOT_INODE:
            raise FsError(errno.EPERM, "files cannot be created at the top level; "
                                       "use a virtual folder")
        if self.meta.lookup(parent, name) is not None:
            raise FsError(errno.EEXIST)
        inode = self.meta.create(parent, name, is_dir=False, dirty=True)
        await trio.to_thread.run_sync(self.staging.create, inode.ino, 0)
        handle = self._new_handle(inode.ino, writable=True)
        handle.dirty = True  # even an empty new file must reach the cloud
        return handle, self.inode(inode.ino)

    # Namespace -------------------------------------------------------------------------

    async def _ensure_remote_dir(self, ino: int) -> None:
        """Make sure directory ``ino`` exists in the cloud (it may have been deleted
        there while local changes inside it were queued)."""
        inode = self.inode(ino)
        if inode.remote or ino == ROOT_INODE:
            return
        if inode.parent is None:
            raise FsError(errno.ENOENT)
        await self._ensure_remote_dir(inode.parent)
        await self.remote.create_folder(self.cloud_path(inode.parent), inode.name or "",
                                        exist_ok=True)
        self.meta.update(ino, remote=1)

    async def mkdir(self, parent: int, name: str) -> Inode:
        self._writable()
        self._not_special(parent, name, creating=True)
        self._check_name(name)
        self._directory(parent)
        if self.meta.lookup(parent, name) is not None:
            raise FsError(errno.EEXIST)
        if parent == ROOT_INODE:
            await self.remote.create_virtualfolder(name)
        else:
            await self._ensure_remote_dir(parent)
            await self.remote.create_folder(self.cloud_path(parent), name)
        existing = self.meta.lookup(parent, name)
        if existing is not None:  # appeared meanwhile (sync)
            return existing
        inode = self.meta.create(parent, name, is_dir=True, remote=True)
        self.meta.note_local_change()
        return inode

    async def rmdir(self, parent: int, name: str) -> None:
        self._writable()
        self._not_special(parent, name)
        inode = self.lookup(parent, name)
        if not inode.is_dir:
            raise FsError(errno.ENOTDIR)
        if self.meta.has_children(inode.ino):
            raise FsError(errno.ENOTEMPTY)
        await self._remove_remote_dir(inode)
        self.meta.note_local_change()
        await self._detach(inode)

    async def _remove_remote_dir(self, inode: Inode) -> None:
        """Delete an (locally empty) directory in the cloud: a virtual folder is deleted
        for good with its trash, provided the cloud also sees nothing live in it; any
        other folder goes to the trash."""
        if not inode.remote:
            return
        try:
            if inode.parent == ROOT_INODE:
                name = inode.name or ""
                if await self.remote.folder_has_items(P.join([name])):
                    raise FsError(errno.ENOTEMPTY, "the cloud has items in it not seen yet")
                await self.remote.delete_virtualfolder(name, force=True)
            else:
                await self.remote.delete(self.cloud_path(inode.ino))
        except NotFoundError:
            pass  # already gone in the cloud: the local entry goes too
        except ConflictError:
            raise FsError(errno.ENOTEMPTY) from None

    async def unlink(self, parent: int, name: str) -> None:
        self._writable()
        if self.special is not None and self.special.owns(parent):
            return await self.special.unlink(parent, name)  # .favorites: unfavorite
        self._not_special(parent, name)
        inode = self.lookup(parent, name)
        if inode.is_dir:
            raise FsError(errno.EISDIR)
        await self._keep_content_if_open(inode)
        try:
            await self._hold_upload(inode.ino)
            # Re-read: an upload may have landed during the awaits above.
            if self.inode(inode.ino).remote:
                try:
                    await self.remote.delete(self.cloud_path(inode.ino))
                except NotFoundError:
                    pass
            self.meta.note_local_change()
            await self._detach(inode)
        finally:
            self._release_upload(inode.ino)

    async def _keep_content_if_open(self, inode: Inode) -> None:
        """An open file about to leave the cloud keeps its content in staging, so its
        open handles still read it (unlink-while-open)."""
        if self.is_open(inode.ino) and not inode.is_dir:
            async with self.content_lock(inode.ino):
                await self._ensure_staged(inode.ino)

    async def _detach(self, inode: Inode) -> None:
        """Remove the entry; the inode lives on while looked up or open."""
        self.meta.upload_done(inode.ino)
        self.meta.move(inode.ino, None, None)
        await self.maybe_drop(inode.ino)

    async def rename(
        self, parent_old: int, name_old: str, parent_new: int, name_new: str, flags: int
    ) -> None:
        self._writable()
        if self.special is not None and (self.special.covers(parent_old, name_old)
                                         or self.special.covers(parent_new, name_new)):
            return await self.special.rename(parent_old, name_old, parent_new, name_new,
                                             flags)  # out of .trash: restore
        self._check_name(name_new)
        if flags & ~RENAME_NOREPLACE:
            raise FsError(errno.EINVAL, "only RENAME_NOREPLACE is supported")
        inode = self.lookup(parent_old, name_old)
        self._directory(parent_new)
        target = self.meta.lookup(parent_new, name_new)
        if target is not None and target.ino == inode.ino:
            return
        if target is not None and flags & RENAME_NOREPLACE:
            raise FsError(errno.EEXIST)
        at_root = parent_old == ROOT_INODE or parent_new == ROOT_INODE
        if at_root and not (parent_old == parent_new == ROOT_INODE):
            raise FsError(errno.EPERM, "virtual folders stay at the top level and nothing "
                                       "else can be there")
        if inode.is_dir:
            # Moving a directory into its own subtree is impossible.
            p: int | None = parent_new
            while p is not None and p != ROOT_INODE:
                if p == inode.ino:
                    raise FsError(errno.EINVAL, "cannot move a directory into itself")
                p_inode = self.meta.get(p)
                p = p_inode.parent if p_inode else None
        if target is not None:
            if target.is_dir and not inode.is_dir:
                raise FsError(errno.EISDIR)
            if inode.is_dir and not target.is_dir:
                raise FsError(errno.ENOTDIR)
            if target.is_dir and self.meta.has_children(target.ino):
                raise FsError(errno.ENOTEMPTY)
            await self._keep_content_if_open(target)
        held = [i.ino for i in (inode, target) if i is not None and not i.is_dir]
        if inode.is_dir:
            self.meta.folder_moves += 1  # until meta.move below: see Uploader._send
        try:
            for ino in held:
                await self._hold_upload(ino)
            if target is not None:
                target = self.meta.get(target.ino)  # re-read after the awaits
            src_path = self.cloud_path(inode.ino)
            dst_path = P.join([*P.split_path(self.cloud_path(parent_new)), name_new])
            if target is not None and target.is_dir:
                await self._remove_remote_dir(target)
            # Re-read: an upload may have landed during the awaits above (remote is now 1).
            if self.inode(inode.ino).remote:
                if parent_old == parent_new == ROOT_INODE:
                    await self.remote.rename_virtualfolder(name_old, name_new)
                else:
                    await self._ensure_remote_dir(parent_new)
                    # safe=false: the cloud replaces an existing file (it goes to the trash).
                    await self.remote.move(src_path, dst_path)
            elif target is not None and target.remote and not target.is_dir:
                # Our file exists only locally (queued): the replaced cloud file must go.
                try:
                    await self.remote.delete(dst_path)
                except NotFoundError:
                    pass
            # Re-read: the awaits above let other requests run.
            target = self.meta.lookup(parent_new, name_new)
            if target is not None and target.ino != inode.ino:
                await self._detach(target)
            self.meta.move(inode.ino, parent_new, name_new)
            self.meta.note_local_change()
        finally:
            if inode.is_dir:
                self.meta.folder_moves -= 1
            for ino in held:
                self._release_upload(ino)

    async def _hold_upload(self, ino: int) -> None:
        """Before the cloud path of file ``ino`` changes (renamed, replaced by a rename,
        unlinked): an upload of it must not land at the old path afterwards (it would
        bring the file back there, or land over the newcomer). So its queued upload is
        held back, and one already in flight is waited for; ``_release_upload`` ends
        the hold (a detached file has no job left to release)."""
        if self.meta.has_upload_job(ino):
            self.meta.enqueue_upload(ino, UPLOAD_HOLD)
        if self.uploader is not None:
            await self.uploader.settle(ino)

    def _release_upload(self, ino: int) -> None:
        if self.meta.has_upload_job(ino):
            self.meta.retry_now(ino)
            if self.uploader is not None:
                self.uploader.wake()

    # Symlinks (.favorites only) and extended attributes: see fs.special, fs.xattrs -------

    async def symlink(self, parent: int, name: str, target: str) -> Inode:
        self._writable()
        if self.special is None or not self.special.owns(parent):
            self._not_special(parent, name, creating=True)
            raise FsError(errno.EPERM, "symlinks exist only in .favorites")
        return await self.special.symlink(parent, name, target)

    def readlink(self, ino: int) -> str:
        if self.special is None:
            raise FsError(errno.EINVAL)
        return self.special.readlink(ino)

    async def getxattr(self, ino: int, name: bytes) -> bytes:
        if self.xattrs is None:
            raise FsError(errno.ENODATA)
        return await self.xattrs.get(ino, name)

    async def listxattr(self, ino: int) -> list[bytes]:
        return [] if self.xattrs is None else await self.xattrs.names(ino)

    async def setxattr(self, ino: int, name: bytes, value: bytes) -> None:
        if self.xattrs is None:
            raise FsError(errno.ENOTSUP)
        await self.xattrs.set(ino, name, value)

    async def removexattr(self, ino: int, name: bytes) -> None:
        if self.xattrs is None:
            raise FsError(errno.ENODATA)
        await self.xattrs.remove(ino, name)

    async def statfs(self) -> tuple[int, int]:
        """(quota, used) bytes, cached for STATFS_TTL seconds; the last known values
        while the cloud is unreachable."""
        now = time.monotonic()
        if self._statfs_cache and now - self._statfs_cache[0] < STATFS_TTL:
            return self._statfs_cache[1]
        try:
            acct = await self.remote.account()
        except CloudError:
            if self._statfs_cache is not None:
                return self._statfs_cache[1]
            raise
        value = (acct.quota, acct.quota_used)
        self._statfs_cache = (now, value)
        return value
