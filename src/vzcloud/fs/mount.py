"""Running a mount: build the pieces, mount with pyfuse3, run background tasks, unmount.

``run_mount`` owns one trio nursery holding every background task (uploader, signal
watcher, read-ahead, the control channel of ``fs.control``) and, inside it, the FUSE
session with the fullview poller around ``pyfuse3.main()``. The uploader lives in the outer nursery, so an upload in flight when
the filesystem is unmounted is not interrupted: after the FUSE loop ends, queued uploads
are drained (with progress in the log) before ``run_mount`` returns.

Stopping: ``fusermount3 -u`` (what ``vzcloud umount`` runs) ends the FUSE loop; so do
SIGTERM and SIGINT (the filesystem is then unmounted lazily). Either way the queue is
drained next. A second SIGTERM/SIGINT during the drain, or SIGUSR1 at any time (``vzcloud
umount --force``), stops without draining: the queue stays in the cache directory and the
next mount finishes it, as it does after a crash. SIGHUP (like ``vzcloud refresh``)
makes the poller sync at once.

Startup (``prepare``): the cache directory belongs to one account (a different one with
nothing queued resets it; with uploads queued it is refused). The first mount loads the
account with one fullview and fails if the cloud is unreachable; later mounts apply the
delta since the saved etag, or start from the cached tree when the cloud is unreachable.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import signal
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyfuse3
import trio

from vzcloud.fs import control
from vzcloud.fs.blocks import BlockCache
from vzcloud.fs.core import FilesystemCore, MountOptions, Notifier
from vzcloud.fs.errno_map import failure_text
from vzcloud.fs.metadata import MetadataStore
from vzcloud.fs.operations import KernelNotifier, Operations
from vzcloud.fs.remote import Remote
from vzcloud.fs.reserve import DiskReserve
from vzcloud.fs.special import CloudMarks, SpecialDirs
from vzcloud.fs.staging import StagingArea
from vzcloud.fs.sync import Syncer
from vzcloud.fs.uploads import Uploader, restore_journaled, sha256_file
from vzcloud.fs.xattrs import Xattrs

log = logging.getLogger("vzcloud.fs.mount")

RACED_RETRY = 1.0  # seconds before asking again for a fullview that raced a local change
# A due poll waits until local changes (``MetadataStore.local_seq``) have been still this
# long: an answer fetched while they keep coming is dropped (see ``fs.sync``), so asking
# during a burst of uploads only refetches an ever larger delta to throw it away.
QUIET_BEFORE_POLL = 0.5
QUIET_CHECK = 0.25  # seconds between looks while a poll waits for quiet
MAX_POLL_DEFER = 10.0  # seconds at most local changes put a poll off (then it is made)
STRANDED_AFTER = 5.0  # seconds a dirty, closed file without a job waits to be queued
MALLOC_ARENAS = 2  # glibc malloc arenas of the mount process (see ``limit_malloc_arenas``)
_M_ARENA_MAX = -8  # mallopt() parameter number, from glibc's <malloc.h>


class MountError(Exception):
    """The mount cannot start (the message says why and what to do)."""


@dataclass
class MountConfig:
    mountpoint: Path
    cache_dir: Path
    cache_size: int = 10 << 30
    poll_interval: float = 15.0
    allow_other: bool = False
    options: MountOptions = field(default_factory=MountOptions)
    upload_parallel: int = 4
    fsname: str = "vzcloud"
    # The control channel's socket (``fs.control``); None: no channel.
    control_socket: Path | None = None
    # Told (0, -1) when the first mount starts loading the whole account, then (files
    # applied, files in the account) while it is applied.
    load_progress: Callable[[int, int], None] | None = None


@dataclass
class MountParts:
    meta: MetadataStore
    blocks: BlockCache
    staging: StagingArea
    core: FilesystemCore
    uploader: Uploader
    syncer: Syncer

    def close(self) -> None:
        self.staging.close_all()
        self.blocks.close()
        self.meta.close()


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas, as ``MALLOC_ARENA_MAX`` would (unless that is set: the
    user's choice wins). By default each thread that allocates may get an arena of its
    own (up to 8 per core), and memory freed in one is not reused by another: the mount's
    worker threads (reads, hashing, uploads) left a 1 GiB read at 237 MiB of RSS, 142 MiB
    with two arenas. Call it before the process starts threads (it holds for arenas made
    afterwards). False where it does not apply (not glibc)."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(_M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False


def build(config: MountConfig, remote: Remote, notifier: Notifier | None = None) -> MountParts:
    """Open the cache directory and wire the filesystem's pieces together."""
    cache = config.cache_dir
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    meta = MetadataStore(cache / "metadata.db")
    blocks = BlockCache(cache / "blocks", config.cache_size)
    staging = StagingArea(cache / "staging")
    core = FilesystemCore(meta, blocks, staging, remote, config.options)
    reserve = DiskReserve(cache / "reserve")  # see fs/reserve.py
    reserve.ensure()
    uploader = Uploader(
        meta, staging, blocks, remote, cache / "snapshots",
        parallel=config.upload_parallel, is_open=core.is_open,
        has_unflushed=core.has_unflushed, content_lock=core.content_lock, busy=core.busy,
        reserve=reserve,
    )
    core.uploader = uploader
    _recover(meta, staging)
    syncer = Syncer(meta, remote, notifier or Notifier(), on_detached=core.maybe_drop)
    marks = CloudMarks(core)
    core.special = SpecialDirs(core, marks, config.mountpoint)
    core.special.syncer = syncer
    uploader.on_remote_change = syncer.request_sync
    core.xattrs = Xattrs(core, marks, core.special)
    return MountParts(meta, blocks, staging, core, uploader, syncer)


