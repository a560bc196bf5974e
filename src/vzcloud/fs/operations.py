"""The pyfuse3 adapter: unpack FUSE arguments, call the core, pack the reply.

Nothing else lives here. Every handler goes through ``_guard``, so no exception but
FUSEError ever leaves a handler (any other would end ``pyfuse3.main`` and kill the
mount): OSError, CloudError and disk-level SQLite errors (a full cache disk: ENOSPC)
become their errno through ``errno_map.known_errno``; anything else is logged with its
traceback and becomes EIO. ``_guard`` also tells the core a request came
(``core.busy``: background uploads hold back while programs use the mount).
"""

from __future__ import annotations

import errno
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

import pyfuse3

from vzcloud.api.errors import CloudError
from vzcloud.fs.core import FilesystemCore, Notifier
from vzcloud.fs.errno_map import failure_text, known_errno
from vzcloud.fs.metadata import SPECIAL_INO_BASE, Entry, Inode
from vzcloud.fs.xattrs import ENOATTR, PREFIX

CLOUD_XATTR_PREFIX = PREFIX.encode("utf-8")  # every attribute the mount has starts so
USER_NAMESPACE = b"user."  # the only xattr namespace the mount has

log = logging.getLogger("vzcloud.fs.ops")

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
BLKSIZE = 1 << 20  # a large st_blksize gets larger writes from programs that honour it
_NOTEWORTHY = frozenset({errno.EIO, errno.EAGAIN, errno.EDQUOT, errno.EACCES, errno.ENOSPC})


def _guard(fn: F) -> F:
    @functools.wraps(fn)
    async def wrapper(self: Operations, *args: Any) -> Any:
        self.core.note_request()
        try:
            return await fn(self, *args)
        except pyfuse3.FUSEError:
            raise
        except Exception as exc:  # trio.Cancelled is a BaseException: it passes
            code = known_errno(exc)
            if code is None:
                log.exception("%s failed unexpectedly", fn.__name__)
                raise pyfuse3.FUSEError(errno.EIO) from None
            # Refusals of a bad request are the caller's business; failures to reach or
            # use the cloud or the cache disk are worth a line.
            level = logging.WARNING if isinstance(exc, CloudError) or code in _NOTEWORTHY \
                else logging.DEBUG
            log.log(level, "%s%r: %s (errno %s)", fn.__name__, args[:2], failure_text(exc),
                    errno.errorcode.get(code, code))
            raise pyfuse3.FUSEError(code) from None

    return wrapper  # type: ignore[return-value]


