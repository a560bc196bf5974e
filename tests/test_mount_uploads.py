"""The upload path of a real mount: journaled small files, parallel uploads.

- A small file's content is journaled in its upload job (one sync per ``close()``; its
  staging file is not synced). After ``kill -9`` of the mount and a simulated power loss
  that damaged those staging files (removed, emptied, cut short, overwritten), the
  remount restores them from the journal: every closed file reaches the cloud with the
  right content. A file too large to journal is synced as before and survives too.
- Small files upload in parallel, failing uploads hold none of the others, and uploads
  go on (one at a time) while programs keep the mount busy.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vzcloud.fs.core import JOURNAL_MAX

from .mount_harness import (
    MOUNT_TIMEOUT,
    CloudEnv,
    kill_mount,
    mounted,
    sha256,
    start_cloud,
    start_mount,
    stop_cloud,
)

pytestmark = MOUNT_TIMEOUT


@pytest.fixture
def env(tmp_path: Path) -> Iterator[CloudEnv]:
    e = start_cloud(tmp_path)
    try:
        yield e
    finally:
        stop_cloud(e)


def cloud_sha(env: CloudEnv, path: str) -> str | None:
    try:
        return env.sdk.file_metadata(path).checksum
    except Exception:
        return None


def wait_in_cloud(env: CloudEnv, expected: dict[str, bytes], timeout: float) -> None:
    """Until every ``path -> content`` of ``expected`` is in the cloud."""
    deadline = time.monotonic() + timeout
    missing = dict(expected)
    while missing:
        missing = {p: c for p, c in missing.items() if cloud_sha(env, p) != sha256(c)}
        if not missing:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout} s not in the cloud (or wrong): "
                                 f"{sorted(missing)[:10]} ({len(missing)} files)")
        time.sleep(0.3)


def test_closed_small_files_survive_kill_9_and_damaged_staging(env: CloudEnv) -> None:
    contents = {f"f{i:03}.bin": os.urandom(i * 997 % 20000) for i in range(40)}
    contents["empty"] = b""
    contents["edge"] = os.urandom(JOURNAL_MAX)
    contents["large"] = os.urandom(JOURNAL_MAX + 4096)  # not journaled: synced itself
    mount = start_mount(env, "m")
    try:
        os.mkdir(mount.vz("j"))
        env.faults.fail_rate("upload_intent", 1.0, 503)  # nothing reaches the cloud
        for name, data in contents.items():
            (mount.vz("j") / name).write_bytes(data)
        # Rewritten after its first close: the journal must hold the newest content.
        contents["f001.bin"] = b"second version"
        (mount.vz("j") / "f001.bin").write_bytes(contents["f001.bin"])
    finally:
        kill_mount(mount)
    # What a power loss may do to staging files that were never synced.
    staging = sorted((mount.cache_dir / "staging").iterdir(), key=lambda p: int(p.name))
    damaged = [p for p in staging if p.stat().st_size <= JOURNAL_MAX]
    assert len(damaged) >= len(contents) - 1
    for n, path in enumerate(damaged):
        match n % 4:
            case 0:
                path.unlink()
            case 1:
                os.truncate(path, 0)
            case 2:
                os.truncate(path, path.stat().st_size // 2)
            case _:
                path.write_bytes(b"\0" * path.stat().st_size)
    env.faults.clear()
    with mounted(env, "m") as again:
        wait_in_cloud(env, {f"/VZMOBILE/j/{n}": c for n, c in contents.items()}, 60)
        for name, data in contents.items():
            assert (again.vz("j") / name).read_bytes() == data, name
        assert "restored the staged content" in again.stderr()


def test_small_files_upload_in_parallel_and_failing_ones_hold_none(env: CloudEnv) -> None:
    files = {f"p{i:02}.txt": f"parallel {i}\n".encode() * 50 for i in range(16)}
    with mounted(env, "p") as mnt:
        folder = mnt.vz("par")
        os.mkdir(folder)
        try:
            # Each upload takes 2 s: one at a time, 16 files would take 32 s.
            env.faults.slow("upload", 2.0)
            # Six upload attempts are refused (400: the SDK does not retry it, the
            # queue does, after a backoff).
            env.faults.fail("upload_intent", 400, times=6)
            for name, data in files.items():
                (folder / name).write_bytes(data)
            wait_in_cloud(env, {f"/VZMOBILE/par/{n}": c for n, c in files.items()}, 28)
        finally:
            env.faults.clear()


def test_uploads_go_on_while_programs_use_the_mount(env: CloudEnv) -> None:
    files = {f"b{i:02}.txt": f"busy {i}\n".encode() * 50 for i in range(20)}
    with mounted(env, "b") as mnt:
        folder = mnt.vz("busy")
        os.mkdir(folder)
        stop = threading.Event()

        def keep_busy() -> None:  # a program using the mount all along
            while not stop.is_set():
                os.listdir(folder)
                time.sleep(0.02)

        busy = threading.Thread(target=keep_busy, daemon=True)
        busy.start()
        try:
            for name, data in files.items():
                (folder / name).write_bytes(data)
            wait_in_cloud(env, {f"/VZMOBILE/busy/{n}": c for n, c in files.items()}, 30)
        finally:
            stop.set()
            busy.join()
