"""The persistent upload queue's worker: staged files -> the cloud, never dropped.

A job (``upload_jobs`` row, written before ``close()`` returns) says "inode N's staged
content must reach the cloud". The worker takes due jobs oldest first, at most
``parallel`` at a time. For each: snapshot the staging file (so writes may go on while the
upload runs), upload the snapshot to the inode's current path, then, if no write happened
meanwhile (``write_gen`` unchanged), record the new checksum, turn the snapshot into cache
blocks and drop the staging file and the job. A failure keeps the job and retries it with
exponential backoff (capped); a job is removed only when its content is in the cloud or
its file was deleted locally.

Concurrency contract: runs as one task in the mount's nursery on the trio thread; the
per-inode work of one job never overlaps another job of the same inode (``_running``).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import trio

from vzcloud.api import paths as P
from vzcloud.api.errors import CloudError, NotFoundError
from vzcloud.fs.blocks import BlockCache
from vzcloud.fs.errno_map import FsError
from vzcloud.fs.metadata import MetadataStore
from vzcloud.fs.remote import Remote
from vzcloud.fs.staging import StagingArea

log = logging.getLogger("vzcloud.fs.uploads")

MAX_BACKOFF = 60.0


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
    ) -> None:
        self.meta = meta
        self.staging = staging
        self.blocks = blocks
        self.remote = remote
        self.snapshot_dir = snapshot_dir
        snapshot_dir.mkdir(parents=True, exist_ok=True)
        self.parallel = parallel
        self.is_open = is_open
        self._wake = trio.Event()
        self._changed = trio.Event()  # set after every attempt; fsync waiters re-check
        self._running: set[int] = set()
        self.uploaded = 0
        self.failures = 0

    def wake(self) -> None:
        self._wake.set()

    def pending(self) -> int:
        return len(self.meta.upload_jobs())

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Forever: start due jobs, then sleep until woken or the next retry is due."""
        for p in self.snapshot_dir.iterdir():  # leftovers of a killed mount
            p.unlink(missing_ok=True)
        task_status.started()
        async with trio.open_nursery() as nursery:
            while True:
                self._wake = trio.Event()
                for job in self.meta.upload_jobs(time.time()):
                    if len(self._running) >= self.parallel:
                        break
                    ino = job["ino"]
                    if ino not in self._running:
                        self._running.add(ino)
                        nursery.start_soon(self._attempt, ino, job["attempts"])
                with trio.move_on_after(1.0):
                    await self._wake.wait()

    async def wait_uploaded(self, ino: int, max_failures: int = 3) -> None:
        """Until ``ino`` has no job. Raises EIO after ``max_failures`` failed attempts
        during the wait (the data stays queued; fsync reports the failure)."""
        failures_at_start = self._failures_of(ino)
        self.wake()
        while self.meta.has_upload_job(ino):
            if self._failures_of(ino) - failures_at_start >= max_failures:
                raise FsError(5, "upload keeps failing; the data stays queued")
            changed = self._changed
            await changed.wait()

    async def drain(self) -> None:
        """Until the queue is empty (unmount waits for this unless forced)."""
        self.wake()
        while self.meta.upload_jobs():
            changed = self._changed
            with trio.move_on_after(1.0):
                await changed.wait()

    def _failures_of(self, ino: int) -> int:
        for job in self.meta.upload_jobs():
            if job["ino"] == ino:
                return int(job["attempts"])
        return 0

    def _signal(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _attempt(self, ino: int, attempts: int) -> None:
        try:
            await self._upload(ino)
        except (CloudError, OSError) as exc:
            self.failures += 1
            delay = min(MAX_BACKOFF, 0.5 * 2 ** min(attempts, 8))
            log.warning("upload of inode %d failed (%s); retrying in %.0f s", ino, exc, delay)
            self.meta.upload_failed(ino, str(exc)[:500], delay)
        except Exception:
            log.exception("upload of inode %d failed unexpectedly", ino)
            self.meta.upload_failed(ino, "internal error", MAX_BACKOFF)
        finally:
            self._running.discard(ino)
            self._signal()
            self.wake()

    async def _upload(self, ino: int) -> None:
        inode = self.meta.get(ino)
        parts = self.meta.path_parts(ino) if inode else None
        if inode is None or parts is None or not self.staging.exists(ino):
            # Deleted locally (or nothing staged): nothing to send.
            self.meta.upload_done(ino)
            return
        gen = inode.write_gen
        snapshot = self.snapshot_dir / f"{ino}.{gen}"
        await trio.to_thread.run_sync(shutil.copyfile, self.staging.path(ino), snapshot)
        try:
            parent_path, name = P.join(parts[:-1]), parts[-1]
            uploaded = await self.remote.upload(snapshot, parent_path, name)
            inode = self.meta.get(ino)
            now_parts = self.meta.path_parts(ino) if inode else None
            if inode is None or now_parts is None:
                # Unlinked while uploading: the cloud copy must go too.
                try:
                    await self.remote.delete(P.join(parts))
                except NotFoundError:
                    pass
                self.meta.upload_done(ino)
                return
            if now_parts != parts:
                # Renamed while uploading: follow the rename in the cloud.
                await self.remote.move(P.join(parts), P.join(now_parts))
            fields: dict[str, object] = dict(
                checksum=uploaded.checksum, version=uploaded.version, remote=1,
                uri=uploaded.uri, mime_type=uploaded.mime_type,
                content_token=uploaded.content_token,
            )
            clean = inode.write_gen == gen
            if clean:
                fields["dirty"] = 0
            if uploaded.checksum:
                checksum = uploaded.checksum
                await trio.to_thread.run_sync(self.blocks.put_file, checksum, snapshot)
            self.meta.update(ino, **fields)
            if clean:
                self.meta.upload_done(ino)
                if not self.is_open(ino):
                    self.staging.remove(ino)
            self.uploaded += 1
            log.info("uploaded %s (%d bytes)", P.join(now_parts), uploaded.size)
        finally:
            snapshot.unlink(missing_ok=True)
