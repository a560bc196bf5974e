"""The read path on real mounts: block boundaries, the last partial block, reads from the
disk cache after the page cache is dropped, eviction under a tiny cache, concurrent
readers, content changed in the cloud underneath, and the kernel readahead the mount
tunes (see ``fs.core`` read functions, ``fs.blocks``, ``fs.mount.tune_readahead``).

Pages are dropped per file with ``posix_fadvise(DONTNEED)``, so a second read goes
through the filesystem again (and is served by the block cache).
"""

from __future__ import annotations

import errno
import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from vzcloud.fs.mount import READ_AHEAD_KB

from .mount_harness import MOUNT_TIMEOUT, CloudEnv, Mount, mounted

pytestmark = MOUNT_TIMEOUT

MiB = 1 << 20


@pytest.fixture(scope="module")
def mnt(env: CloudEnv) -> Iterator[Mount]:
    with mounted(env, "reads") as m:
        yield m


def cloud_file(mnt: Mount, env: CloudEnv, folder: str, name: str, data: bytes) -> Path:
    """``data`` uploaded through the SDK into a new folder, once the mount shows it."""
    if not mnt.vz(folder).exists():
        os.mkdir(mnt.vz(folder))
    env.sdk.upload(io.BytesIO(data), f"/VZMOBILE/{folder}", name=name)
    path = mnt.vz(folder, name)
    for _ in range(150):
        mnt.sync_now()
        if path.exists() and path.stat().st_size == len(data):
            return path
        threading.Event().wait(0.1)
    raise AssertionError(f"{name} did not appear in the mount")


def drop_pages(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def pread(path: Path, offset: int, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)


def test_readahead_of_the_mount_is_raised(mnt: Mount):
    dev = os.stat(mnt.vz()).st_dev
    setting = Path(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb")
    if os.geteuid() == 0:  # set once the mount answers, just after it appears
        for _ in range(100):
            if int(setting.read_text()) == READ_AHEAD_KB:
                break
            threading.Event().wait(0.05)
        assert int(setting.read_text()) == READ_AHEAD_KB
    else:  # not permitted: the mount still works, with the kernel's default
        assert int(setting.read_text()) > 0


def test_reads_across_block_boundaries_and_last_partial_block(mnt: Mount, env: CloudEnv):
    data = os.urandom(3 * MiB + 12345)
    path = cloud_file(mnt, env, "bounds", "f.bin", data)
    # Cold (from the cloud), in an order that is not sequential, then from the disk cache.
    cases = [(3 * MiB + 12000, 4096), (MiB - 10, 20), (2 * MiB - 1, MiB + 2), (0, 1),
             (3 * MiB, 12345), (len(data) - 1, 10), (len(data), 10), (5, 3 * MiB)]
    for round_ in range(2):
        for offset, size in cases:
            assert pread(path, offset, size) == data[offset:offset + size], (round_, offset)
        drop_pages(path)
    assert path.read_bytes() == data


def test_warm_reread_after_dropping_pages_and_random_small_reads(mnt: Mount, env: CloudEnv):
    data = os.urandom(5 * MiB + 7)
    path = cloud_file(mnt, env, "warm", "f.bin", data)
    assert path.read_bytes() == data
    drop_pages(path)
    assert path.read_bytes() == data
    drop_pages(path)
    rng = __import__("random").Random(8)
    for _ in range(200):
        offset = rng.randrange(len(data))
        assert pread(path, offset, 4096) == data[offset:offset + 4096]


def test_concurrent_readers_of_one_file(mnt: Mount, env: CloudEnv):
    data = os.urandom(6 * MiB + 100)
    path = cloud_file(mnt, env, "together", "f.bin", data)
    results: dict[int, bytes] = {}
    errors: list[BaseException] = []

    def reader(n: int) -> None:
        try:
            chunk = [4096, 128 << 10, MiB, 3 * MiB][n % 4]
            out = bytearray()
            start = (n * 777_777) % len(data)  # wrap around: each starts elsewhere
            with open(path, "rb", buffering=0) as f:
                f.seek(start)
                while len(out) < len(data) - start:
                    got = f.read(chunk)
                    if not got:
                        break
                    out += got
                f.seek(0)
                out += f.read(start)
            results[n] = bytes(out[len(data) - start:] + out[:len(data) - start])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len(results) == 6
    assert all(r == data for r in results.values())


def test_reads_after_eviction_under_a_tiny_cache(env: CloudEnv):
    with mounted(env, "tinycache", args=("--cache-size", "2M")) as m:
        data = os.urandom(7 * MiB + 3)
        path = cloud_file(m, env, "tiny", "f.bin", data)
        for _ in range(3):
            assert path.read_bytes() == data
            drop_pages(path)
        for offset in (0, 6 * MiB, 3 * MiB - 2, 1):
            assert pread(path, offset, 8192) == data[offset:offset + 8192]
        blocks = m.cache_dir / "blocks"
        on_disk = sum(f.stat().st_size for f in blocks.rglob("*") if f.is_file()
                      and not f.name.startswith("cache.db"))
        assert on_disk <= 6 * MiB  # bounded, not the whole file plus history


def test_content_changed_in_the_cloud_is_never_read_as_the_old(env: CloudEnv):
    # Polling is off: the mount learns of the change only from the read's ETag check.
    with mounted(env, "changing", args=("--poll-interval", "3600")) as m:
        old = os.urandom(4 * MiB)
        path = cloud_file(m, env, "changing", "f.bin", old)
        tail = len(old) - 4096
        assert pread(path, tail, 4096) == old[tail:]  # a random read: only that block
        new = os.urandom(4 * MiB)
        env.sdk.upload(io.BytesIO(new), "/VZMOBILE/changing", name="f.bin")
        # Block 0 was never cached: the cloud now has other content. The read fails (EIO)
        # or, once the mount refreshed the file, gives the new content; never a mix.
        try:
            first = pread(path, 0, 8192)
        except OSError as exc:
            assert exc.errno == errno.EIO
        else:
            assert first == new[:8192]
        drop_pages(path)
        for _ in range(50):
            try:
                if path.read_bytes() == new:
                    break
            except OSError as exc:
                assert exc.errno == errno.EIO
            drop_pages(path)
            threading.Event().wait(0.1)
        else:
            raise AssertionError("the new content was never read")
