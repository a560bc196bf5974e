"""Running a mount: build the pieces, mount with pyfuse3, run background tasks, unmount.

``run_mount`` owns one trio nursery holding every background task (uploader, sync
poller, read-ahead) around ``pyfuse3.main()``. SIGTERM/SIGINT end the FUSE loop; queued
uploads are then drained (unless ``force``) before the process exits, and an unclean stop
leaves the queue in the cache directory for the next mount to finish.
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

import pyfuse3
import trio

from vzcloud.fs.blocks import BlockCache
from vzcloud.fs.core import FilesystemCore, MountOptions
from vzcloud.fs.metadata import MetadataStore
from vzcloud.fs.operations import KernelNotifier, Operations
from vzcloud.fs.remote import Remote
from vzcloud.fs.staging import StagingArea
from vzcloud.fs.sync import Syncer
from vzcloud.fs.uploads import Uploader

log = logging.getLogger("vzcloud.fs.mount")


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


@dataclass
class MountParts:
    meta: MetadataStore
    blocks: BlockCache
    staging: StagingArea
    core: FilesystemCore
    uploader: Uploader
    syncer: Syncer


def build(config: MountConfig, remote: Remote) -> MountParts:
    """Open the cache directory and wire the filesystem's pieces together."""
    cache = config.cache_dir
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    meta = MetadataStore(cache / "metadata.db")
    blocks = BlockCache(cache / "blocks", config.cache_size)
    staging = StagingArea(cache / "staging")
    core = FilesystemCore(meta, blocks, staging, remote, config.options)
    uploader = Uploader(
        meta, staging, blocks, remote, cache / "snapshots",
        parallel=config.upload_parallel, is_open=lambda ino: bool(core.open_count.get(ino)),
    )
    core.uploader = uploader
    for ino in meta.detached():  # unlinked-while-open inodes of the previous mount
        meta.delete(ino)
        staging.remove(ino)
    syncer = Syncer(meta, remote, KernelNotifier(), on_detached=core._maybe_drop)
    return MountParts(meta, blocks, staging, core, uploader, syncer)


def fuse_options(config: MountConfig) -> set[str]:
    opts = set(pyfuse3.default_options)  # default_permissions
    opts |= {f"fsname={config.fsname}", "subtype=vzcloud", "noatime"}
    if config.allow_other:
        opts.add("allow_other")
    if config.options.read_only:
        opts.add("ro")
    return opts


async def poll_changes(parts: MountParts, interval: float, wake: trio.Event | None = None) -> None:
    """Apply fullview deltas every ``interval`` seconds (errors are logged, not fatal)."""
    while True:
        with trio.move_on_after(interval):
            await trio.sleep_forever()
        try:
            await parts.syncer.sync_once()
        except Exception as exc:
            log.warning("sync failed: %s", exc)


async def run_mount(config: MountConfig, remote: Remote, force: bool = False) -> None:
    parts = build(config, remote)
    try:
        # First mount: one fullview; later mounts: the delta since the saved etag.
        try:
            await parts.syncer.sync_once()
        except Exception as exc:
            if parts.meta.get_state("etag") is None:
                raise
            log.warning("cloud unreachable at mount time (%s); using the cached tree", exc)
        ops = Operations(parts.core)
        pyfuse3.init(ops, str(config.mountpoint), fuse_options(config))
        try:
            async with trio.open_nursery() as nursery:
                parts.core.nursery = nursery
                await nursery.start(parts.uploader.run)
                nursery.start_soon(poll_changes, parts, config.poll_interval)
                nursery.start_soon(_stop_on_signal, nursery)
                log.info("mounted at %s", config.mountpoint)
                await pyfuse3.main()
                nursery.cancel_scope.cancel()
        finally:
            # Unmounts if still mounted (a signal ended main()); harmless after
            # fusermount3 -u already did.
            pyfuse3.close(unmount=True)
        if not force:
            await _drain(parts)
    finally:
        parts.staging.close_all()
        parts.blocks.close()
        parts.meta.close()


async def _drain(parts: MountParts) -> None:
    pending = parts.uploader.pending()
    if not pending:
        return
    log.info("waiting for %d queued upload(s) to finish", pending)
    async with trio.open_nursery() as nursery:
        await nursery.start(parts.uploader.run)
        await parts.uploader.drain()
        nursery.cancel_scope.cancel()
    log.info("all uploads finished")


async def _stop_on_signal(nursery: trio.Nursery) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for signum in signals:
            if signum == signal.SIGHUP:
                continue  # the sync issue makes SIGHUP trigger a refresh
            log.info("signal %d: unmounting", signum)
            pyfuse3.terminate()
            return


def default_cache_dir(profile: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vzcloud" / profile
