"""Real mounts (``vzcloud mount`` in a subprocess, see ``mount_harness``) driven with plain
os/shutil calls; what reached the cloud is checked through the synchronous SDK.

Most tests share one mount (module scope) and work in a folder of their own; the ones
that stop the cloud or unmount use mounts of their own. The shared mount chunks uploads
from 1 MiB (``VZCLOUD_CHUNK_THRESHOLD``) so a "big file" stays small.
"""

from __future__ import annotations

import ctypes
import errno
import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .mount_harness import (
    MOUNT_TIMEOUT,
    CloudEnv,
    Mount,
    mounted,
    sha256,
    start_cloud,
    stop_cloud,
    write_profile,
)

pytestmark = MOUNT_TIMEOUT

MiB = 1 << 20


@pytest.fixture(scope="module")
def mnt(env: CloudEnv) -> Iterator[Mount]:
    with mounted(env, "shared", extra_env={"VZCLOUD_CHUNK_THRESHOLD": "1M",
                                           "VZCLOUD_CHUNK_SIZE": "256K"}) as m:
        yield m


def workdir(mnt: Mount, name: str) -> Path:
    d = mnt.vz(name)
    os.mkdir(d)
    return d


def wait_for(predicate: Callable[[], bool], timeout: float = 15,
             what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def test_root_lists_virtual_folders_and_root_operations(mnt: Mount, env: CloudEnv):
    assert {"VZMOBILE", "VZWEB", "MyComputer"} <= set(os.listdir(mnt.path))
    os.mkdir(mnt.path / "Projects")
    assert "Projects" in [f.name for f in env.sdk.metadata("/").folders]
    os.rename(mnt.path / "Projects", mnt.path / "Work")
    names = [f.name for f in env.sdk.metadata("/").folders]
    assert "Work" in names and "Projects" not in names
    write(mnt.path / "Work" / "plan.txt", b"plan")
    with pytest.raises(OSError) as e:
        os.rmdir(mnt.path / "Work")
    assert e.value.errno == errno.ENOTEMPTY
    os.unlink(mnt.path / "Work" / "plan.txt")
    os.rmdir(mnt.path / "Work")
    assert "Work" not in [f.name for f in env.sdk.metadata("/").folders]
    assert "Work" not in os.listdir(mnt.path)
    with pytest.raises(PermissionError):
        write(mnt.path / "loose.txt", b"files live in virtual folders")


def test_create_write_close_reaches_cloud_and_fsync_waits(mnt: Mount, env: CloudEnv):
    d = workdir(mnt, "writes")
    write(d / "closed.txt", b"written and closed")
    env.wait_cloud_bytes("/VZMOBILE/writes/closed.txt", b"written and closed")
    with open(d / "synced.bin", "wb") as f:
        data = os.urandom(300_000)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
        # fsync returned: the cloud has it now, no waiting.
        assert env.cloud_bytes("/VZMOBILE/writes/synced.bin") == data
    assert (d / "synced.bin").read_bytes() == data
    assert os.stat(d / "synced.bin").st_size == len(data)


def test_read_back_file_uploaded_through_sdk(mnt: Mount, env: CloudEnv):
    workdir(mnt, "fromsdk")
    data = os.urandom(2 * MiB + 3)
    env.sdk.upload(io.BytesIO(data), "/VZMOBILE/fromsdk", name="up.bin")
    mnt.sync_now()
    wait_for(lambda: (mnt.vz("fromsdk", "up.bin")).exists(), what="the SDK's file to appear")
    assert mnt.vz("fromsdk", "up.bin").read_bytes() == data
    with open(mnt.vz("fromsdk", "up.bin"), "rb") as f:
        f.seek(MiB - 5)
        assert f.read(10) == data[MiB - 5: MiB + 5]


def test_appends_random_writes_truncate_and_o_trunc(mnt: Mount, env: CloudEnv):
    d = workdir(mnt, "random")
    path = d / "r.bin"
    model = bytearray(b"start:")
    write(path, bytes(model))
    with open(path, "ab") as f:  # appends
        for i in range(3):
            f.write(f"line {i}\n".encode())
            model += f"line {i}\n".encode()
    fd = os.open(path, os.O_RDWR)
    try:
        os.pwrite(fd, b"XY", 2)
        model[2:4] = b"XY"
        os.pwrite(fd, b"far", 5000)  # past EOF: the gap reads as zeros
        model += b"\0" * (5000 - len(model)) + b"far"
        assert os.pread(fd, 10_000, 0) == bytes(model)
        os.ftruncate(fd, 20)  # down
        del model[20:]
        os.ftruncate(fd, 100)  # up
        model += b"\0" * 80
        os.pwrite(fd, b"end", 97)
        model[97:100] = b"end"
    finally:
        os.close(fd)
    assert path.read_bytes() == bytes(model)
    env.wait_cloud_bytes("/VZMOBILE/random/r.bin", bytes(model))
    os.truncate(path, 10)  # truncate(2) of a path
    env.wait_cloud_bytes("/VZMOBILE/random/r.bin", bytes(model[:10]))
    with open(path, "wb") as f:  # O_TRUNC
        f.write(b"new")
    assert path.read_bytes() == b"new"
    env.wait_cloud_bytes("/VZMOBILE/random/r.bin", b"new")


def renameat2_noreplace(src: Path, dst: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd, rename_noreplace = -100, 1
    if libc.renameat2(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst),
                      rename_noreplace) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def test_rename_file_deep_directory_over_existing_and_noreplace(mnt: Mount, env: CloudEnv):
    d = workdir(mnt, "renames")
    deep = d / "a" / "b" / "c" / "d"
    os.makedirs(deep)
    for i in range(4):
        write(deep / f"f{i}.txt", f"deep {i}".encode())
    write(d / "a" / "top.txt", b"top")
    os.rename(d / "a", d / "z")
    assert sorted(os.listdir(d / "z" / "b" / "c" / "d")) == [f"f{i}.txt" for i in range(4)]
    for i in range(4):
        env.wait_cloud_bytes(f"/VZMOBILE/renames/z/b/c/d/f{i}.txt", f"deep {i}".encode())
    env.wait_cloud_bytes("/VZMOBILE/renames/z/top.txt", b"top")
    assert not any(f.path.startswith("/VZMOBILE/renames/a/") for f in env.sdk.fullview().files)

    write(d / "old.txt", b"old")
    write(d / "new.txt", b"new")
    with pytest.raises(OSError) as e:
        renameat2_noreplace(d / "new.txt", d / "old.txt")
    assert e.value.errno == errno.EEXIST
    os.rename(d / "new.txt", d / "old.txt")  # over an existing file
    assert (d / "old.txt").read_bytes() == b"new"
    assert sorted(os.listdir(d)) == ["old.txt", "z"]
    env.wait_cloud_bytes("/VZMOBILE/renames/old.txt", b"new")
    renameat2_noreplace(d / "old.txt", d / "fresh.txt")
    assert (d / "fresh.txt").read_bytes() == b"new"


def test_editor_style_save(mnt: Mount, env: CloudEnv):
    d = workdir(mnt, "editor")
    write(d / "doc.txt", b"first draft")
    tmp = d / ".doc.txt.swp"
    with open(tmp, "wb") as f:
        f.write(b"second draft")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, d / "doc.txt")
    assert (d / "doc.txt").read_bytes() == b"second draft"
    assert os.listdir(d) == ["doc.txt"]
    env.wait_cloud_bytes("/VZMOBILE/editor/doc.txt", b"second draft")


