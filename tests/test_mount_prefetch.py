"""Small-file prefetch and the listing fast paths of a real mount (issue 8).

- Reading the files of a folder one after another makes the mount fetch the next ones
  ahead of the reader (``fs.prefetch``): once fetched they read while the cloud refuses
  every download, with the right content.
- A file changed in the cloud is read with its new content, prefetch or not.
- A folder bigger than the cache: everything reads right, the cache stays in its limit.
- The cloud failing during a prefetch surfaces nothing; unmounting cancels a prefetch.
- ``ls -l`` (which asks for security.* and ACL attributes the mount never has) lists
  everything; the ``user.vzcloud.*`` attributes still read.
"""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import time

import pytest

from .mount_harness import MOUNT_TIMEOUT, CloudEnv, Mount, mounted, sha256

pytestmark = MOUNT_TIMEOUT


def content(folder: str, i: int, size: int = 300, salt: str = "") -> bytes:
    head = f"{folder}/{i:04d}{salt}:".encode()
    return (head * (size // len(head) + 1))[:size]


def make_folder(env: CloudEnv, folder: str, count: int, size: int = 300) -> list[str]:
    """``count`` files named f0000... in /VZMOBILE/``folder``, created in name order
    (so inode order is name order in a mount started afterwards)."""
    names = []
    env.sdk.create_folder(f"/VZMOBILE/{folder}")
    for i in range(count):
        name = f"f{i:04d}"
        env.sdk.upload(io.BytesIO(content(folder, i, size)), f"/VZMOBILE/{folder}", name=name)
        names.append(name)
    return names


def cache_bytes(m: Mount) -> int:
    done = m.vzcloud("status", "--json", str(m.path), timeout=30)
    assert done.returncode == 0, done.stderr
    return int(json.loads(done.stdout)["cache"]["bytes"])


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    pytest.fail(f"{what} within {timeout} s", pytrace=False)


def test_files_read_one_after_another_are_prefetched(env: CloudEnv, faults_off: None) -> None:
    make_folder(env, "pf", 40)
    with mounted(env, "pf") as m:
        d = m.vz("pf")
        before = cache_bytes(m)
        assert (d / "f0000").read_bytes() == content("pf", 0)
        assert (d / "f0001").read_bytes() == content("pf", 1)
        # The next files (up to the window ahead of the reader) arrive without reads.
        wait_for(lambda: cache_bytes(m) - before >= 20 * 300, 30, "prefetch did not fetch")
        env.faults.fail_rate("download", 1.0, 503)
        for i in range(2, 20):
            assert (d / f"f{i:04d}").read_bytes() == content("pf", i)
        env.faults.clear()
        for i in range(40):  # and the rest, fetched as the reader goes
            assert (d / f"f{i:04d}").read_bytes() == content("pf", i)
        assert "Traceback" not in m.stderr()


def test_a_file_changed_in_the_cloud_is_not_read_stale(env: CloudEnv) -> None:
    make_folder(env, "stale", 30)
    changed = content("stale", 9, salt="new")
    with mounted(env, "stale") as m:
        d = m.vz("stale")
        # Changed before the prefetch reaches it, and the mount not told yet: the prefetch
        # sees the cloud's new checksum and caches nothing under the old one.
        env.sdk.upload(io.BytesIO(changed), "/VZMOBILE/stale", name="f0009")
        for i in range(3):
            assert (d / f"f{i:04d}").read_bytes() == content("stale", i)
        time.sleep(1)
        m.sync_now()
        wait_for(lambda: os.getxattr(d / "f0009", "user.vzcloud.checksum").decode()
                 == sha256(changed), 30, "the change did not reach the mount")
        assert (d / "f0009").read_bytes() == changed
        # Changed after it was prefetched: the new content once the mount knows.
        later = content("stale", 20, salt="later")
        env.sdk.upload(io.BytesIO(later), "/VZMOBILE/stale", name="f0020")
        m.sync_now()
        wait_for(lambda: os.getxattr(d / "f0020", "user.vzcloud.checksum").decode()
                 == sha256(later), 30, "the change did not reach the mount")
        assert (d / "f0020").read_bytes() == later
        for i in range(30):
            if i not in (9, 20):
                assert (d / f"f{i:04d}").read_bytes() == content("stale", i)


def test_a_folder_bigger_than_the_cache_reads_right(env: CloudEnv) -> None:
    size, count, limit = 100_000, 60, 2 << 20  # 6 MB of files, a 2 MiB cache
    make_folder(env, "big", count, size)
    with mounted(env, "big", args=("--cache-size", str(limit))) as m:
        d = m.vz("big")
        for i in range(count):
            assert (d / f"f{i:04d}").read_bytes() == content("big", i, size)
            if i % 20 == 19:
                # diskcache culls on writes, a little past the limit at most
                assert cache_bytes(m) <= limit + 4 * size
        assert "Traceback" not in m.stderr()


def test_cloud_failures_during_prefetch_surface_nothing(env: CloudEnv, faults_off: None) -> None:
    make_folder(env, "failing", 30)
    with mounted(env, "failing") as m:
        d = m.vz("failing")
        assert (d / "f0000").read_bytes() == content("failing", 0)
        assert (d / "f0001").read_bytes() == content("failing", 1)
        env.faults.fail_rate("download", 1.0, 503)
        time.sleep(2)  # the prefetch's GETs fail meanwhile
        env.faults.clear()
        for i in range(30):
            assert (d / f"f{i:04d}").read_bytes() == content("failing", i)
        log = m.stderr()
        assert "Traceback" not in log and "prefetch" not in log


def test_unmount_cancels_a_prefetch(env: CloudEnv, faults_off: None) -> None:
    make_folder(env, "slow", 30)
    with mounted(env, "slow") as m:
        d = m.vz("slow")
        assert (d / "f0000").read_bytes() == content("slow", 0)
        assert (d / "f0001").read_bytes() == content("slow", 1)
        env.faults.slow("download", 30)  # the prefetch's GETs hang
        time.sleep(0.5)
        started = time.monotonic()
    # ``mounted`` asserted a clean exit; a prefetch waiting for the cloud did not hold it.
    assert time.monotonic() - started < 20


def test_ls_l_lists_everything_and_cloud_xattrs_still_work(env: CloudEnv) -> None:
    make_folder(env, "listing", 50)
    with mounted(env, "listing") as m:
        d = m.vz("listing")
        for _ in range(2):  # cold, then warm
            out = subprocess.run(["ls", "-l", str(d)], capture_output=True, text=True,
                                 check=True).stdout.splitlines()
            assert out[0].startswith("total ")
            rows = out[1:]
            assert [r.split()[-1] for r in rows] == [f"f{i:04d}" for i in range(50)]
            assert all(r.startswith("-rw-r--r-- 1 ") and r.split()[4] == "300" for r in rows)
        f = d / "f0003"
        # Only the user namespace exists: a name of another one is not supported (which
        # ls remembers, asking once per listing), a missing user one is no data.
        for never, code in (("security.selinux", errno.ENOTSUP),
                            ("system.posix_acl_access", errno.ENOTSUP),
                            ("security.capability", errno.ENOTSUP),
                            ("trusted.x", errno.ENOTSUP), ("user.other", errno.ENODATA)):
            with pytest.raises(OSError) as e:
                os.getxattr(f, never)
            assert e.value.errno == code, never
        assert os.getxattr(f, "user.vzcloud.checksum").decode() == sha256(content("listing", 3))
        assert os.getxattr(f, "user.vzcloud.favorite") == b"0"
        os.setxattr(f, "user.vzcloud.tags", b"one,two")
        assert os.getxattr(f, "user.vzcloud.tags") == b"one,two"
        assert "user.vzcloud.tags" in os.listxattr(f)
        assert os.getxattr(d, "user.vzcloud.version")
        with pytest.raises(OSError) as e:
            os.getxattr(m.path, "user.vzcloud.uri")  # the root has none
        assert e.value.errno == errno.ENODATA
