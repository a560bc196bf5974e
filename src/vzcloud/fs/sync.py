"""Keeping the metadata cache equal to the cloud: fullview snapshots and etag deltas.

``Syncer.sync_once()`` asks fullview for what changed since the saved etag (everything
when there is none, or after a 205), applies it to the metadata store in one
transaction, saves the new etag, then tells the kernel what changed (in a worker
thread: an invalidation can wait for a request in flight; never from a FUSE handler,
which passes ``defer_notify`` and leaves it to the poller). Syncs run one at a time.
A 205 (etag too old) fetches the whole account and applies it the same way: local
changes still queued survive it, as they survive a delta.

Conflicts lose nothing. A file changed in the cloud while local changes to it are still
queued (the cloud's checksum is not the one the local changes started from): the cloud's
version takes the name (a new inode), and the local one (same inode: open handles, the
staging file and the queued upload go with it) is renamed ``NAME (conflict YYYY-MM-DD
HHMMSS).EXT`` (UTC) and uploaded under that name; a warning is logged. A file deleted
in the cloud while local changes to it are queued is uploaded again (its folders are
recreated). While the file's upload is in flight the cloud's new version may be that
upload's own echo: such an answer is dropped (asked again a second later). Nor is it
a conflict when the cloud's new version is exactly the content queued by a mount that
was killed after sending it (``MetadataStore.recovered``): that becomes the base.

An answer is applied only if no local change mirroring a cloud change happened while it
was fetched (``MetadataStore.local_seq``): it may predate that change and would undo it
(a renamed file reappearing, an uploaded file getting its old checksum back), nor while
an upload in flight was unlinked or renamed locally (``MetadataStore.upload_unsettled``:
the cloud shows that file where it no longer is). Such an answer is dropped, etag and
all, and the next poll asks again. The poller (``fs.mount.poll_changes``) does not ask
while local changes keep coming (during a burst of uploads every answer would race).

Apply order, as the protocol requires: deleted paths first, then folders, then files.

Memory: the answer streams from the SDK (``fullview(etag, sink=...)``) into an on-disk
stage (``metadata.FullviewStage``, a TEMP table) and is applied from there, a batch at a
time; a first load into an empty cache is inserted in bulk (``MetadataStore.bulk_load``).
So the mount's memory follows a batch, not the account (a 100,000-file first load peaked
at ~300 MiB holding the whole document and its models; ~60 MiB staged).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import trio

from vzcloud.api import paths as P
from vzcloud.api.errors import CloudError, OutOfSyncError
from vzcloud.api.models import CloudFile, CloudFolder, FolderListing
from vzcloud.fs import metadata
from vzcloud.fs.core import Notifier
from vzcloud.fs.metadata import (
    ROOT_INODE,
    STAGED_FILE,
    STAGED_FOLDER,
    FullviewStage,
    Inode,
    MetadataStore,
    RemoteItem,
)
from vzcloud.fs.remote import Remote

log = logging.getLogger("vzcloud.fs.sync")

PROGRESS_EVERY = 1000  # files applied between two calls of Syncer.progress
CONFLICT_TIME = "%Y-%m-%d %H%M%S"  # UTC, in the names of conflict copies


def parse_time_ns(text: str | None) -> int:
    """A wire time in nanoseconds since the epoch; now when missing or unreadable."""
    return metadata.parse_time_ns(text) or time.time_ns()


def suffixed(name: str, suffix: str) -> str:
    """``photo.jpg`` + ``2`` -> ``photo (2).jpg``; ``.bashrc`` + ``2`` -> ``.bashrc (2)``;
    the stem is shortened if the result would be too long a name."""
    dot = name.rfind(".")
    stem, ext = (name[:dot], name[dot:]) if dot > 0 else (name, "")
    tail = f" ({suffix}){ext}"
    room = max(1, P.MAX_NAME_BYTES - len(tail.encode("utf-8")))
    stem = stem.encode("utf-8")[:room].decode("utf-8", "ignore")
    return stem + tail


class _Raced(Exception):
    """The answer cannot be applied now (see ``Syncer._apply_file``); ask again soon."""


@dataclass
class Changes:
    """What one sync changed, for the kernel: removed entries (parent, name, and the
    inode that is gone, or 0 when the name lives on with another inode), changed inodes,
    and inodes left without an entry (the core drops them once nothing refers to them)."""

    removed: list[tuple[int, str, int]] = field(default_factory=list)
    changed: set[int] = field(default_factory=set)
    detached: list[int] = field(default_factory=list)

    def merge(self, other: Changes) -> None:
        self.removed += other.removed
        self.changed |= other.changed
        self.detached += other.detached


class Syncer:
    def __init__(
        self, meta: MetadataStore, remote: Remote, notifier: Notifier | None = None,
        on_detached: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self.meta = meta
        self.remote = remote
        self.notifier = notifier or Notifier()
        self.on_detached = on_detached  # the core drops the inode if nothing refers to it
        self.last_sync: float | None = None
        self.discarded = 0  # answers not applied because local changes raced them
        # A sync asked for at once (SIGHUP, ``vzcloud refresh``): the poller waits on it.
        self.sync_requested = trio.Event()
        self.started = 0  # syncs begun so far
        self.applied = 0  # the number of the last sync whose answer was applied
        self.failed: tuple[int, str] = (0, "")  # the number and error of the last failed one
        self._applied_event = trio.Event()  # set (and replaced) when either moves
        # Told (files applied, files in the answer) while a large answer is applied.
        self.progress: Callable[[int, int], None] | None = None
        self.remote_changes = 0  # answers applied that changed something (caches key on it)
        self.conflicts = 0  # conflict copies made
        self._lock = trio.Lock()  # one sync at a time
        self._deferred = Changes()  # for the kernel, from syncs made inside handlers

    def request_sync(self) -> int:
        """Ask the poller for a sync at once. Returns the number the next sync will have:
        once ``applied`` reaches it, a sync begun after this request has been applied."""
        self.sync_requested.set()
        return self.started + 1

    async def wait_applied(self, number: int) -> str | None:
        """Until sync ``number`` (from ``request_sync``) or a later one has been applied
        (None), or has failed (its error, such as the cloud being unreachable)."""
        while self.applied < number:
            if self.failed[0] >= number:
                return self.failed[1]
            await self._applied_event.wait()
        return None

    async def sync_once(self, defer_notify: bool = False) -> Changes | None:
        """Fetch and apply what changed. None: the answer raced a local change (see
        ``MetadataStore.local_seq``) and was not applied; the caller tries again later.
        ``defer_notify``: the caller is a FUSE handler, where telling the kernel could
        deadlock; the poller does it on its next pass (requested now)."""
        async with self._lock:
            self.started += 1
            number = self.started
            try:
                changes = await self._fetch_and_apply()
            except Exception as exc:
                self.failed = (number, str(exc) or type(exc).__name__)
                self._applied_event.set()
                self._applied_event = trio.Event()
                raise
        if changes is not None and self.on_detached is not None:
            for ino in changes.detached:
                await self.on_detached(ino)
        if defer_notify:
            if changes is not None:
                self._deferred.merge(changes)
            self.request_sync()
            return changes
        await self._tell_kernel(changes or Changes())
        if changes is None:
            return None
        self.applied = number  # after the kernel was told: what refresh waits for
        self._applied_event.set()
        self._applied_event = trio.Event()
        return changes

    async def _fetch_and_apply(self) -> Changes | None:
        stage = self.meta.stage()
        try:
            return await self._fetch_and_apply_staged(stage)
        finally:
            stage.close()

    async def _fetch_and_apply_staged(self, stage: FullviewStage) -> Changes | None:
        # The answer streams into ``stage`` (on disk): a whole account never sits in
        # memory, as a document or as models.
        etag = self.meta.get_state("etag")
        seq = self.meta.local_seq
        try:
            result = await self.remote.fullview(etag, sink=stage)
        except OutOfSyncError:
            log.warning("fullview etag too old: resyncing everything (local changes still "
                        "queued are kept)")
            etag = None
            seq = self.meta.local_seq
            stage.restart()
            result = await self.remote.fullview(None, sink=stage)
        full = etag is None
        # A whole snapshot lists only folders without files: the favorite folders come
        # from the favorites listing (fetched before the race check, which covers it).
        favorites = await self._favorites() if full and result.changed else None
        if self.meta.local_seq != seq or self.meta.upload_unsettled():
            self.discarded += 1
            log.debug("fullview raced a local change; not applied")
            return None
        changes = Changes()
        if result.changed:
            try:
                with self.meta.tx():
                    if full and self.meta.is_empty():
                        # A first load: nothing local to merge with, so insert in bulk.
                        self.meta.bulk_load(stage, self.progress)
                    else:
                        changes = self.apply(stage.deleted(), stage.items(STAGED_FOLDER),
                                             stage.items(STAGED_FILE),
                                             stage.count(STAGED_FILE), full=full)
                    if favorites is not None:
                        self._apply_folder_favorites(favorites)
                    self.meta.set_state("etag", result.etag)
            except _Raced as exc:
                self.discarded += 1
                log.debug("fullview not applied: %s", exc)
                return None
            self.remote_changes += 1
        self.last_sync = time.time()
        return changes

    async def apply_items(self, items: list[CloudFile | CloudFolder]) -> None:
        """Apply items just got from the cloud (a restored one) at once, from a FUSE
        handler: the kernel is told by the poller."""
        files = [_remote_item(i) for i in items if isinstance(i, CloudFile)]
        folders = [_remote_item(i) for i in items if isinstance(i, CloudFolder)]
        try:
            with self.meta.tx():
                changes = self.apply([], folders, files, len(files), full=False)
        except _Raced:
            return  # the next sync brings them
        self.meta.note_local_change()
        if self.on_detached is not None:
            for ino in changes.detached:
                await self.on_detached(ino)
        self._deferred.merge(changes)
        self.request_sync()

    async def _tell_kernel(self, changes: Changes) -> None:
        changes.merge(self._deferred)
        self._deferred = Changes()
        if changes.removed or changes.changed:
            await trio.to_thread.run_sync(self._notify, changes)

    def _notify(self, changes: Changes) -> None:
        """In a worker thread: kernel invalidations may wait for requests in flight."""
        for parent, name, ino in changes.removed:
            self.notifier.entry_removed(parent, name, ino)
        for ino in changes.changed:
            self.notifier.inode_changed(ino)

    async def _favorites(self) -> FolderListing | None:
        try:
            return await self.remote.favorites()
        except CloudError as exc:
            log.warning("favorites not listed (%s); favorite folders show from the next "
                        "change to them", exc)
            return None

    def _apply_folder_favorites(self, listing: FolderListing) -> None:
        marked: set[int] = set()
        for folder in listing.folders:
            try:
                inode = self.meta.resolve(P.split_path(folder.path))
            except CloudError:  # not a valid path
                continue
            if inode is not None and inode.is_dir:
                self._set_folder_attrs(inode, folder)
                marked.add(inode.ino)
        for inode in self.meta.favorites():
            if inode.is_dir and inode.ino not in marked:
                self.meta.update(inode.ino, favorite=0)

    def apply(self, deleted: list[str], folders: Iterable[RemoteItem],
              files: Iterable[RemoteItem], file_count: int, full: bool) -> Changes:
        """Apply a fullview (a whole snapshot when ``full``) inside the caller's
        transaction: ``deleted`` paths (only those where nothing new lives again: a
        delta lists a path as deleted even when it was re-created or moved over since,
        see ``FullviewStage.deleted``), then the listed folders, then the files."""
        changes = Changes()
        seen: set[int] = {ROOT_INODE}
        for path in deleted:
            self._delete_path(path, changes)
        for folder in folders:
            seen.update(self._ensure_dirs(P.split_path(folder.path), changes))
            inode = self.meta.resolve(P.split_path(folder.path))
            if inode is not None:
                self._set_folder_attrs(inode, folder)
        done = 0
        for f in files:
            if self.progress is not None and done % PROGRESS_EVERY == 0:
                self.progress(done, file_count)
            seen.update(self._apply_file(f, changes))
            done += 1
        if self.progress is not None:
            self.progress(done, done)
        if full:
            self._sweep(seen, changes)
        return changes

    def _delete_path(self, path: str, changes: Changes) -> None:
        try:
            parts = P.split_path(path)
        except ValueError:
            return
        inode = self.meta.resolve(parts)
        if inode is None or inode.ino == ROOT_INODE or inode.parent is None:
            return
        self._remove(inode, changes)

    def _remove(self, inode: Inode, changes: Changes) -> None:
        """``inode`` is gone from the cloud. Clean entries go; local changes stay (they
        will be uploaded as new files, their folders recreated: remote=0)."""
        if not self._has_local_changes(inode):
            changes.removed.append((inode.parent or ROOT_INODE, inode.name or "", inode.ino))
            self._detach_tree(inode, changes)
            return
        self.meta.update(inode.ino, remote=0)
        if not inode.is_dir:
            log.warning("%s was deleted in the cloud while local changes to it were queued; "
                        "the local version is uploaded again",
                        P.join(self.meta.path_parts(inode.ino) or []))
        if inode.is_dir:
            for child in self.meta.children(inode.ino):
                self._remove(child, changes)

    def _has_local_changes(self, inode: Inode) -> bool:
        if inode.is_dir:
            return any(self._has_local_changes(c) for c in self.meta.children(inode.ino))
        return inode.dirty or self.meta.has_upload_job(inode.ino)

    def _detach_tree(self, inode: Inode, changes: Changes) -> None:
        # Children of a removed directory become unreachable with it; each is detached
        # so the core can drop the ones the kernel does not reference.
        for child in self.meta.children(inode.ino):
            self._detach_tree(child, changes)
        self.meta.move(inode.ino, None, None)
        changes.detached.append(inode.ino)

    def _ensure_dirs(self, parts: list[str], changes: Changes) -> list[int]:
        """Make sure each directory of ``parts`` exists locally; returns their inodes."""
        inos: list[int] = []
        parent = ROOT_INODE
        for name in parts:
            inode = self.meta.lookup(parent, name)
            if inode is None:
                inode = self.meta.create(parent, name, is_dir=True, remote=True)
            elif not inode.is_dir:
                if self._has_local_changes(inode):
                    raise ValueError(f"local file where the cloud has a folder: {name}")
                changes.removed.append((parent, name, inode.ino))
                self._detach_tree(inode, changes)
                inode = self.meta.create(parent, name, is_dir=True, remote=True)
            elif not inode.remote:
                self.meta.update(inode.ino, remote=1)  # the cloud has it (again)
            inos.append(inode.ino)
            parent = inode.ino
        return inos

    def _set_folder_attrs(self, inode: Inode, folder: CloudFolder | RemoteItem) -> None:
        self.meta.update(inode.ino, remote=1, favorite=int(bool(folder.favorite)),
                         tags=folder.tags, uri=folder.uri, version=folder.version)

    def _apply_file(self, f: RemoteItem, changes: Changes) -> list[int]:
        parts = P.split_path(f.path)
        try:
            dirs = self._ensure_dirs(parts[:-1], changes)
        except ValueError as exc:
            log.warning("skipping %s: %s", f.path, exc)
            return []
        parent = dirs[-1] if dirs else ROOT_INODE
        name = parts[-1]
        inode = self.meta.lookup(parent, name)
        attrs = dict(
            size=f.size, checksum=f.checksum, version=f.version, remote=1,
            mtime_ns=f.mtime_ns or time.time_ns(), favorite=int(bool(f.favorite)),
            tags=f.tags, uri=f.uri, mime_type=f.mime_type, content_token=f.content_token,
        )
        if inode is not None and inode.is_dir:
            if self._has_local_changes(inode):
                log.warning("cloud file %s collides with a local folder; keeping the folder", f.path)
                return [*dirs, inode.ino]
            changes.removed.append((parent, name, inode.ino))
            self._detach_tree(inode, changes)
            inode = None
        if inode is None:
            inode = self.meta.create(parent, name, is_dir=False, **{
                k: v for k, v in attrs.items() if k not in ("mtime_ns",)
            }, mtime_ns=int(attrs["mtime_ns"] or 0))  # type: ignore[arg-type]
            return [*dirs, inode.ino]
        if self._has_local_changes(inode):
            if f.checksum == inode.checksum:
                # The version the local changes started from: they will be uploaded over it.
                self.meta.update(inode.ino, remote=1, favorite=attrs["favorite"],
                                 tags=f.tags, uri=f.uri)
                return [*dirs, inode.ino]
            if self.meta.already_uploaded(inode, f.checksum):
                # Our queued content itself, sent by the previous mount which died before
                # recording it: the new base; the uploader finds it there and sends nothing.
                self.meta.update(inode.ino, remote=1, checksum=f.checksum, version=f.version,
                                 uri=f.uri, content_token=f.content_token,
                                 mime_type=f.mime_type)
                return [*dirs, inode.ino]
            if inode.ino in self.meta.sending:
                # Maybe the echo of the upload in flight, maybe another device's change:
                # known once the upload has answered.
                raise _Raced(f"{f.path} changed in the cloud while its upload is in flight")
            fresh = self._keep_both(inode, parent, name, attrs, changes)
            return [*dirs, fresh.ino]
        if inode.checksum != f.checksum or inode.size != f.size:
            changes.changed.add(inode.ino)
        elif inode.remote:
            # Same content (often the echo of our own upload): keep the local mtime,
            # which utimens may have set and the kernel's page cache is tied to.
            attrs.pop("mtime_ns")
        self.meta.update(inode.ino, **attrs)
        return [*dirs, inode.ino]

    def _keep_both(self, local: Inode, parent: int, name: str,
                   attrs: dict[str, str | int | None], changes: Changes) -> Inode:
        """A conflict (see the module docstring): ``local`` moves to a conflict name as a
        new file to upload; a new inode takes ``name`` with the cloud's version."""
        stamp = time.strftime(CONFLICT_TIME, time.gmtime())
        copy = suffixed(name, f"conflict {stamp}")
        n = 1
        while self.meta.lookup(parent, copy) is not None:
            n += 1
            copy = suffixed(name, f"conflict {stamp} {n}")
        self.meta.move(local.ino, parent, copy)
        self.meta.update(local.ino, remote=0, checksum=None, version=None, uri=None,
                         favorite=0, tags=None, content_token=None)
        changes.removed.append((parent, name, 0))  # the name now has another inode
        fresh = self.meta.create(parent, name, is_dir=False, **{
            k: v for k, v in attrs.items() if k not in ("mtime_ns",)
        }, mtime_ns=int(attrs["mtime_ns"] or 0))  # type: ignore[arg-type]
        self.conflicts += 1
        where = P.join(self.meta.path_parts(parent) or [])
        log.warning("conflict: %s/%s changed in the cloud while local changes to it were "
                    "queued; the cloud's version keeps the name, the local one is uploaded "
                    "as %s", where.rstrip("/"), name, copy)
        return fresh

    def _sweep(self, seen: set[int], changes: Changes) -> None:
        """After a full snapshot: drop clean local entries the cloud no longer has."""
        stack = [ROOT_INODE]
        while stack:
            ino = stack.pop()
            for child in list(self.meta.children(ino)):
                if child.ino in seen:
                    if child.is_dir:
                        stack.append(child.ino)
                    continue
                if self._has_local_changes(child):
                    if child.is_dir:
                        stack.append(child.ino)
                    continue
                changes.removed.append((ino, child.name or "", child.ino))
                self._detach_tree(child, changes)


def _remote_item(item: CloudFile | CloudFolder) -> RemoteItem:
    """A file or folder got from the cloud as the syncer applies it."""
    if isinstance(item, CloudFolder):
        return RemoteItem(item.path, version=item.version, favorite=bool(item.favorite),
                          tags=item.tags, uri=item.uri)
    return RemoteItem(item.path, item.size, item.checksum, item.version,
                      metadata.parse_time_ns(item.version_created), bool(item.favorite),
                      item.tags, item.uri, item.mime_type, item.content_token)
