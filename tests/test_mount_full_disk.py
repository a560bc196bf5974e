"""A full cache disk (issue 7, item 4): ENOSPC for the writer, nothing acknowledged lost.

The mount's cache directory (metadata DB, staging files, block cache, snapshots) is a
size-limited tmpfs of ``DISK`` bytes mounted for the module and unmounted after it.

- With uploads held back by the cloud (``upload_intent`` answers 503), files are
  written until the disk is full: the writer gets ENOSPC (from write() or close()), never
  EIO, a crash or a hang; the mount keeps serving listings and reads; once the cloud
  works again every file whose close() succeeded reaches it with its checksum, which
  frees the disk, and writes work again.
- With the disk filled by something else, reading a file that is not cached yet still
  answers with the right bytes (the block cache cannot store it: that is skipped).

Every filesystem call runs with a bounded wait (``within``), so a hang fails the test.

What made the first test pass (each one alone leaves it failing): the uploader records a
failed attempt, or an upload it cannot record, without letting SQLITE_FULL end the mount;
a snapshot that does not fit on the disk is taken in memory (bounded) and a partial copy
removed; caching the blocks of an uploaded file is best effort (``BlockCache.put_file``/
``put``), or the upload would be retried for ever and the cloud get conflict copies.
"""

from __future__ import annotations

import errno
import io
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest

from vzcloud.api.models import CloudFile
from vzcloud.bench.measure import wait_until
from vzcloud.fs.errno_map import FsError, known_errno, to_errno
from vzcloud.fs.reserve import RESERVE_BYTES

from .mount_harness import MOUNT_TIMEOUT, CloudEnv, Mount, mounted, sha256
from .test_mount_degraded import within

pytestmark = [MOUNT_TIMEOUT, pytest.mark.timeout(240, method="thread")]

MiB = 1 << 20
DISK = 24 * MiB  # the cache filesystem
SIZES = (3 * MiB, 256 * 1024)  # the files written take turns: large and small
PROMPT = 10.0  # seconds any single call may take


@pytest.fixture
def cache_disk(env: CloudEnv, request: pytest.FixtureRequest) -> Iterator[tuple[str, Path]]:
    """(name, cache dir): a ``DISK``-byte tmpfs where the cache of ``start_mount(env,
    name)`` goes; one per test, unmounted after it."""
    if os.geteuid() != 0:
        pytest.fail("this test mounts a small tmpfs and must run as root", pytrace=False)
    name = request.node.name[:40]
    disk = env.tmp / name / "cache"
    disk.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK},mode=0700", "vzcloud-test",
                    str(disk)], check=True, capture_output=True)
    try:
        yield name, disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@contextmanager