def _name(raw: bytes, missing: int = errno.EINVAL) -> str:
    """A name from the kernel. Cloud names are UTF-8: any other bytes cannot name an
    existing entry (``missing``: ENOENT for lookups) nor a new one (EINVAL)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise pyfuse3.FUSEError(missing) from None


class KernelNotifier(Notifier):
    """Invalidate kernel caches. Called in a worker thread by the syncer, never inside a
    handler: these calls block until related requests in flight are answered."""

    def entry_removed(self, parent: int, name: str, ino: int = 0) -> None:
        raw = name.encode("utf-8")
        if ino:
            # Naming the deleted inode also tells inotify watchers (IN_DELETE); the
            # kernel refuses it when its entry is not that inode (or a directory still
            # has entries cached): then a plain invalidation.
            try:
                pyfuse3.invalidate_entry(parent, raw, deleted=ino)
                return
            except Exception as exc:
                log.debug("invalidate_entry(%d, %r, deleted=%d): %s", parent, name, ino, exc)
        try:
            pyfuse3.invalidate_entry(parent, raw)
        except Exception as exc:  # the kernel may not know the entry: nothing to drop
            log.debug("invalidate_entry(%d, %r): %s", parent, name, exc)

    def inode_changed(self, ino: int) -> None:
        try:
            pyfuse3.invalidate_inode(ino, attr_only=False)
        except Exception as exc:
            log.debug("invalidate_inode(%d): %s", ino, exc)


class Operations(pyfuse3.Operations):
    supports_dot_lookup = True
    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, core: FilesystemCore) -> None:
        super().__init__()
        self.core = core

    def _attrs(self, inode: Inode | Entry) -> pyfuse3.EntryAttributes:
        """The attributes of an inode, or of a listed entry (never a special one)."""
        o = self.core.options
        a = pyfuse3.EntryAttributes()
        a.st_ino = inode.ino
        a.generation = 0
        # Special entries (.favorites, .trash) follow the cloud: the kernel asks each time.
        special = inode.ino >= SPECIAL_INO_BASE
        a.entry_timeout = 0 if special else o.entry_timeout
        a.attr_timeout = 0 if special else o.attr_timeout
        a.st_mode = self.core.mode_of(inode) if isinstance(inode, Inode) \
            else self.core.plain_mode(inode.is_dir)
        a.st_nlink = 2 if inode.is_dir else 1
        a.st_uid = o.uid
        a.st_gid = o.gid
        a.st_rdev = 0
        a.st_size = 4096 if inode.is_dir else inode.size
        a.st_blksize = BLKSIZE
        a.st_blocks = (inode.size + 511) // 512
        a.st_atime_ns = inode.mtime_ns
        a.st_mtime_ns = inode.mtime_ns
        a.st_ctime_ns = inode.ctime_ns
        return a

    @_guard
    async def lookup(self, parent_inode: int, name: bytes, ctx: Any = None) -> pyfuse3.EntryAttributes:
        inode = await self.core.lookup_entry(parent_inode, _name(name, errno.ENOENT))
        self.core.remember(inode.ino)
        return self._attrs(inode)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for ino, n in inode_list:
            try:
                await self.core.forget(ino, n)
            except Exception:  # forget must never raise
                log.exception("forget(%d, %d) failed", ino, n)

    @_guard
    async def getattr(self, inode: int, ctx: Any = None) -> pyfuse3.EntryAttributes:
        return self._attrs(self.core.getattr(inode))

    @_guard
    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields,
                      fh: int | None, ctx: Any) -> pyfuse3.EntryAttributes:
        result = await self.core.setattr(
            inode,
            size=attr.st_size if fields.update_size else None,
            mtime_ns=attr.st_mtime_ns if fields.update_mtime else None,
            fh=fh,
        )
        return self._attrs(result)

    @_guard
    async def opendir(self, inode: int, ctx: Any) -> int:
        await self.core.opendir(inode)
        return inode

    @_guard
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        # The kernel's buffer fills after a few dozen entries; a page of them is read
        # per call and next_id (the inode number) says where the next call goes on.
        for child in self.core.readdir(fh, start_id):
            if not pyfuse3.readdir_reply(token, (child.name or "").encode("utf-8"),
                                         self._attrs(child), child.ino):
                break
            self.core.remember(child.ino)

    async def releasedir(self, fh: int) -> None:
        return None

    @_guard
    async def open(self, inode: int, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        handle = await self.core.open(inode, flags)
        # keep_cache: the kernel page cache stays valid while the content is unchanged
        # (the core tracks it); the sync task invalidates the inode when the cloud
        # changes it.
        return pyfuse3.FileInfo(fh=handle.fh, keep_cache=handle.keep_cache)

    @_guard
    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: Any) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        handle, inode = await self.core.create(parent_inode, _name(name), flags)
        self.core.remember(inode.ino)
        return pyfuse3.FileInfo(fh=handle.fh, keep_cache=handle.keep_cache), self._attrs(inode)

    @_guard
    async def read(self, fh: int, off: int, size: int) -> bytes:
        # pyfuse3 replies with any buffer (PyObject_GetBuffer), though its annotation
        # says bytes: a bytearray read from the page cache goes out without a copy.
        return cast(bytes, await self.core.read(fh, off, size))

    @_guard
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        return await self.core.write(fh, off, buf)

    @_guard
    async def flush(self, fh: int) -> None:
        await self.core.flush(fh)

    @_guard
    async def fsync(self, fh: int, datasync: bool) -> None:
        await self.core.fsync(fh)

    @_guard
    async def release(self, fh: int) -> None:
        await self.core.release(fh)

    @_guard
    async def mkdir(self, parent_inode: int, name: bytes, mode: int, ctx: Any) -> pyfuse3.EntryAttributes:
        inode = await self.core.mkdir(parent_inode, _name(name))
        self.core.remember(inode.ino)
        return self._attrs(inode)

    @_guard
    async def rmdir(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        await self.core.rmdir(parent_inode, _name(name, errno.ENOENT))

    @_guard
    async def unlink(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        await self.core.unlink(parent_inode, _name(name, errno.ENOENT))

    @_guard
    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int,
                     name_new: bytes, flags: int, ctx: Any) -> None:
        await self.core.rename(parent_inode_old, _name(name_old, errno.ENOENT), parent_inode_new,
                               _name(name_new), flags)

    @_guard
    async def link(self, inode: int, new_parent_inode: int, new_name: bytes, ctx: Any) -> Any:
        raise pyfuse3.FUSEError(errno.EPERM)  # the cloud has no hard links

    @_guard
    async def symlink(self, parent_inode: int, name: bytes, target: bytes,
                      ctx: Any) -> pyfuse3.EntryAttributes:
        # The cloud has no symbolic links: only .favorites holds them (fs.special).
        inode = await self.core.symlink(parent_inode, _name(name), _name(target))
        self.core.remember(inode.ino)
        return self._attrs(inode)

    @_guard
    async def readlink(self, inode: int, ctx: Any) -> bytes:
        return self.core.readlink(inode).encode("utf-8")

    @_guard
    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: Any) -> Any:
        raise pyfuse3.FUSEError(errno.EPERM)  # only regular files and directories

    @_guard
    async def statfs(self, ctx: Any) -> pyfuse3.StatvfsData:
        quota, used = await self.core.statfs()
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 4096
        s.f_blocks = quota // 4096
        s.f_bfree = s.f_bavail = max(0, quota - used) // 4096
        s.f_files = s.f_ffree = s.f_favail = 1 << 20
        s.f_namemax = 255
        return s

    async def getxattr(self, inode: int, name: bytes, ctx: Any) -> bytes:
        # ls -l asks for security.selinux and system.posix_acl_access of every entry, and
        # writes ask for security.capability: names the mount never has, refused here
        # without an await, before ``_guard``, the core and their error path. Only the
        # user namespace exists here (ENODATA: no such attribute); any other namespace is
        # not supported (ENOTSUP), which ls remembers per filesystem (coreutils caches
        # it by st_dev): one request per ``ls -l`` instead of two per entry. (ENOSYS would
        # stop the kernel asking at all, for every name: the cloud's would go too.)
        if not name.startswith(CLOUD_XATTR_PREFIX):
            raise pyfuse3.FUSEError(ENOATTR if name.startswith(USER_NAMESPACE) else errno.ENOTSUP)
        return await self._getxattr(inode, name)

    @_guard
    async def _getxattr(self, inode: int, name: bytes) -> bytes:
        return await self.core.getxattr(inode, name)

    @_guard
    async def listxattr(self, inode: int, ctx: Any) -> list[bytes]:
        return await self.core.listxattr(inode)

    @_guard
    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx: Any) -> None:
        await self.core.setxattr(inode, name, value)

    @_guard
    async def removexattr(self, inode: int, name: bytes, ctx: Any) -> None:
        await self.core.removexattr(inode, name)
