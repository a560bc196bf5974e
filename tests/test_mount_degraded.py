"""Degraded operation and privacy of a real mount (issue 7, items 4 and 6).

- A stalled upload (one request of the ``upload`` endpoint held by the server) never
  blocks listings, cached reads or the uploads of other files.
- While the cloud answers every request with 503 the mount stays responsive: cached
  reads and listings answer, writes are accepted, and they reach the cloud once it works.
- Without ``--allow-other`` another user gets EACCES on the mountpoint.

One cloud and one mount serve the module. Its directory is world-traversable (not under
pytest's private tmp root) so the privacy test's EACCES can only come from FUSE.
Every filesystem call that could hang runs with a bounded wait (``within``).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from functools import partial
from pathlib import Path
from typing import TypeVar

import pytest

from .mount_harness import MOUNT_TIMEOUT, CloudEnv, Mount, mounted, start_cloud, stop_cloud

pytestmark = MOUNT_TIMEOUT

T = TypeVar("T")
PROMPT = 5.0  # seconds any call on the degraded mount may take: generous, not a benchmark
STALL = 20.0  # seconds the server holds the stalled upload


@pytest.fixture(scope="module")
def env() -> Iterator[CloudEnv]:
    # Not tmp_path_factory: its root is 0700, which would deny another user on its own.
    tmp = Path(tempfile.mkdtemp(prefix="vz-degraded-"))
    tmp.chmod(0o755)
    e = start_cloud(tmp)
    try:
        yield e
    finally:
        stop_cloud(e)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def mnt(env: CloudEnv) -> Iterator[Mount]:
    with mounted(env, "shared") as m:
        yield m


def within(seconds: float, what: str, call: Callable[[], T]) -> T:
    """``call()``'s result; fails the test if it takes longer than ``seconds``. The call
    runs in a thread of its own, so a hung syscall cannot hang the test (the mount's
    teardown detaches the filesystem and frees the thread)."""
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(call).result(timeout=seconds)
    except FutureTimeout:
        pytest.fail(f"{what} did not finish within {seconds} s", pytrace=False)
    finally:
        pool.shutdown(wait=False)


def write_file(path: Path, data: bytes, fsync: bool = False) -> None:
    with open(path, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())


def append_file(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def workdir(mnt: Mount, env: CloudEnv, name: str) -> Path:
    """A folder of the test's own with a file ``cached.txt`` that is in the cloud and
    has been read through the mount once (so its content is in the block cache)."""
    d = mnt.vz(name)
    os.mkdir(d)
    cached = b"cached content of " + name.encode() + b"\n" * 100
    write_file(d / "cached.txt", cached, fsync=True)
    env.wait_cloud_bytes(f"/VZMOBILE/{name}/cached.txt", cached)
    assert (d / "cached.txt").read_bytes() == cached
    return d


def in_cloud(env: CloudEnv, path: str) -> bool:
    try:
        env.sdk.file_metadata(path)
    except Exception:
        return False
    return True


def test_stalled_upload_blocks_no_reads_listings_or_other_uploads(
        env: CloudEnv, mnt: Mount, faults_off: None) -> None:
    d = workdir(mnt, env, "stall")
    cached = (d / "cached.txt").read_bytes()
    held_before = env.faults.injected["latency"]
    env.faults.slow("upload", STALL)
    stalled = os.urandom(64 * 1024)
    within(PROMPT, "closing the file whose upload will stall",
           lambda: write_file(d / "stalled.bin", stalled))
    # The delay is taken when a request arrives: once one upload is being held, later
    # uploads go through at full speed.
    deadline = time.monotonic() + 10
    while env.faults.injected["latency"] == held_before:
        assert time.monotonic() < deadline, "the upload of stalled.bin never started"
        time.sleep(0.05)
    stall_started = time.monotonic()
    env.faults.slow("upload", 0)

    names = within(PROMPT, "listing a folder", lambda: sorted(os.listdir(d)))
    assert names == ["cached.txt", "stalled.bin"]
    assert within(PROMPT, "reading a cached file", (d / "cached.txt").read_bytes) == cached
    synced = b"written and fsynced during the stall\n"
    within(PROMPT, "write + fsync of another file",
           lambda: write_file(d / "synced.txt", synced, fsync=True))
    env.wait_cloud_bytes("/VZMOBILE/stall/synced.txt", synced, timeout=PROMPT)
    # Without fsync: plain write-back must not queue behind the stalled upload either.
    later = b"written back during the stall\n"
    within(PROMPT, "writing a third file", lambda: write_file(d / "later.txt", later))
    env.wait_cloud_bytes("/VZMOBILE/stall/later.txt", later, timeout=PROMPT)

    # All of that happened while the first upload was still held.
    assert time.monotonic() - stall_started < STALL - 1, "the checks outlasted the stall"
    assert not in_cloud(env, "/VZMOBILE/stall/stalled.bin")
    env.wait_cloud_bytes("/VZMOBILE/stall/stalled.bin", stalled, timeout=STALL + 20)


def test_mount_stays_responsive_while_the_cloud_fails_everything(
        env: CloudEnv, mnt: Mount, faults_off: None) -> None:
    d = workdir(mnt, env, "outage")
    cached = (d / "cached.txt").read_bytes()
    failed_before = env.faults.injected["status_503"]
    env.faults.fail_rate("*", 1.0, 503, retry_after=1)
    try:
        assert within(PROMPT, "listing a folder", lambda: sorted(os.listdir(d))) == [
            "cached.txt"]
        assert within(PROMPT, "listing the root", lambda: "VZMOBILE" in os.listdir(mnt.path))
        assert within(PROMPT, "reading a cached file", (d / "cached.txt").read_bytes) == cached
        written = {f"new{i}.txt": f"written during the outage {i}\n".encode() * 50
                   for i in range(3)}
        for name, data in written.items():
            within(PROMPT, f"writing {name}", partial(write_file, d / name, data))
        appended = cached + b"appended during the outage\n"
        within(PROMPT, "appending to the cached file",
               lambda: append_file(d / "cached.txt", b"appended during the outage\n"))
        assert within(PROMPT, "reading back a file written during the outage",
                      (d / "new0.txt").read_bytes) == written["new0.txt"]
        assert sorted(os.listdir(d)) == ["cached.txt", *sorted(written)]
        # The mount keeps trying the cloud (uploads, polls) and keeps failing meanwhile.
        deadline = time.monotonic() + 10
        while env.faults.injected["status_503"] - failed_before < 3:
            assert time.monotonic() < deadline, "the mount never tried the cloud"
            time.sleep(0.1)
    finally:
        env.faults.clear()
    for name, data in written.items():
        env.wait_cloud_bytes(f"/VZMOBILE/outage/{name}", data, timeout=30)
    env.wait_cloud_bytes("/VZMOBILE/outage/cached.txt", appended, timeout=30)


_LIST_AS_NOBODY = """
import os, sys
os.setgid(65534)
os.setgroups([])
os.setuid(65534)
for path in sys.argv[1:]:
    try:
        os.listdir(path)
        print(path, "ok")
    except OSError as exc:
        print(path, exc.errno)
"""


def test_other_users_cannot_enter_the_mount(env: CloudEnv, mnt: Mount) -> None:
    if os.geteuid() != 0:
        pytest.fail("this test switches to uid 65534 and must run as root", pytrace=False)
    # A sibling of the mountpoint with the same path permissions: the other user can
    # reach it, so an EACCES on the mountpoint is FUSE's refusal, not the path's.
    public = mnt.path.parent / "public"
    public.mkdir(exist_ok=True)
    for p in (mnt.path.parent, public):
        p.chmod(0o755)
    done = within(30, "listing as another user", lambda: subprocess.run(
        [sys.executable, "-c", _LIST_AS_NOBODY, str(public), str(mnt.path)],
        capture_output=True, text=True, timeout=25))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == [f"{public} ok", f"{mnt.path} {errno.EACCES}"]
    # The owner still sees it.
    assert "VZMOBILE" in os.listdir(mnt.path)