def test_unlink_while_open_still_reads(mnt: Mount, env: CloudEnv):
    d = workdir(mnt, "unlink")
    data = os.urandom(1_500_000)
    write(d / "f.bin", data)
    env.wait_cloud_bytes("/VZMOBILE/unlink/f.bin", data)
    with open(d / "f.bin", "rb") as f:
        os.unlink(d / "f.bin")
        assert not (d / "f.bin").exists()
        assert f.read() == data
    assert "f.bin" in [x.name for x in env.sdk.trash("VZMOBILE").files]


def test_hard_links_and_symlinks_are_refused(mnt: Mount):
    d = workdir(mnt, "links")
    write(d / "target", b"t")
    with pytest.raises(PermissionError):
        os.link(d / "target", d / "hard")
    with pytest.raises(PermissionError):
        os.symlink("target", d / "soft")
    assert os.listdir(d) == ["target"]


def test_statfs_shows_quota(mnt: Mount, env: CloudEnv):
    st = os.statvfs(mnt.path)
    account = env.sdk.account()
    assert st.f_namemax == 255
    assert st.f_bsize == st.f_frsize
    assert st.f_blocks == account.quota // st.f_frsize
    with pytest.raises(OSError) as e:
        os.mkdir(mnt.vz("n" * 256))
    assert e.value.errno == errno.ENAMETOOLONG


def test_file_in_trash_is_gone_from_listings(mnt: Mount, env: CloudEnv):
    d = workdir(mnt, "trashed")
    env.sdk.upload(io.BytesIO(b"soon trashed"), "/VZMOBILE/trashed", name="t.txt")
    mnt.sync_now()
    wait_for(lambda: "t.txt" in os.listdir(d), what="t.txt to appear")
    assert (d / "t.txt").read_bytes() == b"soon trashed"
    env.sdk.delete("/VZMOBILE/trashed/t.txt")
    mnt.sync_now()
    wait_for(lambda: "t.txt" not in os.listdir(d), what="t.txt to go")
    assert not (d / "t.txt").exists()


def test_big_file_over_chunk_threshold(mnt: Mount, env: CloudEnv):
    d = workdir(mnt, "big")
    data = os.urandom(5 * MiB + 1234)
    with open(d / "big.bin", "wb") as f:
        for off in range(0, len(data), 100_000):
            f.write(data[off: off + 100_000])
    wait_for(lambda: _cloud_checksum(env, "/VZMOBILE/big/big.bin") == sha256(data),
             timeout=30, what="the big file's checksum in the cloud")
    assert env.cloud_bytes("/VZMOBILE/big/big.bin") == data
    assert (d / "big.bin").read_bytes() == data


