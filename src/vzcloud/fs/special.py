"""The cloud's own features as files: ``.favorites/`` and ``.trash/`` at the root, and
the favorite mark and tags of an item (``CloudMarks``, also used by ``fs.xattrs``).

``.favorites/``: every favorite file and folder (``inodes.favorite``, kept current by the
syncer) as a symlink to its path, relative to the link (``../VZMOBILE/a/b.jpg``), so it
works wherever the mount is. The link's name is the item's; when two favorites share a
name, the later one (by inode number) is ``NAME (2).EXT``, ``NAME (3).EXT``...
``ln -s TARGET MNT/.favorites/`` favorites TARGET (a path in the mount: absolute under
the mountpoint as mounted, or relative to ``.favorites``; EXDEV outside the mount,
ENOENT if missing, EEXIST if already a favorite); removing the link unfavorites it.
Nothing else can be created or changed there (EPERM).

``.trash/<virtual folder>/...``: a read-only tree of what each virtual folder's trash
holds, at the original paths, with sizes and dates: the trash API (``deep``), fetched
when the tree is walked or listed and kept TRASH_TTL seconds (less when the account
changed meanwhile). Renaming an item out of ``.trash`` restores it (the cloud puts it
back at its original path, recreating missing folders; when the new path differs, it is
then moved there; a live item at either path is EEXIST, nothing is replaced). Folders
shown only because trashed items are inside them are live in the cloud: they cannot be
moved out (EPERM; move the items inside). Every other change is EROFS. Opening a
trashed file is EACCES: the cloud serves no content of trashed files (restore it first).
Directories show write permission all the same: moving an entry out of a directory
(restore) needs it.

Special entries live in memory, numbered from ``SPECIAL_INO_BASE`` (no real inode gets
there); an entry keeps its number for the life of the mount. The adapter gives them
zero kernel cache timeouts, so the kernel asks again each time: they follow the cloud,
and a restored item's entry must turn into the real one at once.

A virtual folder named ``.favorites`` or ``.trash`` in the cloud is hidden in the mount
(the CLI and SDK still reach it); creating one through the mount is EEXIST.

Concurrency contract: as the core (one trio thread); methods that await re-read what
they need afterwards.
"""

from __future__ import annotations

import errno
import logging
import os
import posixpath
import stat
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vzcloud.api import paths as P
from vzcloud.api.errors import CloudError, ConflictError
from vzcloud.api.models import CloudFile, CloudFolder, FolderListing
from vzcloud.fs.errno_map import FsError
from vzcloud.fs.metadata import ROOT_INODE, SPECIAL_INO_BASE, Inode
from vzcloud.fs.sync import parse_time_ns, suffixed

if TYPE_CHECKING:
    from vzcloud.fs.core import FilesystemCore
    from vzcloud.fs.sync import Syncer

log = logging.getLogger("vzcloud.fs.special")

FAVORITES = ".favorites"
TRASH = ".trash"
SPECIAL_NAMES = frozenset({FAVORITES, TRASH})
FAVORITES_INO = SPECIAL_INO_BASE + 1
TRASH_INO = SPECIAL_INO_BASE + 2
FIRST_DYNAMIC_INO = SPECIAL_INO_BASE + 16
TRASH_TTL = 3.0  # seconds a fetched trash listing serves lookups and listings


def is_special(ino: int) -> bool:
    return ino >= SPECIAL_INO_BASE


