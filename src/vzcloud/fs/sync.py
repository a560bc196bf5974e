"""Keeping the metadata cache equal to the cloud: fullview snapshots and etag deltas.

``Syncer.sync_once()`` asks fullview for what changed since the saved etag (everything
when there is none, or after a 205), applies it to the metadata store in one
transaction, saves the new etag, then tells the kernel what changed (in a worker
thread: an invalidation can wait for a request in flight). Local changes still queued
for upload win over the cloud's view of the same file (they will be uploaded); the full
conflict rules (keeping both versions) belong to the sync issue.

An answer is applied only if no local change mirroring a cloud change happened while it
was fetched (``MetadataStore.local_seq``): it may predate that change and would undo it
(a renamed file reappearing, an uploaded file getting its old checksum back), nor while
an upload in flight was unlinked or renamed locally (``MetadataStore.upload_unsettled``:
the cloud shows that file where it no longer is). Such an answer is dropped, etag and
all, and the next poll asks again.

Apply order, as the protocol requires: deleted paths first, then folders, then files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import trio

from vzcloud.api import paths as P
from vzcloud.api.errors import OutOfSyncError
from vzcloud.api.models import CloudFile, CloudFolder, FullviewResult
from vzcloud.fs.core import Notifier
from vzcloud.fs.metadata import ROOT_INODE, Inode, MetadataStore
from vzcloud.fs.remote import Remote

log = logging.getLogger("vzcloud.fs.sync")


def parse_time_ns(text: str | None) -> int:
    if not text:
        return time.time_ns()
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return time.time_ns()
    return int(dt.timestamp() * 1_000_000_000)


@dataclass
class Changes:
    """What one sync changed, for the kernel: removed entries, changed inodes, and
    inodes left without an entry (the core drops them once nothing refers to them)."""

    removed: list[tuple[int, str]] = field(default_factory=list)
    changed: set[int] = field(default_factory=set)
    detached: list[int] = field(default_factory=list)


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

    async def sync_once(self) -> Changes | None:
        """Fetch and apply what changed. None: the answer raced a local change (see
        ``MetadataStore.local_seq``) and was not applied; the caller tries again later."""
        etag = self.meta.get_state("etag")
        seq = self.meta.local_seq
        try:
            result = await self.remote.fullview(etag)
        except OutOfSyncError:
            log.warning("fullview etag too old: resyncing everything")
            etag = None
            seq = self.meta.local_seq
            result = await self.remote.fullview(None)
        if self.meta.local_seq != seq or self.meta.upload_unsettled():
            self.discarded += 1
            log.debug("fullview raced a local change; not applied")
            return None
        changes = Changes()
        if result.changed:
            with self.meta.tx():
                changes = self.apply(result, full=etag is None)
                self.meta.set_state("etag", result.etag)
        self.last_sync = time.time()
        if self.on_detached is not None:
            for ino in changes.detached:
                await self.on_detached(ino)
        if changes.removed or changes.changed:
            await trio.to_thread.run_sync(self._notify, changes)
        return changes

    def _notify(self, changes: Changes) -> None:
        """In a worker thread: kernel invalidations may wait for requests in flight."""
        for parent, name in changes.removed:
            self.notifier.entry_removed(parent, name)
        for ino in changes.changed:
            self.notifier.inode_changed(ino)

    def apply(self, result: FullviewResult, full: bool) -> Changes:
        """Apply a fullview (a whole snapshot when ``full``) inside the caller's transaction."""
        changes = Changes()
        seen: set[int] = {ROOT_INODE}
        # A delta lists a path as deleted even when something new lives there again
        # (deleted, then re-created or moved over): those are updated, not removed.
        live = {f.path for f in result.files} | {d.path for d in result.empty_folders}
        for path in result.deleted:
            if path not in live:
                self._delete_path(path, changes)
        for folder in result.empty_folders:
            seen.update(self._ensure_dirs(P.split_path(folder.path), changes))
            inode = self.meta.resolve(P.split_path(folder.path))
            if inode is not None:
                self._set_folder_attrs(inode, folder)
        for f in result.files:
            seen.update(self._apply_file(f, changes))
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
            changes.removed.append((inode.parent or ROOT_INODE, inode.name or ""))
            self._detach_tree(inode, changes)
            return
        self.meta.update(inode.ino, remote=0)
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
                changes.removed.append((parent, name))
                self._detach_tree(inode, changes)
                inode = self.meta.create(parent, name, is_dir=True, remote=True)
            elif not inode.remote:
                self.meta.update(inode.ino, remote=1)  # the cloud has it (again)
            inos.append(inode.ino)
            parent = inode.ino
        return inos

    def _set_folder_attrs(self, inode: Inode, folder: CloudFolder) -> None:
        self.meta.update(inode.ino, remote=1, favorite=int(bool(folder.favorite)),
                         tags=folder.tags, uri=folder.uri)

    def _apply_file(self, f: CloudFile, changes: Changes) -> list[int]:
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
            mtime_ns=parse_time_ns(f.version_created), favorite=int(bool(f.favorite)),
            tags=f.tags, uri=f.uri, mime_type=f.mime_type, content_token=f.content_token,
        )
        if inode is not None and inode.is_dir:
            if self._has_local_changes(inode):
                log.warning("cloud file %s collides with a local folder; keeping the folder", f.path)
                return [*dirs, inode.ino]
            changes.removed.append((parent, name))
            self._detach_tree(inode, changes)
            inode = None
        if inode is None:
            inode = self.meta.create(parent, name, is_dir=False, **{
                k: v for k, v in attrs.items() if k not in ("mtime_ns",)
            }, mtime_ns=int(attrs["mtime_ns"] or 0))  # type: ignore[arg-type]
            return [*dirs, inode.ino]
        if self._has_local_changes(inode):
            if f.checksum != inode.checksum:
                # Local changes are queued: they win and will be uploaded after this.
                log.info("%s changed in the cloud while local changes are queued; "
                         "the local version will be uploaded", f.path)
            self.meta.update(inode.ino, remote=1)
            return [*dirs, inode.ino]
        if inode.checksum != f.checksum or inode.size != f.size:
            changes.changed.add(inode.ino)
        elif inode.remote:
            # Same content (often the echo of our own upload): keep the local mtime,
            # which utimens may have set and the kernel's page cache is tied to.
            attrs.pop("mtime_ns")
        self.meta.update(inode.ino, **attrs)
        return [*dirs, inode.ino]

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
                changes.removed.append((ino, child.name or ""))
                self._detach_tree(child, changes)