def _cloud_checksum(env: CloudEnv, path: str) -> str | None:
    try:
        return env.sdk.file_metadata(path).checksum  # type: ignore[union-attr]
    except Exception:
        return None


def test_many_small_files_with_shutil(mnt: Mount, env: CloudEnv, tmp_path: Path):
    src = tmp_path / "tree"
    for i in range(30):
        sub = src / f"dir{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"file{i}.txt").write_bytes(f"content {i}\n".encode() * (i + 1))
    shutil.copytree(src, mnt.vz("tree"))
    for i in range(30):
        rel = f"dir{i % 3}/file{i}.txt"
        assert (mnt.vz("tree") / rel).read_bytes() == (src / rel).read_bytes()
    for i in range(30):
        rel = f"dir{i % 3}/file{i}.txt"
        env.wait_cloud_bytes(f"/VZMOBILE/tree/{rel}", (src / rel).read_bytes())


def test_mount_and_umount_errors(mnt: Mount, env: CloudEnv, tmp_path: Path):
    missing = mnt.vzcloud("mount", str(tmp_path / "missing"))
    assert missing.returncode == 4 and "does not exist" in missing.stderr
    full = tmp_path / "full"
    full.mkdir()
    (full / "f").write_text("x")
    not_empty = mnt.vzcloud("mount", str(full))
    assert not_empty.returncode == 1 and "not empty" in not_empty.stderr
    again = mnt.vzcloud("mount", str(mnt.path))
    assert again.returncode == 1 and "already mounted" in again.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    no_profile = mnt.vzcloud("mount", str(empty), "--profile", "nosuch")
    assert no_profile.returncode == 4 and "no profile" in no_profile.stderr
    not_mounted = mnt.vzcloud("umount", str(empty))
    assert not_mounted.returncode == 4 and "not mounted" in not_mounted.stderr
    # The first mount of a cache needs the cloud.
    write_profile(tmp_path / "config", env, "down", server="http://127.0.0.1:9")
    down = subprocess.run(
        [sys.executable, "-m", "vzcloud.cli.main", "mount", str(empty), "--cache-dir",
         str(tmp_path / "cache")],
        env={**mnt.process_env, "VZCLOUD_CONFIG_DIR": str(tmp_path / "config")},
        capture_output=True, text=True, timeout=60)
    assert down.returncode == 1 and "cannot reach the cloud" in down.stderr, down.stderr
    assert not os.path.ismount(empty)
    for line in (missing, not_empty, again, no_profile, not_mounted, down):
        assert len(line.stderr.strip().splitlines()) == 1, line.stderr


# Mounts of their own ----------------------------------------------------------------------


def test_uncached_read_fails_with_eio_when_cloud_is_down(tmp_path: Path):
    env = start_cloud(tmp_path)
    try:
        env.sdk.upload(io.BytesIO(b"never read before"), "/VZMOBILE", name="cold.txt")
        env.sdk.upload(io.BytesIO(b"read before"), "/VZMOBILE", name="warm.txt")
        with mounted(env) as m:
            assert m.vz("warm.txt").read_bytes() == b"read before"
            env.stop_server()
            try:
                started = time.monotonic()
                with pytest.raises(OSError) as e:
                    m.vz("cold.txt").read_bytes()
                assert e.value.errno == errno.EIO
                assert time.monotonic() - started < 15
                # Cached content and listings keep working; writes are queued.
                assert m.vz("warm.txt").read_bytes() == b"read before"
                assert sorted(os.listdir(m.vz())) == ["cold.txt", "warm.txt"]
                write(m.vz("offline.txt"), b"queued while offline")
            finally:
                env.start_server()
            env.wait_cloud_bytes("/VZMOBILE/offline.txt", b"queued while offline", timeout=30)
            assert m.vz("cold.txt").read_bytes() == b"never read before"
    finally:
        stop_cloud(env)


def test_umount_waits_for_queued_uploads(env: CloudEnv):
    with mounted(env, "umount") as m:
        os.mkdir(m.vz("drain"))
        # Longer than the umount command takes to start: small files upload in
        # parallel, so the three uploads end together.
        env.faults.slow("upload", 3.0)
        try:
            for i in range(3):
                write(m.vz("drain", f"f{i}.txt"), f"drained {i}".encode())
            done = m.vzcloud("umount", str(m.path))
        finally:
            env.faults.slow("upload", 0)
        assert done.returncode == 0, done.stderr
        assert "waiting for" in done.stderr and "all uploads finished" in done.stderr
        assert not os.path.ismount(m.path)
        for i in range(3):  # no waiting: umount returned after the uploads
            assert env.cloud_bytes(f"/VZMOBILE/drain/f{i}.txt") == f"drained {i}".encode()