def _recover(meta: MetadataStore, staging: StagingArea) -> None:
    """Tidy what the previous mount left: inodes unlinked while open go; staged content
    that was written but never queued (the mount died with the file open) is queued, so
    nothing written is lost; staging files of clean inodes go. Queued content is hashed
    (``MetadataStore.recovered``), so an upload that landed unrecorded is recognised.
    First, journaled content is written back into staging files a power loss damaged."""
    restore_journaled(meta, staging)
    for ino in meta.detached():
        meta.delete(ino)
        staging.remove(ino)
    for ino in unqueued(meta, staging):
        log.info("queueing %s: written before the last mount stopped",
                 "/".join(meta.path_parts(ino) or []))
        # Killed inside a write() handler, after the staging file took the bytes and
        # before the inode recorded its new size: the staged bytes are what is uploaded,
        # so the size must say so too.
        meta.update(ino, size=staging.size(ino))
        meta.enqueue_upload(ino)
    for ino in staging.inodes():
        inode = meta.get(ino)
        if inode is None or inode.parent is None:
            staging.remove(ino)
        elif not inode.dirty and not meta.has_upload_job(ino):
            staging.remove(ino)
        if inode is not None and inode.parent is not None and meta.has_upload_job(ino):
            # The previous mount may have sent this content and died before recording it.
            meta.recovered[ino] = (sha256_file(staging.path(ino)), inode.write_gen)


def unqueued(meta: MetadataStore, staging: StagingArea,
             writing: Callable[[int], bool] = lambda ino: False) -> list[int]:
    """Files whose staged content holds writes not in the cloud (``dirty``) but that have
    no upload job, except those ``writing`` says a handle still writes (their close
    queues them): written before a mount died with them open, or closed when their job
    could not be recorded (close() got ENOSPC: the cache disk was full)."""
    found = []
    for ino in staging.inodes():
        inode = meta.get(ino)
        if (inode is not None and inode.parent is not None and inode.dirty
                and not meta.has_upload_job(ino) and not writing(ino)):
            found.append(ino)
    return found