class CloudMarks:
    """An item's favorite mark and tags: read from the metadata the syncer keeps; changed
    in the cloud first, then locally (``note_local_change``, so a fullview fetched
    meanwhile does not undo it).

    The cloud names items by uri, and a uri names a path: it is fetched afresh from the
    item's current path before each change (one GET; stored uris go stale when an item
    or a folder above it is renamed, until the next sync)."""

    def __init__(self, core: FilesystemCore) -> None:
        self.core = core

    async def cloud_item(self, ino: int) -> CloudFile | CloudFolder:
        """The item's cloud metadata, fetched now; its uri, mark and tags are stored. A
        file still waiting for its first upload is waited for (as fsync does). EPERM for
        the root; EAGAIN for an item not in the cloud and not queued either (a file open
        for writing: close it first); ENOENT if the cloud has nothing there."""
        core = self.core
        inode = core.inode(ino)
        if ino == ROOT_INODE:
            raise FsError(errno.EPERM, "the root is not an item")
        if not inode.remote:
            if not inode.is_dir and core.meta.has_upload_job(ino) and core.uploader is not None:
                await core.uploader.wait_uploaded(ino)
            else:
                raise FsError(errno.EAGAIN, "not in the cloud yet; try again once uploaded")
        item = await core.remote.item_metadata(core.cloud_path(ino))
        if isinstance(item, CloudFolder) != core.inode(ino).is_dir:
            raise FsError(errno.ENOENT, "the cloud has another kind of item there")
        fields: dict[str, object] = dict(uri=item.uri, favorite=int(bool(item.favorite)),
                                         tags=item.tags)
        if isinstance(item, CloudFolder):
            fields["version"] = item.version  # a file's version goes with its checksum
        core.meta.update(ino, **fields)
        return item

    async def complete(self, ino: int) -> Inode:
        """The inode, with the uri, tags and version of a folder the first fullview did not
        describe (it lists only folders without files) fetched once; best effort."""
        inode = self.core.inode(ino)
        if inode.is_dir and inode.remote and inode.uri is None and ino != ROOT_INODE:
            try:
                await self.cloud_item(ino)
            except (CloudError, FsError) as exc:
                log.debug("cannot describe folder inode %d: %s", ino, exc)
        return self.core.inode(ino)

    async def set_favorite(self, ino: int, favorite: bool) -> None:
        item = await self.cloud_item(ino)
        assert item.uri is not None
        await self.core.remote.set_favorite(item.uri, favorite)
        self.core.meta.update(ino, favorite=int(favorite))
        self.core.meta.note_local_change()

    async def set_tags(self, ino: int, tags: str | None) -> None:
        """Replace the item's tags (comma-separated; None or blank removes them); the
        cloud's normalised form is stored."""
        item = await self.cloud_item(ino)
        assert item.uri is not None
        await self.core.remote.set_tags(item.uri, tags)
        await self.cloud_item(ino)
        self.core.meta.note_local_change()


@dataclass
class _Entry:
    """A ``.trash`` entry: a virtual folder's tree root, a trashed item, or a folder shown
    only because trashed items are inside it (``restorable`` False)."""

    ino: int
    parent: int
    name: str
    is_dir: bool
    vf: str
    path: str  # the original cloud path
    size: int = 0
    mtime_ns: int = 0
    restorable: bool = False
    children: dict[str, _Entry] = field(default_factory=dict)


@dataclass
class _Favorite:
    ino: int
    name: str
    item: Inode
    target: str


@dataclass
class _TrashCache:
    fetched: float  # time.monotonic()
    stamp: tuple[int, int]  # (local changes, remote changes) when fetched


