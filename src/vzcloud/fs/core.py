"""POSIX semantics over the metadata store, block cache, staging area, uploader and cloud.

The core speaks inodes, handles and errno (``FsError``); it knows nothing of FUSE
(``operations.py`` adapts it) and nothing of HTTP (``remote.py``). Caches, the uploader
and the remote are handed in through the constructor.

Concurrency contract: every method runs on the mount's single trio thread; they overlap
only at ``await``. State read before an await may be stale after it, so every method that
awaits re-reads the inode afterwards. Per-inode content changes (staging, size) happen
under ``self._content_lock(ino)``. Disk work (blocks, staging) goes to worker threads.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import trio

from vzcloud.api import paths as P
from vzcloud.api.errors import CloudError, NotFoundError
from vzcloud.fs.blocks import BlockCache
from vzcloud.fs.errno_map import FsError
from vzcloud.fs.metadata import ROOT_INODE, Inode, MetadataStore
from vzcloud.fs.remote import Remote
from vzcloud.fs.staging import StagingArea

log = logging.getLogger("vzcloud.fs")

READAHEAD_BLOCKS = 8
MAX_FILE_SIZE = 1 << 40


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
    dirty: bool = False  # written through this handle since the last flush
    next_offset: int = -1  # where a sequential reader would read next (read-ahead)


class Notifier:
    """Tells the kernel that entries or inodes changed. The FUSE adapter provides the real
    one; calls are only ever made from background tasks, never inside a handler."""

    def entry_removed(self, parent: int, name: str) -> None: ...

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
        self._statfs_cache: tuple[float, Any] | None = None
        self.nursery: trio.Nursery | None = None  # set by the mount: read-ahead tasks
        self.uploader: Any = None  # set by the mount (fs.uploads.Uploader)

    # Helpers ---------------------------------------------------------------------------

    def _content_lock(self, ino: int) -> trio.Lock:
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
        problem = P.name_problem(name)
        if problem:
            raise FsError(errno.EINVAL, f"invalid name {name!r}: {problem}")

    def _writable(self) -> None:
        if self.options.read_only:
            raise FsError(errno.EROFS, "mounted read-only")

    def mode_of(self, inode: Inode) -> int:
        if inode.is_dir:
            return stat.S_IFDIR | (0o777 & ~self.options.umask)
        return stat.S_IFREG | (0o666 & ~self.options.umask)

    # Lookup counts ---------------------------------------------------------------------

    def remember(self, ino: int) -> None:
        """The kernel got a reference to ``ino`` (lookup, create, mkdir, readdirplus)."""
        self.lookups[ino] += 1

    def forget(self, ino: int, n: int) -> None:
        left = self.lookups[ino] - n
        if left > 0:
            self.lookups[ino] = left
            return
        self.lookups.pop(ino, None)
        self._maybe_drop(ino)

    def _maybe_drop(self, ino: int) -> None:
        """Delete an unlinked inode once nothing refers to it any more."""
        if ino == ROOT_INODE or self.lookups.get(ino) or self.open_count.get(ino):
            return
        inode = self.meta.get(ino)
        if inode is not None and inode.parent is None:
            self.meta.delete(ino)
            self.staging.remove(ino)
            self._locks.pop(ino, None)

    # Attributes and lookups -------------------------------------------------------------

    def lookup(self, parent: int, name: str) -> Inode:
        if name == ".":
            return self.inode(parent)
        if name == "..":
            p = self.inode(parent)
            return self.inode(p.parent or ROOT_INODE)
        inode = self.meta.lookup(parent, name)
        if inode is None:
            raise FsError(errno.ENOENT)
        return inode

    def getattr(self, ino: int) -> Inode:
        return self.inode(ino)

    async def setattr(
        self, ino: int, *, size: int | None = None, mtime_ns: int | None = None
    ) -> Inode:
        """Truncate and/or set mtime. Mode and owner come from mount options (accepted,
        not stored: the cloud has no such notion)."""
        inode = self.inode(ino)
        if size is not None:
            self._writable()
            if inode.is_dir:
                raise FsError(errno.EISDIR)
            if size < 0 or size > MAX_FILE_SIZE:
                raise FsError(errno.EFBIG, f"size {size} over the limit")
            async with self._content_lock(ino):
                await self._ensure_staged(ino, keep_content=size > 0)
                await trio.to_thread.run_sync(self.staging.truncate, ino, size)
                inode = self.inode(ino)
                self.meta.update(ino, size=size, mtime_ns=time.time_ns(), dirty=1,
                                 write_gen=inode.write_gen + 1)
                # A truncate outside an open handle must still reach the cloud.
                if not self.open_count.get(ino):
                    await self._stage_for_upload(ino)
                else:
                    for h in self.handles.values():
                        if h.ino == ino and h.writable:
                            h.dirty = True
                            break
                    else:
                        await self._stage_for_upload(ino)
        if mtime_ns is not None:
            self.meta.update(ino, mtime_ns=mtime_ns)
        return self.inode(ino)

    def readdir(self, ino: int, after: int) -> Iterator[Inode]:
        """Children after inode number ``after``; the adapter uses each ino as next_id."""
        inode = self.inode(ino)
        if not inode.is_dir:
            raise FsError(errno.ENOTDIR)
        return self.meta.children(ino, after)

    # Opening, reading ------------------------------------------------------------------

    async def open(self, ino: int, flags: int) -> Handle:
        inode = self.inode(ino)
        if inode.is_dir:
            raise FsError(errno.EISDIR)
        accmode = flags & os.O_ACCMODE
        writable = accmode in (os.O_WRONLY, os.O_RDWR)
        if writable:
            self._writable()
        handle = self._new_handle(ino, writable)
        if writable and flags & os.O_TRUNC:
            async with self._content_lock(ino):
                await trio.to_thread.run_sync(self.staging.create, ino, 0)
                self.meta.update(ino, size=0, mtime_ns=time.time_ns(), dirty=1,
                                 write_gen=inode.write_gen + 1)
                handle.dirty = True
        return handle

    def _new_handle(self, ino: int, writable: bool) -> Handle:
        fh = self._next_fh
        self._next_fh += 1
        handle = Handle(fh, ino, writable)
        self.handles[fh] = handle
        self.open_count[ino] += 1
        return handle

    def handle(self, fh: int) -> Handle:
        h = self.handles.get(fh)
        if h is None:
            raise FsError(errno.EBADF)
        return h

    async def read(self, fh: int, offset: int, size: int) -> bytes:
        handle = self.handle(fh)
        ino = handle.ino
        inode = self.inode(ino)
        if offset >= inode.size or size <= 0:
            return b""
        end = min(offset + size, inode.size)
        if self.staging.exists(ino):
            return await trio.to_thread.run_sync(self.staging.read, ino, offset, end - offset)
        if not inode.checksum:
            return b"\0" * (end - offset)
        bs = self.blocks.block_size
        first, last = offset // bs, (end - 1) // bs
        data = await self._read_blocks(inode, first, last)
        sequential = handle.next_offset == offset or offset == 0
        handle.next_offset = end
        if sequential and self.nursery is not None:
            total = self.blocks.blocks_of(inode.size)
            ahead = range(last + 1, min(last + 1 + READAHEAD_BLOCKS, total))
            if ahead:
                self.nursery.start_soon(self._prefetch, inode, ahead.start, ahead.stop - 1)
        return data[offset - first * bs: end - first * bs]

    async def _read_blocks(self, inode: Inode, first: int, last: int) -> bytes:
        """Blocks ``first..last`` of a clean file, from the cache or the cloud."""
        assert inode.checksum
        checksum = inode.checksum
        parts: dict[int, bytes] = {}
        missing: list[int] = []
        for i in range(first, last + 1):
            cached = await trio.to_thread.run_sync(self.blocks.get, checksum, i)
            if cached is None:
                missing.append(i)
            else:
                parts[i] = cached
        if missing:
            await self._fetch(inode, missing[0], missing[-1])
            for i in missing:
                got = await trio.to_thread.run_sync(self.blocks.get, checksum, i)
                if got is None:  # evicted at once (tiny cache): fetch directly
                    await self._fetch(inode, i, i)
                    got = await trio.to_thread.run_sync(self.blocks.get, checksum, i) or b""
                parts[i] = got
        return b"".join(parts[i] for i in range(first, last + 1))

    async def _prefetch(self, inode: Inode, first: int, last: int) -> None:
        assert inode.checksum
        todo = [
            i for i in range(first, last + 1)
            if (inode.checksum, i) not in self._inflight
            and not await trio.to_thread.run_sync(self.blocks.contains, inode.checksum, i)
        ]
        if not todo:
            return
        try:
            # Parallel ranged GETs, two blocks each: the cloud serves them concurrently.
            async with trio.open_nursery() as n:
                for i in range(0, len(todo), 2):
                    run = todo[i: i + 2]
                    n.start_soon(self._fetch, inode, run[0], run[-1])
        except (CloudError, FsError) as exc:  # read-ahead is best effort
            log.debug("read-ahead of inode %d failed: %s", inode.ino, exc)

    async def _fetch(self, inode: Inode, first: int, last: int) -> None:
        """Download blocks ``first..last`` with one ranged GET and cache them.

        Concurrent fetches of the same block wait for the first one. If the cloud's
        content no longer has our checksum (changed remotely, not yet synced), nothing is
        cached under the old checksum: the inode is refreshed and ESTALE-like EIO raised
        so the kernel retries with the new attributes.
        """
        assert inode.checksum
        checksum = inode.checksum
        keys = [(checksum, i) for i in range(first, last + 1)]
        waits = [self._inflight[k] for k in keys if k in self._inflight]
        if waits:
            for ev in waits:
                await ev.wait()
            keys = [k for k in keys if k not in self._inflight]
            if not keys or all(
                [await trio.to_thread.run_sync(self.blocks.contains, *k) for k in keys]
            ):
                return
        event = trio.Event()
        for k in keys:
            self._inflight[k] = event
        try:
            bs = self.blocks.block_size
            start, end = first * bs, min((last + 1) * bs, inode.size)
            path = self.cloud_path(inode.ino)
            data, etag = await self.remote.read_range(path, start, end)
            if etag and etag.strip('"') != checksum:
                await self._refresh_file(inode.ino)
                raise FsError(errno.EIO, f"{path} changed in the cloud while reading; retry")
            if len(data) != end - start:
                raise FsError(errno.EIO, f"short read of {path}: {len(data)} of {end - start}")

            def store() -> None:
                for n, i in enumerate(range(first, last + 1)):
                    self.blocks.put(checksum, i, data[n * bs: (n + 1) * bs])

            await trio.to_thread.run_sync(store)
        finally:
            for k in keys:
                self._inflight.pop(k, None)
            event.set()

    async def _refresh_file(self, ino: int) -> None:
        try:
            f = await self.remote.file_metadata(self.cloud_path(ino))
        except NotFoundError:
            return
        inode = self.meta.get(ino)
        if inode is not None and not inode.dirty:
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
            await trio.to_thread.run_sync(self.staging.create, ino, 0)
            if keep_content and inode.size and not inode.checksum:
                await trio.to_thread.run_sync(self.staging.truncate, ino, inode.size)
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
        async with self._content_lock(ino):
            await self._ensure_staged(ino)
            written = await trio.to_thread.run_sync(self.staging.write, ino, offset, data)
            inode = self.inode(ino)
            self.meta.update(
                ino, size=max(inode.size, offset + written), mtime_ns=time.time_ns(),
                dirty=1, write_gen=inode.write_gen + 1,
            )
        handle.dirty = True
        return written

    async def _stage_for_upload(self, ino: int) -> None:
        """Make the staged content durable and queue its upload (before close returns)."""
        await trio.to_thread.run_sync(self.staging.fsync, ino)
        self.meta.enqueue_upload(ino)
        if self.uploader is not None:
            self.uploader.wake()

    async def flush(self, fh: int) -> None:
        handle = self.handle(fh)
        if not handle.dirty:
            return
        async with self._content_lock(handle.ino):
            if self.staging.exists(handle.ino):
                await self._stage_for_upload(handle.ino)
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
            self.open_count[ino] -= 1
            if self.open_count[ino] <= 0:
                self.open_count.pop(ino, None)
                inode = self.meta.get(ino)
                if inode is not None and not inode.dirty and not self.meta.has_upload_job(ino):
                    self.staging.remove(ino)
                self._maybe_drop(ino)

    async def create(self, parent: int, name: str, flags: int) -> tuple[Handle, Inode]:
        self._writable()
        self._check_name(name)
        if parent == ROOT_INODE:
            raise FsError(errno.EPERM, "files cannot be created at the top level; "
                                       "use a virtual folder")
        if self.meta.lookup(parent, name) is not None:
            raise FsError(errno.EEXIST)
        inode = self.meta.create(parent, name, is_dir=False, dirty=True)
        await trio.to_thread.run_sync(self.staging.create, inode.ino, 0)
        handle = self._new_handle(inode.ino, writable=True)
        handle.dirty = True  # even an empty new file must reach the cloud
        return handle, inode

    # Namespace -------------------------------------------------------------------------

    async def mkdir(self, parent: int, name: str) -> Inode:
        self._writable()
        self._check_name(name)
        if self.meta.lookup(parent, name) is not None:
            raise FsError(errno.EEXIST)
        if parent == ROOT_INODE:
            await self.remote.create_virtualfolder(name)
        else:
            await self.remote.create_folder(self.cloud_path(parent), name)
        if self.meta.lookup(parent, name) is not None:  # appeared meanwhile (sync)
            return self.lookup(parent, name)
        return self.meta.create(parent, name, is_dir=True, remote=True)

    async def rmdir(self, parent: int, name: str) -> None:
        self._writable()
        inode = self.lookup(parent, name)
        if not inode.is_dir:
            raise FsError(errno.ENOTDIR)
        if self.meta.has_children(inode.ino):
            raise FsError(errno.ENOTEMPTY)
        path = self.cloud_path(inode.ino)
        try:
            if parent == ROOT_INODE:
                await self.remote.delete_virtualfolder(name)
            else:
                await self.remote.delete(path)
        except NotFoundError:
            pass  # already gone in the cloud: the local entry goes too
        self._detach(inode)

    async def unlink(self, parent: int, name: str) -> None:
        self._writable()
        inode = self.lookup(parent, name)
        if inode.is_dir:
            raise FsError(errno.EISDIR)
        if inode.remote:
            try:
                await self.remote.delete(self.cloud_path(inode.ino))
            except NotFoundError:
                pass
        self._detach(inode)

    def _detach(self, inode: Inode) -> None:
        """Remove the entry; the inode lives on while looked up or open."""
        self.meta.upload_done(inode.ino)
        self.meta.move(inode.ino, None, None)
        self._maybe_drop(inode.ino)

    async def rename(
        self, parent_old: int, name_old: str, parent_new: int, name_new: str, flags: int
    ) -> None:
        self._writable()
        self._check_name(name_new)
        noreplace = getattr(os, "RENAME_NOREPLACE", 1)
        if flags & ~noreplace:
            raise FsError(errno.EINVAL, "only RENAME_NOREPLACE is supported")
        inode = self.lookup(parent_old, name_old)
        target = self.meta.lookup(parent_new, name_new)
        if target is not None and target.ino == inode.ino:
            return
        if target is not None and flags & noreplace:
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
        src_path = self.cloud_path(inode.ino)
        dst_path = P.join([*(self.meta.path_parts(parent_new) or []), name_new])
        if target is not None and target.is_dir:
            if parent_new == ROOT_INODE:
                await self.remote.delete_virtualfolder(name_new)
            else:
                await self.remote.delete(dst_path)
        if inode.remote:
            if parent_old == parent_new == ROOT_INODE:
                await self.remote.rename_virtualfolder(name_old, name_new)
            else:
                # safe=false: the cloud replaces an existing file (it goes to the trash).
                await self.remote.move(src_path, dst_path)
        elif target is not None and target.remote:
            # Our file exists only locally (queued): the replaced cloud file must go.
            await self.remote.delete(dst_path)
        if target is not None:
            self._detach(target)
        self.meta.move(inode.ino, parent_new, name_new)

    async def statfs(self) -> tuple[int, int]:
        """(quota, used) bytes, cached for 30 s."""
        now = time.monotonic()
        if self._statfs_cache and now - self._statfs_cache[0] < 30:
            return self._statfs_cache[1]
        acct = await self.remote.account()
        value = (acct.quota, acct.quota_used)
        self._statfs_cache = (now, value)
        return value