def queue_stranded(parts: MountParts, first_seen: dict[int, float], now: float,
                   ) -> dict[int, float]:
    """The poller's check for ``unqueued`` files, so that one whose close() got ENOSPC
    does not wait for its next close or the next mount. ``first_seen``: when earlier
    checks first found each (the result is the same for the next check). A file is
    queued once found for ``STRANDED_AFTER`` seconds, so never one caught between its
    creation or first write and its handle's bookkeeping (a thread hop). While the disk
    is still full the queue refuses it, and the next check tries again."""
    seen = {ino: first_seen.get(ino, now)
            for ino in unqueued(parts.meta, parts.staging, parts.core.has_unflushed)}
    due = sorted(ino for ino, since in seen.items() if now - since >= STRANDED_AFTER)
    queued = 0
    try:
        for ino in due:
            parts.meta.enqueue_upload(ino)
            del seen[ino]
            queued += 1
            log.info("queueing %s: closed while its upload could not be queued",
                     "/".join(parts.meta.path_parts(ino) or []))
    except sqlite3.OperationalError as exc:
        log.warning("cannot queue %d closed file(s) yet (%s); trying again later",
                    len(due) - queued, exc)
    if queued:
        parts.uploader.wake()
    return seen


async def prepare(parts: MountParts,
                  load_progress: Callable[[int, int], None] | None = None) -> None:
    """Check the cache belongs to this account, then load the tree (see the module
    docstring), telling ``load_progress`` (see MountConfig) when it is the whole account.
    Raises MountError or the cloud's error."""
    meta = parts.meta
    try:
        account = await parts.core.remote.account()
    except Exception as exc:
        if meta.get_state("etag") is None:
            raise
        log.warning("cloud unreachable at mount time (%s); using the cached tree", exc)
        return
    cached_for = meta.get_state("account")
    if cached_for is not None and cached_for != account.id:
        pending = parts.uploader.pending()
        if pending:
            raise MountError(
                f"the cache directory holds {pending} queued upload(s) of another account; "
                "mount that account's profile to finish them, or pick another --cache-dir")
        log.warning("cache directory was for another account: starting afresh")
        meta.reset()
    meta.set_state("account", account.id)
    whole = meta.get_state("etag") is None
    if whole:
        log.info("loading the list of all files (first mount of this cache)")
        if load_progress is not None:
            load_progress(0, -1)
            parts.syncer.progress = load_progress
    try:
        await parts.syncer.sync_once()
    except Exception as exc:
        if meta.get_state("etag") is None:
            raise
        log.warning("fullview failed at mount time (%s); using the cached tree", exc)
    finally:
        parts.syncer.progress = None
    if whole:
        log.info("loaded %d files and folders", meta.count() - 1)


def fuse_options(config: MountConfig) -> set[str]:
    opts = set(pyfuse3.default_options)  # default_permissions
    opts |= {f"fsname={config.fsname}", "subtype=vzcloud", "noatime"}
    if config.allow_other:
        opts.add("allow_other")
    if config.options.read_only:
        opts.add("ro")
    return opts


READ_AHEAD_KB = 8192  # the mount's kernel readahead (the kernel's default: 128 KiB)


def tune_readahead(mountpoint: str, kb: int = READ_AHEAD_KB) -> bool:
    """Raise the kernel's readahead of the FUSE mount at ``mountpoint`` (an absolute path
    without symlinks, resolved before mounting) to ``kb``: its bdi's ``read_ahead_kb``.
    Buffered reads then reach the filesystem as requests of up to ``max_pages`` (1 MiB
    with libfuse 3.14), several in flight, instead of 128 KiB ones. Call it once the
    kernel's FUSE_INIT is answered (``_tune_when_answering``): the answer sets the
    readahead again. Only root may; when not permitted (or the mount is not found) this
    logs why and returns False, and the mount works as before.

    The mount is found in /proc/self/mountinfo (its device number names its bdi) rather
    than with a stat, which never waits for the FUSE loop.
    """
    target = mountpoint
    device = None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 4 and _unescape_mountinfo(fields[4]) == target:
                    device = fields[2]  # the last one wins: mounts stack
    except OSError as exc:
        log.info("readahead left as is: cannot read the mount table: %s", exc)
        return False
    if device is None:
        log.info("readahead left as is: %s is not in the mount table", target)
        return False
    setting = Path("/sys/class/bdi") / device / "read_ahead_kb"
    try:
        setting.write_text(str(kb))
    except OSError as exc:
        log.info("readahead left as is (%s: %s)", setting, exc.strerror or exc)
        return False
    log.debug("readahead of %s set to %d KiB", target, kb)
    return True