def mounted_on(env: CloudEnv, cache_disk: tuple[str, Path]) -> Iterator[Mount]:
    """The mount, in the test's body: a mount that dies fails the test itself."""
    name, disk = cache_disk
    # The block cache may use a third of the disk: what fills it is staged content.
    with mounted(env, name, args=("--cache-size", str(DISK // 3))) as m:
        assert m.cache_dir == disk
        yield m


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def test_a_full_cache_disk_gives_enospc_and_keeps_what_was_acknowledged(
        env: CloudEnv, cache_disk: tuple[str, Path]) -> None:
    disk = cache_disk[1]
    with mounted_on(env, cache_disk) as mnt:
        d = mnt.vz("fill")
        os.mkdir(d)
        acknowledged: dict[str, bytes] = {}
        refusal: OSError | None = None
        env.faults.fail_rate("upload_intent", 1.0, 503, retry_after=1)
        try:
            for i in range(2 * DISK // min(SIZES)):
                name = f"f{i:03d}.bin"
                data = os.urandom(SIZES[i % len(SIZES)])
                try:
                    within(PROMPT, f"writing {name}", partial(write_file, d / name, data))
                except OSError as exc:
                    refusal = exc
                    break
                acknowledged[name] = data
            assert refusal is not None, f"wrote {2 * DISK} bytes to a {DISK}-byte disk"
            assert refusal.errno == errno.ENOSPC, f"the writer got {refusal!r}, not ENOSPC"
            written = sum(map(len, acknowledged.values()))
            assert written >= DISK // 2, f"ENOSPC after only {written} bytes"
            # Full: listings and reads of what was written still answer.
            listed = within(PROMPT, "listing the full folder", lambda: set(os.listdir(d)))
            assert set(acknowledged) <= listed
            for name, data in acknowledged.items():
                assert within(PROMPT, f"reading {name}", (d / name).read_bytes) == data
            assert within(PROMPT, "listing the root", lambda: "VZMOBILE" in os.listdir(mnt.path))
        finally:
            env.faults.clear()
        # The cloud works again: every acknowledged file reaches it, although the disk is
        # still full (nothing was deleted), with its checksum and without conflict copies.
        for name, data in acknowledged.items():
            try:
                env.wait_cloud_bytes(f"/VZMOBILE/fill/{name}", data, timeout=30)
            except AssertionError as exc:
                raise AssertionError(f"{exc}; the mount's log ends:\n{mnt.stderr()[-2000:]}") \
                    from None
            meta = env.sdk.file_metadata(f"/VZMOBILE/fill/{name}")
            assert isinstance(meta, CloudFile) and meta.checksum == sha256(data)
        # Uploaded content leaves the staging area: there is room for new files again
        # (SQLite keeps the pages it grew into, the mount its reserve: see fs/reserve.py).
        room = max(SIZES) + RESERVE_BYTES + MiB
        assert wait_until(lambda: free_bytes(disk) > room, 30, 0.2), \
            f"only {free_bytes(disk)} bytes free after the uploads after 30 s"
        again = os.urandom(max(SIZES))
        within(PROMPT, "writing after space was freed", partial(write_file, d / "again.bin", again))
        env.wait_cloud_bytes("/VZMOBILE/fill/again.bin", again, timeout=30)
        in_cloud = {f.name for f in env.sdk.metadata("/VZMOBILE/fill").files}
        assert "conflict" not in " ".join(sorted(in_cloud)), sorted(in_cloud)
        assert "Traceback" not in mnt.stderr(), mnt.stderr()[-3000:]


def test_reads_are_answered_when_the_block_cache_cannot_store(
        env: CloudEnv, cache_disk: tuple[str, Path]) -> None:
    disk = cache_disk[1]
    content = os.urandom(3 * MiB + 123)
    env.sdk.upload(io.BytesIO(content), "/VZMOBILE", "uncached.bin")
    with mounted_on(env, cache_disk) as mnt:
        target = mnt.vz("uncached.bin")
        assert wait_until(target.exists, 20, 0.2), \
            "the cloud's file never appeared in the mount after 20 s"
        filler = disk / "filler"
        try:
            with open(filler, "wb", buffering=0) as f:
                try:
                    while True:
                        f.write(b"\1" * MiB)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
            assert free_bytes(disk) < MiB
            assert within(PROMPT, "reading a file the full cache cannot store",
                          target.read_bytes) == content
            listed = within(PROMPT, "listing with a full disk", lambda: os.listdir(mnt.vz()))
            assert "uncached.bin" in listed
        finally:
            filler.unlink(missing_ok=True)
        # Space back: the file reads (and caches) as before.
        assert within(PROMPT, "reading again", target.read_bytes) == content
        assert "Traceback" not in mnt.stderr(), mnt.stderr()[-3000:]


def test_a_full_metadata_database_is_enospc_and_a_sqlite_bug_is_not_hidden() -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (v BLOB)")
    db.execute("PRAGMA max_page_count = 4")  # SQLite's own "disk": full after 4 pages
    with pytest.raises(sqlite3.OperationalError) as full:
        db.execute("INSERT INTO t VALUES (?)", (b"x" * 100_000,))
    assert known_errno(full.value) == errno.ENOSPC
    with pytest.raises(sqlite3.OperationalError) as bug:
        db.execute("SELECT no_such_column FROM t")
    assert known_errno(bug.value) is None  # the guard logs its traceback, answers EIO
    assert to_errno(bug.value) == errno.EIO
    assert known_errno(FsError(errno.ENOSPC)) == errno.ENOSPC
