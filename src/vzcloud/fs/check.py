"""``vzcloud check``: an unmounted cache directory compared with the cloud.

``check_cache(cache_dir, remote, repair)`` opens the cache directory's pieces (the
caller holds its lock, so no mount runs meanwhile), fetches one whole fullview and
reports every difference as one line:

- metadata: every clean file the cache says is in the cloud (``remote=1``, not dirty, no
  job) must be there at its path with the same size and checksum; every live cloud file
  must have an entry at its path (a local entry with queued changes counts);
- blocks: a cached block's length must match its content's size at its index (where
  the size is known), and a content whose blocks are all cached must hash to its
  checksum (blocks of older versions are normal: the cache evicts them in time);
- upload queue: every job's inode must exist, have an entry, and have a staging file;
  every staging file must belong to an inode with queued changes.

``repair`` forgets the saved etag and re-applies the whole fullview (as a mount's sync
would: local changes still queued are kept), deletes the orphan jobs, staging files and
bad blocks, then checks again: ``CheckResult.remaining`` is what is
still different afterwards (empty when repaired).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from vzcloud.api import paths as P
from vzcloud.api.models import FullviewResult
from vzcloud.fs.blocks import BlockCache
from vzcloud.fs.metadata import ROOT_INODE, MetadataStore
from vzcloud.fs.remote import Remote
from vzcloud.fs.staging import StagingArea
from vzcloud.fs.sync import Syncer


@dataclass
class CheckResult:
    problems: list[str] = field(default_factory=list)  # as found before any repair
    repaired: bool = False
    remaining: list[str] = field(default_factory=list)  # after the repair


@dataclass
class _Orphans:
    jobs: list[int] = field(default_factory=list)
    staging: list[int] = field(default_factory=list)
    blocks: list[str] = field(default_factory=list)


def _check_metadata(meta: MetadataStore, view: FullviewResult) -> list[str]:
    problems: list[str] = []
    cloud = {f.path: f for f in view.files}
    queued = {int(row["ino"]) for row in meta.upload_jobs()}
    local: set[str] = set()
    for row in meta.db.execute("SELECT * FROM inodes WHERE is_dir = 0 AND parent IS NOT NULL"):
        parts = meta.path_parts(int(row["ino"]))
        if parts is None:
            continue
        path = P.join(parts)
        local.add(path)
        if not row["remote"] or row["dirty"] or row["ino"] in queued:
            continue  # local changes still to upload: the cloud may differ
        f = cloud.get(path)
        if f is None:
            problems.append(f"metadata: {path} is cached as in the cloud, but the cloud "
                            "has no such file")
        elif (f.checksum, f.size) != (row["checksum"], row["size"]):
            problems.append(f"metadata: {path} is cached with checksum {row['checksum']} and "
                            f"size {row['size']}, the cloud has {f.checksum} and {f.size}")
    problems += [f"metadata: {path} is in the cloud but not in the cache"
                 for path in sorted(set(cloud) - local)]
    return problems


def _check_blocks(meta: MetadataStore, blocks: BlockCache, view: FullviewResult,
                  orphans: _Orphans) -> list[str]:
    """Blocks are named ``checksum:index``. Blocks of content no file has any more (an
    older version) are normal: the cache evicts them in time. So a block is checked
    against its content's size where that is known, and a content whose blocks are all
    cached is hashed: it must match its checksum."""
    sizes = {f.checksum: f.size for f in view.files if f.checksum}
    for checksum, size in meta.db.execute(
            "SELECT checksum, size FROM inodes WHERE checksum IS NOT NULL"):
        sizes.setdefault(checksum, size)
    problems: list[str] = []
    by_content: dict[str, dict[int, bytes]] = {}
    for key in list(blocks.cache.iterkeys()):
        checksum, _, index_text = str(key).rpartition(":")
        data = blocks.cache.get(key)
        if len(checksum) != 64 or not index_text.isdigit() or not isinstance(data, bytes):
            problems.append(f"blocks: {key} is not a block of any content")
            orphans.blocks.append(str(key))
            continue
        by_content.setdefault(checksum, {})[int(index_text)] = data
    for checksum, found in sorted(by_content.items()):
        size = sizes.get(checksum)
        if size is not None:
            wrong = [i for i, data in found.items() if len(data) != max(
                0, min(blocks.block_size, size - i * blocks.block_size))]
            if wrong:
                problems.append(f"blocks: content {checksum} ({size} bytes) has blocks of "
                                f"the wrong length at {sorted(wrong)}")
                orphans.blocks += [blocks.key(checksum, i) for i in found]
                continue
            complete = len(found) == blocks.blocks_of(size)
        else:  # an older version: complete if its last block is a short one
            last = max(found)
            complete = (len(found) == last + 1 and len(found[last]) < blocks.block_size)
        if complete:
            h = hashlib.sha256()
            for i in range(len(found)):
                h.update(found[i])
            if h.hexdigest() != checksum:
                problems.append(f"blocks: the cached content {checksum} does not match "
                                "its checksum")
                orphans.blocks += [blocks.key(checksum, i) for i in found]
    return problems


def _check_queue(meta: MetadataStore, staging: StagingArea, orphans: _Orphans) -> list[str]:
    problems: list[str] = []
    queued: set[int] = set()
    for row in meta.upload_jobs():
        ino = int(row["ino"])
        queued.add(ino)
        inode = meta.get(ino)
        if inode is None or inode.parent is None:
            problems.append(f"queue: job for inode {ino}, which has no entry")
            orphans.jobs.append(ino)
        elif not staging.exists(ino) and meta.journaled(ino) is None:  # journaled: restored
            problems.append(f"queue: job for {P.join(meta.path_parts(ino) or [])} has no "
                            "staging file (its content is lost)")
            orphans.jobs.append(ino)
    for ino in sorted(staging.inodes()):
        inode = meta.get(ino)
        if ino not in queued and (inode is None or inode.parent is None or not inode.dirty):
            problems.append(f"queue: staging file {ino} belongs to no queued change")
            orphans.staging.append(ino)
    return problems


def _find(meta: MetadataStore, blocks: BlockCache, staging: StagingArea,
          view: FullviewResult) -> tuple[list[str], _Orphans]:
    orphans = _Orphans()
    problems = (_check_metadata(meta, view) + _check_blocks(meta, blocks, view, orphans)
                + _check_queue(meta, staging, orphans))
    return problems, orphans


async def check_cache(cache_dir: Path, remote: Remote, repair: bool = False) -> CheckResult:
    """Compare the cache directory with the cloud (see the module docstring). The caller
    must hold the cache directory's lock (no mount may run on it)."""
    meta = MetadataStore(cache_dir / "metadata.db")
    blocks = BlockCache(cache_dir / "blocks", size_limit=1 << 62)
    staging = StagingArea(cache_dir / "staging")
    try:
        view = await remote.fullview(None)
        problems, orphans = _find(meta, blocks, staging, view)
        result = CheckResult(problems)
        if not repair or not problems:
            return result
        for ino in orphans.jobs:
            meta.upload_done(ino)
        for ino in orphans.staging:
            staging.remove(ino)
        for key in orphans.blocks:
            blocks.cache.delete(key)
        meta.set_state("etag", None)  # the next sync applies a whole fullview
        await Syncer(meta, remote).sync_once()
        # Entries the whole fullview dropped may leave inodes without an entry.
        for ino in meta.detached():
            if ino != ROOT_INODE:
                meta.delete(ino)
        result.repaired = True
        result.remaining = _find(meta, blocks, staging, await remote.fullview(None))[0]
        return result
    finally:
        staging.close_all()
        blocks.close()
        meta.close()