async def _tune_when_answering(mountpoint: str) -> None:
    """``tune_readahead`` once the kernel's FUSE_INIT is answered (it sets the bdi's
    readahead to what the filesystem accepts, undoing an earlier change): a stat of the
    mountpoint, in a worker thread, returns only after that."""
    try:
        await trio.to_thread.run_sync(os.stat, mountpoint, abandon_on_cancel=True)
    except OSError as exc:
        log.info("readahead left as is: %s", exc)
        return
    tune_readahead(mountpoint)


def _unescape_mountinfo(field: str) -> str:
    """A mountinfo path field with its octal escapes (\\040 for a space...) decoded."""
    if "\\" not in field:
        return field
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


async def poll_changes(parts: MountParts, interval: float) -> None:
    """Apply fullview deltas every ``interval`` seconds, or at once when a sync is
    requested (``Syncer.request_sync``: SIGHUP, ``vzcloud refresh``). Errors are logged,
    not fatal; when the cloud answers again after failures, queued uploads are retried
    at once instead of at their backoff time. Each round also queues files closed while
    their upload could not be queued (``queue_stranded``).

    A due poll (not a requested sync) is put off while its answer would be dropped
    anyway: while an upload is unsettled, and until no local change has been seen for
    ``QUIET_BEFORE_POLL`` (but for ``MAX_POLL_DEFER`` at most, so remote changes still
    arrive while local ones never pause). Only the timing moves: what is applied is
    still guarded by ``Syncer.sync_once``'s race check."""
    failing = False
    delay = interval
    stranded: dict[int, float] = {}
    seen_seq = parts.meta.local_seq
    seen_at = trio.current_time()  # when local_seq was first seen at its value
    deferred_since: float | None = None  # when a due poll was first put off
    while True:
        requested = False
        with trio.move_on_after(delay):
            await parts.syncer.sync_requested.wait()
            requested = True
        parts.syncer.sync_requested = trio.Event()
        failed_at = parts.meta.enqueue_failed_at  # rare: a job could not be written
        if failed_at is not None:
            stranded = queue_stranded(parts, stranded, trio.current_time())
            if not stranded and time.monotonic() - failed_at > 2 * STRANDED_AFTER:
                parts.meta.enqueue_failed_at = None  # its file was queued (or closed again)
        now = trio.current_time()
        if parts.meta.local_seq != seen_seq:
            seen_seq, seen_at = parts.meta.local_seq, now
        if not requested and not failing:
            deferred_since = now if deferred_since is None else deferred_since
            if parts.meta.upload_unsettled() or (
                    now - seen_at < QUIET_BEFORE_POLL
                    and now - deferred_since < MAX_POLL_DEFER):
                delay = QUIET_CHECK
                continue
        deferred_since = None
        try:
            changes = await parts.syncer.sync_once()
        except Exception as exc:
            if not failing:
                log.warning("sync failed: %s", failure_text(exc))
            failing = True
            delay = interval
            continue
        if failing:
            log.info("the cloud answers again")
            parts.uploader.retry_all_now()
            failing = False
        delay = RACED_RETRY if changes is None else interval


@dataclass
class _Stop:
    requested: bool = False
    force: bool = False
    mounted: bool = False
    phase: str = "starting"  # then "mounted", then "draining" (what status shows)
    startup_scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    drain_scope: trio.CancelScope = field(default_factory=trio.CancelScope)