class SpecialDirs:
    """``.favorites`` and ``.trash`` (see the module docstring). The core delegates every
    request on a special inode, and on the reserved names at the root, to this."""

    def __init__(self, core: FilesystemCore, marks: CloudMarks,
                 mountpoint: str | os.PathLike[str] | None = None) -> None:
        self.core = core
        self.meta = core.meta
        self.marks = marks
        self.mountpoint = os.path.normpath(os.fspath(mountpoint)) if mountpoint else None
        self.syncer: Syncer | None = None  # set by the mount: a restore applies at once
        self._numbers: dict[tuple[object, ...], int] = {}
        self._next_ino = FIRST_DYNAMIC_INO
        self._favorite_of: dict[int, int] = {}  # .favorites entry -> the item's inode
        self._trash: dict[int, _Entry] = {}  # .trash entries by inode
        self._roots: dict[str, _Entry] = {}  # virtual folder -> its .trash tree root
        self._fetched: dict[str, _TrashCache] = {}
        # The favorites as links, computed once per state of the account (a listing
        # stats every entry: recomputing each time would cost O(favorites^2)).
        self._links: tuple[tuple[int, int], dict[int, _Favorite]] | None = None
        self._started_ns = time.time_ns()

    # Which requests are ours -----------------------------------------------------------

    @staticmethod
    def owns(ino: int) -> bool:
        return is_special(ino)

    @staticmethod
    def reserved(parent: int, name: str) -> bool:
        """``name`` in ``parent`` is a special directory (it hides any real one)."""
        return parent == ROOT_INODE and name in SPECIAL_NAMES

    def covers(self, parent: int, name: str) -> bool:
        return is_special(parent) or self.reserved(parent, name)

    def _number(self, *key: object) -> int:
        ino = self._numbers.get(key)
        if ino is None:
            ino = self._numbers[key] = self._next_ino
            self._next_ino += 1
        return ino

    def _in_trash(self, ino: int) -> bool:
        return ino == TRASH_INO or ino in self._trash

    def refusal(self, ino: int) -> FsError:
        """The error for a change to special inode ``ino`` (or inside it)."""
        if self._in_trash(ino):
            return FsError(errno.EROFS, ".trash is read-only; move items out to restore them")
        return FsError(errno.EPERM, ".favorites holds only symlinks to items in the mount")

    def check_change(self, parent: int, name: str, creating: bool = False) -> None:
        """Raise the right errno if creating, removing or changing ``name`` in ``parent``
        touches a special directory."""
        if self.reserved(parent, name):
            if creating:
                raise FsError(errno.EEXIST, f"{name} is reserved for the mount's own use")
            raise FsError(errno.EPERM, f"{name} is part of the mount")
        if is_special(parent):
            raise self.refusal(parent)

    # Attributes ------------------------------------------------------------------------

    def _inode(self, ino: int, parent: int, name: str, is_dir: bool, size: int = 0,
               mtime_ns: int = 0) -> Inode:
        when = mtime_ns or self._started_ns
        return Inode(ino, parent, name, is_dir, size, when, when, None, None, True, False, 0,
                     False, None, None, None, None)

    def mode_of(self, inode: Inode) -> int:
        umask = self.core.options.umask
        if inode.ino in self._favorite_of:
            return stat.S_IFLNK | 0o777
        if inode.is_dir:
            return stat.S_IFDIR | (0o777 & ~umask)
        return stat.S_IFREG | (0o444 & ~umask)

    def getattr(self, ino: int) -> Inode:
        if ino == FAVORITES_INO:
            return self._inode(FAVORITES_INO, ROOT_INODE, FAVORITES, True)
        if ino == TRASH_INO:
            return self._inode(TRASH_INO, ROOT_INODE, TRASH, True)
        if ino in self._favorite_of:
            fav = self._favorites().get(ino)
            if fav is None:
                raise FsError(errno.ENOENT, "no longer a favorite")
            return self._favorite_inode(fav)
        entry = self._trash.get(ino)
        if entry is None:
            raise FsError(errno.ENOENT, f"no special inode {ino}")
        return self._entry_inode(entry)

    def _favorite_inode(self, fav: _Favorite) -> Inode:
        return self._inode(fav.ino, FAVORITES_INO, fav.name, False,
                           len(fav.target.encode("utf-8")), fav.item.mtime_ns)

    def _entry_inode(self, entry: _Entry) -> Inode:
        return self._inode(entry.ino, entry.parent, entry.name, entry.is_dir, entry.size,
                           entry.mtime_ns)

    # Lookups and listings --------------------------------------------------------------

    async def load(self, ino: int) -> None:
        """Make sure what lookups and listings in directory ``ino`` need is here (a
        ``.trash`` tree is fetched when stale)."""
        entry = self._trash.get(ino)
        if entry is not None:
            await self._load_trash(entry.vf)

    def lookup(self, parent: int, name: str) -> Inode:
        """Entry ``name`` of special directory ``parent`` (or a special directory at the
        root), from what is loaded (see ``load``)."""
        if self.reserved(parent, name):
            return self.getattr(FAVORITES_INO if name == FAVORITES else TRASH_INO)
        if name == ".":
            return self.getattr(parent)
        if name == "..":
            own = self.getattr(parent)
            return self.core.getattr(own.parent or ROOT_INODE)
        if parent == FAVORITES_INO:
            fav = self._favorite_named(name)
            if fav is not None:
                return self._favorite_inode(fav)
        elif parent == TRASH_INO:
            if name in self._virtual_folders():
                return self._entry_inode(self._root(name))
        else:
            entry = self._trash.get(parent)
            if entry is None:
                raise FsError(errno.ENOTDIR if parent in self._favorite_of else errno.ENOENT)
            child = entry.children.get(name)
            if child is not None:
                return self._entry_inode(child)
        raise FsError(errno.ENOENT)

    def readdir(self, ino: int, after: int, limit: int) -> list[Inode]:
        """Entries of special directory ``ino`` by increasing inode number, after ``after``."""
        if ino == FAVORITES_INO:
            entries = [self._favorite_inode(f) for f in self._favorites().values()]
        elif ino == TRASH_INO:
            entries = [self._entry_inode(self._root(vf)) for vf in self._virtual_folders()]
        else:
            entry = self._trash.get(ino)
            if entry is None:
                raise FsError(errno.ENOENT)
            if not entry.is_dir:
                raise FsError(errno.ENOTDIR)
            entries = [self._entry_inode(c) for c in entry.children.values()]
        entries.sort(key=lambda i: i.ino)
        out = [i for i in entries if i.ino > after]
        return out if limit < 0 else out[:limit]

    def root_entries(self, after: int, limit: int) -> list[Inode]:
        """The special directories, for a listing of the root (after its real entries:
        their numbers are higher)."""
        out = [self.getattr(i) for i in (FAVORITES_INO, TRASH_INO) if i > after]
        return out if limit < 0 else out[:limit]

    def _virtual_folders(self) -> list[str]:
        return [c.name for c in self.meta.children(ROOT_INODE)
                if c.is_dir and c.name and c.name not in SPECIAL_NAMES]

    # .favorites -------------------------------------------------------------------------

    def _favorites(self) -> dict[int, _Favorite]:
        """The favorites as links, by link inode: unique names, in the items' inode order
        (an older favorite keeps the plain name)."""
        stamp = self._stamp()
        if self._links is not None and self._links[0] == stamp:
            return self._links[1]
        used: set[str] = set()
        out: dict[int, _Favorite] = {}
        for item in self.meta.favorites():
            parts = self.meta.path_parts(item.ino)
            if not parts or parts[0] in SPECIAL_NAMES:
                continue
            name = parts[-1]
            n = 1
            while name in used:
                n += 1
                name = suffixed(parts[-1], str(n))
            used.add(name)
            ino = self._number("favorite", item.ino)
            self._favorite_of[ino] = item.ino
            out[ino] = _Favorite(ino, name, item, "../" + "/".join(parts))
        self._links = (stamp, out)
        return out

    def _favorite_named(self, name: str) -> _Favorite | None:
        return next((f for f in self._favorites().values() if f.name == name), None)

    def readlink(self, ino: int) -> str:
        fav = self._favorites().get(ino)
        if fav is not None:
            return fav.target
        if is_special(ino):
            raise FsError(errno.EINVAL, "not a symlink")
        raise FsError(errno.EINVAL, "only .favorites holds symlinks")

    def _target_inode(self, target: str) -> int:
        """The inode a symlink target names: absolute under the mountpoint, or relative to
        ``.favorites``. Pure string work: the mount itself must not be touched here."""
        if target.startswith("/"):
            if self.mountpoint is None:
                raise FsError(errno.EXDEV, "absolute targets need the mountpoint")
            rel = posixpath.relpath(posixpath.normpath(target), self.mountpoint)
            if rel == ".." or rel.startswith("../"):
                raise FsError(errno.EXDEV, f"{target} is not in this mount")
        else:
            rel = posixpath.normpath(posixpath.join(FAVORITES, target))
            if rel == ".." or rel.startswith("../"):
                raise FsError(errno.EXDEV, f"{target} leaves the mount")
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        if not parts:
            raise FsError(errno.EINVAL, "the root cannot be a favorite")
        if parts[0] in SPECIAL_NAMES:
            raise FsError(errno.EINVAL, "special entries cannot be favorites")
        inode = self.meta.resolve(parts)
        if inode is None:
            raise FsError(errno.ENOENT, f"{target}: no such item in the mount")
        return inode.ino

    async def symlink(self, parent: int, name: str, target: str) -> Inode:
        """``ln -s TARGET .favorites/[NAME]``: favorite TARGET. The entry that appears
        carries the item's own name (whatever NAME was)."""
        if parent != FAVORITES_INO:
            raise self.refusal(parent)
        ino = self._target_inode(target)
        if self.core.inode(ino).favorite:
            raise FsError(errno.EEXIST, f"{target} is a favorite already")
        await self.marks.set_favorite(ino, True)
        fav = self._favorites().get(self._number("favorite", ino))
        if fav is None:
            raise FsError(errno.ENOENT, f"{target} went away meanwhile")
        return self._favorite_inode(fav)

    async def unlink(self, parent: int, name: str) -> None:
        """Removing a link of ``.favorites`` unfavorites its item."""
        if parent != FAVORITES_INO:
            raise self.refusal(parent)
        fav = self._favorite_named(name)
        if fav is None:
            raise FsError(errno.ENOENT)
        await self.marks.set_favorite(fav.item.ino, False)

    # .trash -----------------------------------------------------------------------------

    def _root(self, vf: str) -> _Entry:
        root = self._roots.get(vf)
        if root is None:
            path = P.join([vf])
            root = self._roots[vf] = _Entry(self._number("trash", path, True), TRASH_INO, vf,
                                            True, vf, path)
            self._trash[root.ino] = root
        return root

    def _stamp(self) -> tuple[int, int]:
        return (self.meta.local_seq, self.syncer.remote_changes if self.syncer else 0)

    async def _load_trash(self, vf: str) -> None:
        cache = self._fetched.get(vf)
        if (cache is not None and cache.stamp == self._stamp()
                and time.monotonic() - cache.fetched < TRASH_TTL):
            return
        stamp = self._stamp()
        try:
            listing = await self.core.remote.trash(vf)
        except CloudError as exc:
            if cache is None:
                raise
            log.debug("trash of %s not refreshed (%s); listing the last one", vf, exc)
            return
        self._build(vf, listing)
        self._fetched[vf] = _TrashCache(time.monotonic(), stamp)

    def _forget_trash(self, vf: str) -> None:
        self._fetched.pop(vf, None)

    def _build(self, vf: str, listing: FolderListing) -> None:
        """Replace the tree of ``vf``'s trash with ``listing`` (original paths). Of two
        trashed items with one path, the first listed is shown (a restore brings back
        the one trashed last)."""
        root = self._root(vf)
        stack = list(root.children.values())
        while stack:
            old = stack.pop()
            self._trash.pop(old.ino, None)
            stack.extend(old.children.values())
        root.children = {}
        items: list[CloudFile | CloudFolder] = [*listing.folders, *listing.files]
        for item in items:
            try:
                parts = P.split_path(item.path)
            except CloudError:  # not a valid path
                continue
            if len(parts) < 2 or parts[0] != vf:
                continue
            is_dir = isinstance(item, CloudFolder)
            node = root
            for depth in range(2, len(parts) + 1):
                last = depth == len(parts)
                name = parts[depth - 1]
                child = node.children.get(name)
                want_dir = is_dir or not last
                if child is None:
                    path = P.join(parts[:depth])
                    child = _Entry(self._number("trash", path, want_dir), node.ino, name,
                                   want_dir, vf, path, mtime_ns=self._started_ns)
                    node.children[name] = child
                    self._trash[child.ino] = child
                elif child.is_dir != want_dir:
                    break  # a file and a folder trashed under one path: the first stays
                if last and not child.restorable:
                    child.restorable = True
                    child.size = 0 if is_dir else item.size
                    child.mtime_ns = parse_time_ns(item.version_created or item.creation_date)
                node = child

    async def rename(self, parent_old: int, name_old: str, parent_new: int, name_new: str,
                     flags: int) -> None:
        """A rename touching a special directory: moving an item out of ``.trash``
        restores it; anything else is refused."""
        if self.core.options.read_only:
            raise FsError(errno.EROFS, "mounted read-only")
        self.check_change(parent_new, name_new, creating=True)
        if self.reserved(parent_old, name_old) or not self._in_trash(parent_old):
            self.check_change(parent_old, name_old)
            raise self.refusal(parent_old)  # within .favorites, or out of it
        await self.load(parent_old)
        entry = self._trash.get(self.lookup(parent_old, name_old).ino)
        if entry is None or entry.parent == TRASH_INO:
            raise FsError(errno.EPERM, "a virtual folder's trash cannot be moved")
        if not entry.restorable:
            raise FsError(errno.EPERM, f"{entry.path} is not in the trash itself (only items "
                                       "inside it are); move those out")
        await self._restore(entry, parent_new, name_new, flags)

    async def _restore(self, entry: _Entry, parent_new: int, name_new: str, flags: int) -> None:
        core = self.core
        if flags & ~1:  # only RENAME_NOREPLACE: nothing is replaced anyway
            raise FsError(errno.EINVAL, "unsupported rename flags")
        if parent_new == ROOT_INODE:
            raise FsError(errno.EPERM, "only virtual folders live at the top level")
        parent = core.inode(parent_new)
        if not parent.is_dir:
            raise FsError(errno.ENOTDIR)
        if core.meta.lookup(parent_new, name_new) is not None:
            raise FsError(errno.EEXIST, "restoring never replaces a live item")
        if not parent.remote:
            raise FsError(errno.EAGAIN, "the target folder is not in the cloud yet")
        target = P.join([*P.split_path(core.cloud_path(parent_new)), name_new])
        try:
            await core.remote.restore(entry.path)
        except ConflictError:
            raise FsError(errno.EEXIST, f"cannot restore {entry.path}: a live item has that "
                                        "path (or a file stands where a folder was)") from None
        finally:
            self._forget_trash(entry.vf)
        log.info("restored %s from the trash", entry.path)
        if target != entry.path:
            await core.remote.move(entry.path, target)
        core.meta.note_local_change()
        if self.syncer is not None:
            # The restored item appears at once; its contents (a folder) with the delta.
            # Inside a handler: the kernel is told by the poller, never from here.
            await self.syncer.apply_items([await core.remote.item_metadata(target)])
            try:
                await self.syncer.sync_once(defer_notify=True)
            except CloudError as exc:
                log.debug("sync after a restore failed (%s); the poller retries", exc)
