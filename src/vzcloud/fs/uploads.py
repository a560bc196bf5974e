"""The persistent upload queue's worker: staged files -> the cloud, never dropped.

A job (``upload_jobs`` row, written before ``close()`` returns) says "inode N's staged
content must reach the cloud"; a small file's job also holds its content (``journal``,
see ``core._stage_for_upload``), which ``restore_journaled`` writes back into a staging
file that a power loss damaged. The worker takes due jobs oldest first, at most
``parallel`` large files (over ``SMALL_UPLOAD``) and ``SMALL_FACTOR`` times as many
uploads in all at a time: a small upload mostly waits for the cloud's disk flushes
(fsyncs of the blob, its folder and the database), which the cloud shares among
concurrent uploads, so more in flight store more per second (on a disk busy with other
writers, 4 at a time stored ~30 files/s after ``tar x``; 16 at a time outgrew the SDK's
16 kept-alive connections: 151 reconnects per 1,000 files and more mount CPU). While
the filesystem is ``busy`` serving programs (an ``fsync`` or a drain waiting lifts
these limits), at most ``BUSY_PARALLEL`` run, at most one of them a large file, and
when ``BUSY_BATCH`` or more jobs are queued (a program writing many files), a job waits
until it is ``BUSY_HOLD`` seconds old: uploads share the mount's thread and CPU with
the programs' requests (a small upload costs the mount roughly what the requests that
wrote the file did), and a request waits for a person.
A file saved alone still goes at once, and the hold lets a program that never pauses
get its files uploaded, one at a time. Measured on 2 cores (``tar x`` of 1,000 small
files, load 6-7): with one upload at a time from the start, ``tar`` returned after
14.6 s and all was in the cloud after 20.2 s; holding them while ``tar`` runs, 3.6 s and
15.1 s (earlier: two at a time was slower still). Once the programs pause, the full
limits apply. A job is due when queued, except that a flush of a file still open for
writing makes it due a little later (``core.WRITE_BACK_DELAY``).

For each job: snapshot the staging file under the inode's content lock (so writes may
go on while the upload runs, and the snapshot is never torn; a small file's snapshot
is held in memory: the journal when it is current, else the staging file's bytes),
upload the snapshot to
the inode's current path, then, if no write happened meanwhile (``write_gen``
unchanged), record the new checksum, turn the snapshot into cache blocks and drop the
staging file and the job. If writes did happen: when a handle still has unflushed
writes, the job goes (that handle's close queues it again); otherwise it stays and runs
again at once. A failure keeps the job and retries it with exponential backoff (capped);
a job is removed only when its content is in the cloud or its file was deleted locally.
An upload whose folder is missing in the cloud (deleted there) creates the folders
first; one whose folder was renamed locally meanwhile is retried at the new path.
An upload over a cloud file first checks that the file still has the version the local
changes started from (``_check_unchanged``): if another device changed it, the attempt
fails and a sync is requested, which keeps both versions (``fs.sync``, conflicts).
A job left by a killed mount whose content already reached the cloud (the upload
landed, its answer was never recorded: ``MetadataStore.recovered``) is recorded from
the cloud's file without sending it again.

Concurrency contract: runs as one task in the mount's nursery on the trio thread; the
per-inode work of one job never overlaps another job of the same inode (``_running``).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import shutil
import sqlite3
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import trio

from vzcloud.api import paths as P
from vzcloud.api.errors import CloudError, ConflictError, NotFoundError
from vzcloud.api.models import CloudFile
from vzcloud.fs.blocks import BlockCache
from vzcloud.fs.errno_map import FsError, failure_text, known_errno
from vzcloud.fs.metadata import ROOT_INODE, MetadataStore
from vzcloud.fs.remote import Remote
from vzcloud.fs.reserve import DiskReserve
from vzcloud.fs.staging import StagingArea

log = logging.getLogger("vzcloud.fs.uploads")

MAX_BACKOFF = 60.0
FIRST_BACKOFF = 0.5
FSYNC_MAX_FAILURES = 3
BUSY_RECHECK = 0.1  # seconds between looks at whether the filesystem is still busy
INLINE_HASH = 64 << 10  # bytes hashed on the trio thread (more: in a worker thread)
MEMORY_SNAPSHOT_MAX = 64 << 20  # bytes: largest snapshot taken in memory on a full disk
SMALL_UPLOAD = 1 << 20  # bytes: a file this small is snapshot in memory
BUSY_PARALLEL = 1  # uploads at once while programs use the filesystem (see the docstring)
BUSY_HOLD = 5.0  # seconds a job of a batch waits while programs use the filesystem
BUSY_BATCH = 8  # jobs queued at once that make a batch (held while busy, see the docstring)
SMALL_FACTOR = 2  # uploads at once when not busy: this many times ``parallel`` (docstring)


def backoff(attempts: int) -> float:
    """Seconds before retry number ``attempts + 1``."""
    return min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** min(attempts, 8))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


Snapshot = Path | bytes  # a private copy of staged content: a file, or a small file's bytes


def sha256_of(snapshot: Snapshot) -> str:
    if isinstance(snapshot, bytes):
        return hashlib.sha256(snapshot).hexdigest()
    return sha256_file(snapshot)


def restore_journaled(meta: MetadataStore, staging: StagingArea) -> int:
    """Mount recovery, before anything reads staging files: make the staging file of
    every job with journaled content hold that content, unless the file was written
    again after that close (a later write generation, kept as it is) and still exists.
    A staging file is not synced when its content is journaled, so a power loss may have
    emptied, shortened or removed it. Returns how many files were rewritten."""
    rewritten = 0
    for ino in meta.journaled_inodes():
        inode = meta.get(ino)
        journaled = meta.journaled(ino)
        if inode is None or inode.parent is None or journaled is None:
            continue
        content, gen = journaled
        if inode.write_gen != gen and staging.exists(ino):
            continue
        if staging.restore(ino, content):
            log.warning("restored the staged content of inode %d from its upload job", ino)
            rewritten += 1
        if inode.size != len(content):
            meta.update(ino, size=len(content))
    return rewritten


class Uploader:
    def __init__(
        self,
        meta: MetadataStore,
        staging: StagingArea,
        blocks: BlockCache,
        remote: Remote,
        snapshot_dir: Path,
        parallel: int = 4,
        is_open: Callable[[int], bool] = lambda ino: False,
        has_unflushed: Callable[[int], bool] = lambda ino: False,
        content_lock: Callable[[int], trio.Lock] | None = None,
        busy: Callable[[], bool] = lambda: False,
        reserve: DiskReserve | None = None,
    ) -> None:
        self.meta = meta
        self.reserve = reserve  # released when a full disk keeps uploads from recording
        self.staging = staging
        self.blocks = blocks
        self.remote = remote
        self.snapshot_dir = snapshot_dir
        snapshot_dir.mkdir(parents=True, exist_ok=True)
        self.parallel = parallel
        self.is_open = is_open
        self.has_unflushed = has_unflushed
        own_locks: dict[int, trio.Lock] = {}
        self.content_lock = content_lock or (lambda ino: own_locks.setdefault(ino, trio.Lock()))
        self.busy = busy
        # Called when a file changed in the cloud under queued local changes (the mount
        # asks the syncer for a sync, which keeps both versions).
        self.on_remote_change: Callable[[], object] | None = None
        self._urgent = 0  # fsyncs and drains waiting: no holding back
        self._wake = trio.Event()
        self._changed = trio.Event()  # set after every attempt; waiters re-check
        self._running: set[int] = set()
        self._not_before: dict[int, float] = {}  # retry times a full disk kept from the DB
        self._running_large: set[int] = set()
        self.uploaded = 0
        self.failures = 0

    async def _recover_snapshots(self) -> None:
        """Snapshot files (``<ino>.<gen>``) left by a killed mount were being sent: note
        their content as sent (``MetadataStore.upload_sending``; the upload may have
        landed unrecorded), then remove them. Before the first job."""
        for p in await trio.to_thread.run_sync(lambda: list(self.snapshot_dir.iterdir())):
            ino, _, gen = p.name.partition(".")
            if (ino.isdigit() and gen.isdigit() and int(ino) in self.meta.recovered
                    and self.meta.has_upload_job(int(ino))):
                checksum = await trio.to_thread.run_sync(sha256_file, p)
                self.meta.upload_sending(int(ino), checksum, int(gen))
            await trio.to_thread.run_sync(partial(p.unlink, missing_ok=True))

    def wake(self) -> None:
        self._wake.set()

    def pending(self) -> int:
        return self.meta.upload_count()

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Forever: start due jobs, then sleep until woken or the next retry is due."""
        await self._recover_snapshots()
        task_status.started()
        async with trio.open_nursery() as nursery:
            while True:
                self._wake = trio.Event()
                now = time.time()
                # While programs are using the filesystem, fewer uploads and one large
                # one at a time: they compete with requests for the CPU, and a request
                # waits for a person.
                hold = not self._urgent and self.busy()
                limit = (min(self.parallel, BUSY_PARALLEL) if hold
                         else self.parallel * SMALL_FACTOR)
                large_limit = 1 if hold else self.parallel
                room = limit - len(self._running)
                # Many files written at once (e.g. ``tar x``): hold them while busy.
                queued = self.meta.upload_count() if hold else 0
                batch = queued >= BUSY_BATCH
                held = False  # this scan stopped at a job the batch rule holds back
                if room > 0:
                    # Running and held-back jobs are due too: ask for enough to find
                    # ``room`` others.
                    for job in self.meta.upload_jobs(now, limit=room + self.parallel * 2
                                                     + len(self._running)):
                        ino = job["ino"]
                        if self._not_before.get(ino, 0.0) > now:
                            continue
                        if ino in self._running or len(self._running) >= limit:
                            continue
                        if batch and job["queued_at"] > now - BUSY_HOLD:
                            held = True
                            break  # oldest first: the rest are younger still
                        large = job["size"] > SMALL_UPLOAD
                        if large and len(self._running_large) >= large_limit:
                            continue
                        self._running.add(ino)
                        if large:
                            self._running_large.add(ino)
                        nursery.start_soon(self._attempt, ino, job["attempts"])
                next_due = self.meta.next_upload_due()
                sleep = 1.0 if next_due is None or next_due <= now else min(1.0, next_due - now)
                if hold and queued > len(self._running):
                    sleep = min(sleep, BUSY_RECHECK)  # the limits may lift soon
                await self._sleep(sleep, held)

    async def _sleep(self, seconds: float, held: bool) -> None:
        """Until woken or ``seconds`` passed. While a batch is ``held`` back (``run``),
        a wake by a newly queued or due job waits for the recheck at the end (at most
        ``BUSY_RECHECK`` seconds): the held jobs are older, so a scan could start none
        of them before, and ``tar x`` of 1,000 files would scan the queue twice per
        file (a close and a release each wake). A finished attempt or an fsync or drain
        waiting (``_urgent``) ends the sleep at once."""
        running = len(self._running)  # only ``run`` starts attempts: fewer = one ended
        deadline = trio.current_time() + seconds
        while True:
            with trio.move_on_at(deadline):
                await self._wake.wait()
            if (not held or self._urgent or len(self._running) != running
                    or trio.current_time() >= deadline):
                return
            self._wake = trio.Event()

    async def wait_uploaded(self, ino: int, max_failures: int = FSYNC_MAX_FAILURES) -> None:
        """Until ``ino`` has no job. Raises EIO after ``max_failures`` failed attempts
        during the wait (the data stays queued; fsync reports the failure)."""
        failures_at_start = self._failures_of(ino)
        self.meta.retry_now(ino)
        self._urgent += 1
        self.wake()
        try:
            while self.meta.has_upload_job(ino):
                if self._failures_of(ino) - failures_at_start >= max_failures:
                    raise FsError(errno.EIO, "upload keeps failing; the data stays queued")
                changed = self._changed
                await changed.wait()
        finally:
            self._urgent -= 1

    async def drain(self, progress: Callable[[int], None] | None = None,
                    every: float = 2.0) -> None:
        """Until the queue is empty (unmount waits for this unless forced), calling
        ``progress(jobs left)`` at the start and every ``every`` seconds."""
        self._urgent += 1
        self.wake()
        last_report = -every
        try:
            while True:
                left = self.pending()
                if not left:
                    return
                if progress is not None and time.monotonic() - last_report >= every:
                    progress(left)
                    last_report = time.monotonic()
                changed = self._changed
                with trio.move_on_after(min(1.0, every)):
                    await changed.wait()
        finally:
            self._urgent -= 1

    def retry_all_now(self) -> None:
        """Make every job due at once (the cloud answers again after an outage). On a
        full cache disk the queue cannot be updated: the jobs keep their retry times."""
        self._not_before.clear()
        try:
            self.meta.retry_all_now()
        except sqlite3.OperationalError as exc:
            log.warning("cannot make queued uploads due at once (%s); they retry at their "
                        "backoff time", exc)
        self.wake()

    def _failures_of(self, ino: int) -> int:
        return self.meta.upload_attempts(ino)

    def _signal(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _attempt(self, ino: int, attempts: int) -> None:
        try:
            await self._upload(ino)
        except (CloudError, OSError) as exc:
            self.failures += 1
            delay = backoff(attempts)
            log.warning("upload of inode %d failed (%s); retrying in %.1f s", ino,
                        failure_text(exc), delay)
            self._note_failure(ino, str(exc)[:500], delay)
        except Exception as exc:
            if known_errno(exc) is None:
                log.exception("upload of inode %d failed unexpectedly", ino)
                self._note_failure(ino, "internal error", MAX_BACKOFF)
            else:  # e.g. SQLITE_FULL recording it: the next attempt finds it landed
                self.failures += 1
                delay = backoff(attempts)
                log.warning("upload of inode %d not recorded (%s); retrying in %.1f s", ino,
                            exc, delay)
                self._note_failure(ino, str(exc)[:500], delay)
        finally:
            self._running.discard(ino)
            self._running_large.discard(ino)
            self._signal()
            self.wake()

    def _note_failure(self, ino: int, error: str, delay: float) -> None:
        """Record a failed attempt. On a full cache disk the job row cannot be updated
        (SQLITE_FULL): it stays as it was, and the retry time is kept in memory; raising
        here would end the uploader's nursery, and with it the mount."""
        try:
            self.meta.upload_failed(ino, error, delay)
        except sqlite3.OperationalError as exc:
            log.warning("cannot record the failed upload of inode %d (%s)", ino, exc)
            self._not_before[ino] = time.time() + delay

    async def _snapshot(self, ino: int) -> tuple[Snapshot, int] | None:
        """A private copy of the staged content and the write generation it has, or None
        if there is nothing to send (deleted locally, nothing staged). A small file's
        copy is its bytes: the journal if it is of the current generation (no disk
        access), else read from the staging file."""
        async with self.content_lock(ino):
            inode = self.meta.get(ino)
            if inode is None or inode.parent is None or not self.staging.exists(ino):
                return None
            gen = inode.write_gen
            if inode.size <= SMALL_UPLOAD:
                journaled = self.meta.journaled(ino)
                if journaled is not None and journaled[1] == gen:
                    return journaled[0], gen
                content = await trio.to_thread.run_sync(self.staging.read_all, ino)
                if len(content) <= SMALL_UPLOAD:
                    return content, gen
            snapshot = self.snapshot_dir / f"{ino}.{gen}"
            try:
                await trio.to_thread.run_sync(shutil.copyfile, self.staging.path(ino), snapshot)
            except OSError as exc:
                snapshot.unlink(missing_ok=True)  # a partial copy must not hold space
                if exc.errno != errno.ENOSPC or inode.size > MEMORY_SNAPSHOT_MAX:
                    raise
                # A full cache disk: uploading is what frees it, so copy into memory.
                return await trio.to_thread.run_sync(self.staging.read_all, ino), gen
            return snapshot, gen

    async def _check_unchanged(self, ino: int, snapshot: Snapshot, parts: list[str]) -> None:
        """Before an upload over a cloud file: the cloud must still hold the version the
        local changes started from (``inodes.checksum``), else uploading would hide
        another device's change made since the last sync. Then the attempt fails (EAGAIN,
        retried) and a sync is requested: it keeps both (``fs.sync``). One GET per upload
        of a file that was in the cloud; a new file is not checked (the syncer catches a
        name taken meanwhile)."""
        inode = self.meta.get(ino)
        base = inode.checksum if inode is not None else None
        if base is None:
            return
        try:
            current = await self.remote.file_metadata(P.join(parts))
        except NotFoundError:
            return  # deleted in the cloud meanwhile: the local version goes back
        if current.checksum == base:
            return
        if await trio.to_thread.run_sync(sha256_of, snapshot) == current.checksum:
            return  # an earlier attempt landed (its answer was lost)
        if self.on_remote_change is not None:
            self.on_remote_change()
        raise FsError(errno.EAGAIN, f"{P.join(parts)} changed in the cloud; syncing first")

    async def _landed_unrecorded(self, ino: int, gen: int, parts: list[str],
                                 ) -> CloudFile | None:
        """The cloud's file at ``parts`` if it already is this job's content, sent by the
        previous mount, which was killed before recording it (``MetadataStore.recovered``):
        then nothing is sent again (exactly one version per upload)."""
        if ino not in self.meta.recovered:
            return None  # the common case: checked before any query
        inode = self.meta.get(ino)
        if inode is None:
            return None
        try:
            current = await self.remote.file_metadata(P.join(parts))
        except NotFoundError:
            return None
        return current if self.meta.already_uploaded(inode, current.checksum, gen) else None

    async def _send(self, ino: int, gen: int, snapshot: Snapshot, parts: list[str],
                    ) -> CloudFile:
        parent_path, name = P.join(parts[:-1]), parts[-1]
        landed = await self._landed_unrecorded(ino, gen, parts)
        if landed is not None:
            log.info("%s was uploaded before the last mount stopped", P.join(parts))
            return landed
        await self._check_unchanged(ino, snapshot, parts)
        checksum: str | None = None  # a snapshot in memory: hashed once, here
        if isinstance(snapshot, bytes):
            # Recorded before sending: if the mount dies after this lands, the next mount
            # recognises it as its own content (``MetadataStore.already_uploaded``). A
            # snapshot file is not hashed here (a second pass over a large file): one
            # left by a killed mount is hashed at the next start (``run``).
            checksum = (sha256_of(snapshot) if len(snapshot) <= INLINE_HASH
                        else await trio.to_thread.run_sync(sha256_of, snapshot))
            self.meta.upload_sending(ino, checksum, gen)
        try:
            return await self.remote.upload(snapshot, parent_path, name, checksum)
        except NotFoundError:
            if self.meta.path_parts(ino) != parts or self.meta.folder_moves:
                # Moved locally meanwhile, or a folder rename is under way (its cloud
                # move done, its local record not yet): recreating the old folders would
                # leave a copy there. The retry goes to the new path.
                raise
            # The folder went away in the cloud while our file waited: recreate it.
            await self._create_folders(parts[:-1])
            return await self.remote.upload(snapshot, parent_path, name, checksum)

    async def _create_folders(self, parts: list[str]) -> None:
        for depth in range(1, len(parts) + 1):
            try:
                if depth == 1:
                    await self.remote.create_virtualfolder(parts[0])
                else:
                    await self.remote.create_folder(P.join(parts[:depth - 1]), parts[depth - 1],
                                                    exist_ok=True)
            except ConflictError:
                pass  # exists already
            inode = self.meta.resolve(parts[:depth])
            if inode is not None and inode.ino != ROOT_INODE:
                self.meta.update(inode.ino, remote=1)

    async def _upload(self, ino: int) -> None:
        taken = await self._snapshot(ino)
        if taken is None:
            self.meta.upload_done(ino)
            return
        snapshot, gen = taken
        try:
            inode = self.meta.get(ino)
            parts = self.meta.path_parts(ino)
            if inode is None or inode.parent is None or parts is None:
                self.meta.upload_done(ino)
                return
            parent = inode.parent
            self.meta.sending[ino] = parts  # see MetadataStore.upload_unsettled
            uploaded = await self._send(ino, gen, snapshot, parts)
            now_parts = self.meta.path_parts(ino)
            if now_parts != parts:
                # Unlinked or renamed (or a folder above renamed) while uploading.
                landed = await self._landed_at(parent, parts[-1], uploaded)
                now_parts = self.meta.path_parts(ino)  # re-read after the await
                if now_parts is None:
                    # Unlinked: the cloud copy must go too.
                    if landed is not None:
                        try:
                            await self.remote.delete(P.join(landed))
                        except NotFoundError:
                            pass
                    self.meta.note_local_change()
                    self.meta.upload_done(ino)
                    return
                if landed is None:
                    # Another file took its place there: the job stays and uploads the
                    # content again, at the new path.
                    return
                if landed != now_parts:
                    await self.remote.move(P.join(landed), P.join(now_parts))
            cached = await self._record(ino, gen, uploaded, snapshot)
            if self.reserve is not None and not self.reserve.held:
                # Released on a full disk: taken back once there is room again.
                await trio.to_thread.run_sync(self.reserve.ensure)
            self.uploaded += 1
            log.info("uploaded %s (%d bytes)", P.join(now_parts), uploaded.size)
            if uploaded.checksum and not cached:
                # After recording; a read meanwhile fetches from the cloud.
                await trio.to_thread.run_sync(self._cache_quietly, uploaded.checksum,
                                              snapshot)
        finally:
            self.meta.sending.pop(ino, None)
            if isinstance(snapshot, Path):
                await trio.to_thread.run_sync(lambda: snapshot.unlink(missing_ok=True))

    def _cache_quietly(self, checksum: str, snapshot: Snapshot) -> None:
        """``_cache_blocks``, logging a failure (only a cache: the content is in the
        cloud). Worker thread."""
        try:
            self._cache_blocks(checksum, snapshot)
        except OSError as exc:
            log.warning("could not cache the content %s: %s", checksum, exc)

    def _cache_blocks(self, checksum: str, snapshot: Snapshot) -> None:
        """Keep uploaded content as cache blocks (worker thread)."""
        if isinstance(snapshot, Path):
            self.blocks.put_file(checksum, snapshot)
            return
        size = self.blocks.block_size
        for index, start in enumerate(range(0, len(snapshot), size)):
            self.blocks.put(checksum, index, snapshot[start:start + size])

    async def _landed_at(self, parent: int, name: str, uploaded: CloudFile) -> list[str] | None:
        """Where the file just uploaded (into folder inode ``parent``, as ``name``) is in
        the cloud now: folder renames made meanwhile moved it along with its folder. None
        if it is gone (its folder was deleted) or another file took that path since."""
        folder = self.meta.path_parts(parent)
        if folder is None:
            return None
        at = [*folder, name]
        try:
            current = await self.remote.file_metadata(P.join(at))
        except NotFoundError:
            return None
        # content_token names the item whatever its path (a uri names the path).
        if (current.content_token, current.version) != (uploaded.content_token,
                                                        uploaded.version):
            return None
        return at

    async def settle(self, ino: int) -> None:
        """Until no upload of ``ino`` is in flight (the attempt landed or failed)."""
        while ino in self._running:
            changed = self._changed
            await changed.wait()

    def _write_record(self, ino: int, fields: dict[str, object], clean: bool) -> None:
        """The inode's new fields, and the job's end if ``clean``, in one commit. On a full
        disk (SQLITE_FULL) the room kept back (``DiskReserve``) is released and the commit
        tried once more: recording is what frees the staged file, so without it a full
        disk would stay full."""
        for last_try in (False, True):
            try:
                with self.meta.tx():  # one commit, not two
                    self.meta.update(ino, **fields)
                    if clean:
                        self.meta.upload_done(ino)
                return
            except sqlite3.OperationalError as exc:
                if (last_try or known_errno(exc) != errno.ENOSPC or self.reserve is None
                        or not self.reserve.release()):
                    raise

    async def _record(self, ino: int, gen: int, uploaded: CloudFile,
                      snapshot: Snapshot) -> bool:
        """The upload of generation ``gen`` succeeded: update the inode and the queue.
        When the staging file goes (clean and closed), a small file's snapshot becomes
        cache blocks in the same worker-thread call, before the staging file is removed
        (so a read finds the content locally). Returns whether it was cached so."""
        async with self.content_lock(ino):
            inode = self.meta.get(ino)
            if inode is None:
                return False
            fields: dict[str, object] = dict(
                version=uploaded.version, remote=1, uri=uploaded.uri,
                mime_type=uploaded.mime_type, content_token=uploaded.content_token,
                checksum=uploaded.checksum,
            )
            clean = inode.write_gen == gen
            if clean:
                # The content sent is the file's content: its size too (a staging file
                # may hold bytes a killed mount never counted in the inode).
                fields["dirty"] = 0
                fields["size"] = uploaded.size
            try:
                self._write_record(ino, fields, clean)
            except sqlite3.OperationalError:
                # Landed, not recorded (a full cache disk): as after a killed mount, the
                # syncer and the next attempt must see this content as ours, not as
                # another device's change (which would make a conflict copy).
                if uploaded.checksum:
                    self.meta.recovered[ino] = (uploaded.checksum, gen)
                raise
            self.meta.note_local_change()
            if clean:
                if not self.is_open(ino):
                    # A small file's bytes only: copying a large file would hold the lock.
                    cache = bool(uploaded.checksum) and isinstance(snapshot, bytes)

                    def cache_then_remove() -> None:
                        if cache:
                            self._cache_quietly(str(uploaded.checksum), snapshot)
                        self.staging.remove(ino)

                    await trio.to_thread.run_sync(cache_then_remove)
                    return cache
            elif self.has_unflushed(ino):
                # Still being written: the writer's close queues the final content.
                self.meta.upload_done(ino)
            return False