async def _watch_signals(parts: MountParts, stop: _Stop) -> None:
    sigs = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)
    with trio.open_signal_receiver(*sigs) as signals:
        async for signum in signals:
            if signum == signal.SIGHUP:
                parts.syncer.request_sync()
                continue
            if signum == signal.SIGUSR1 or stop.requested:
                log.info("stopping without waiting for queued uploads")
                stop.force = True
                stop.drain_scope.cancel()
            stop.requested = True
            stop.startup_scope.cancel()
            if stop.mounted:
                log.info("signal %d: unmounting", signum)
                stop.mounted = False
                pyfuse3.terminate()


async def run_mount(
    config: MountConfig, remote: Remote, ready: Callable[[], None] | None = None,
) -> int:
    """Mount until unmounted or signalled, then drain the upload queue (see the module
    docstring). ``ready()`` is called once the filesystem is mounted. Returns how many
    uploads are left queued (0 after a full drain)."""
    limit_malloc_arenas()  # before the first worker thread
    parts = build(config, remote, KernelNotifier())
    stop = _Stop()
    recent = control.RecentErrors().install()
    try:
        try:
            return await _run(parts, config, stop, ready, recent)
        except BaseExceptionGroup as group:
            raise _first_error(group) from None
    finally:
        recent.remove()
        parts.close()


async def _run(parts: MountParts, config: MountConfig, stop: _Stop,
               ready: Callable[[], None] | None, recent: control.RecentErrors) -> int:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_signals, parts, stop)
        if config.control_socket is not None:
            status = control.MountStatus(parts, config, lambda: stop.phase, recent)
            await nursery.start(control.serve, status, config.control_socket)
        with stop.startup_scope:
            await prepare(parts, config.load_progress)
        if stop.requested:  # signalled while starting: never mounted
            nursery.cancel_scope.cancel()
            return parts.uploader.pending()
        await nursery.start(parts.uploader.run)
        parts.core.nursery = nursery
        # Resolved before mounting: resolving it after would stat the mount itself.
        mountpoint = await trio.to_thread.run_sync(os.path.realpath, config.mountpoint)
        pyfuse3.init(Operations(parts.core), str(config.mountpoint), fuse_options(config))
        stop.mounted = True
        stop.phase = "mounted"
        try:
            async with trio.open_nursery() as fuse_tasks:
                fuse_tasks.start_soon(poll_changes, parts, config.poll_interval)
                fuse_tasks.start_soon(_tune_when_answering, mountpoint)
                log.info("mounted at %s", config.mountpoint)
                if ready is not None:
                    ready()
                if not stop.requested:
                    await pyfuse3.main()
                fuse_tasks.cancel_scope.cancel()
        finally:
            stop.mounted = False
            # Unmounts if still mounted (a signal ended main()); harmless after
            # fusermount3 -u already did.
            pyfuse3.close(unmount=True)
        log.info("unmounted %s", config.mountpoint)
        stop.phase = "draining"
        if not stop.force:
            with stop.drain_scope:
                await _drain(parts)
        nursery.cancel_scope.cancel()
    left = parts.uploader.pending()
    if left:
        log.warning("%d upload(s) left queued in %s; the next mount finishes them",
                    left, config.cache_dir)
    return left


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error that ended the mount's nursery (not the cancellations it caused)."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_error(exc)
        if not isinstance(exc, trio.Cancelled):
            return exc
    return group


async def _drain(parts: MountParts) -> None:
    if not parts.uploader.pending():
        return

    def progress(left: int) -> None:
        log.info("waiting for %d queued upload(s) to finish", left)

    # Someone waits for the queue now (umount, systemctl stop): jobs sitting out the
    # backoff of earlier failures try again at once.
    parts.uploader.retry_all_now()
    await parts.uploader.drain(progress)
    log.info("all uploads finished")


def default_cache_dir(profile: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vzcloud" / profile
