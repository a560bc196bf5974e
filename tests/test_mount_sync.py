"""Staying in sync, through a real mount (``fs.sync``): changes made by "another device"
(the SDK) show up within two poll intervals, with no stale data from the page cache;
a 205 (etag too old) resync keeps every local change still queued; conflicts keep both
versions. Local changes are kept queued by failing every upload (fault injection); the
other device then changes things through endpoints other than uploads (copy, folders,
delete), so only the mount's uploads fail.

One mount for the module, polling every POLL seconds.
"""

from __future__ import annotations

import ctypes
import errno
import io
import logging
import os
import re
import select
import statistics
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .mount_harness import MOUNT_TIMEOUT, CloudEnv, Mount, mounted

pytestmark = MOUNT_TIMEOUT

POLL = 0.5
WITHIN = 2 * POLL + 0.5  # two poll intervals, and some room for a busy machine
CONFLICT = re.compile(r"^doc \(conflict \d{4}-\d{2}-\d{2} \d{6}\)\.txt$")


@pytest.fixture(scope="module")
def mnt(env: CloudEnv) -> Iterator[Mount]:
    with mounted(env, "sync", args=("--poll-interval", str(POLL))) as m:
        yield m


def visible_within(predicate: Callable[[], bool], limit: float, what: str) -> float:
    """Seconds until ``predicate()`` holds; fails if that takes more than ``limit``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > limit:
            raise AssertionError(f"{what}: not visible after {limit} s")
        time.sleep(0.01)
    return time.monotonic() - start


def wait_for(predicate: Callable[[], bool], timeout: float = 10, what: str = "it") -> None:
    visible_within(predicate, timeout, what)


def read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def fsync_path(path: Path) -> None:
    """fsync a file without writing: returns once its queued upload reached the cloud."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def block_uploads(env: CloudEnv) -> None:
    """Every upload fails from now on (503), so local changes stay queued."""
    env.faults.fail("upload_intent", 503, times=1_000_000)


def test_remote_changes_show_up_within_two_polls_without_stale_pages(mnt: Mount, env: CloudEnv):
    delays: list[float] = []
    os.makedirs(mnt.vz("remote"))
    d = mnt.vz("remote")

    env.sdk.upload(io.BytesIO(b"version one"), "/VZMOBILE/remote", name="a.txt")  # add
    delays.append(visible_within(lambda: read(d / "a.txt") == b"version one", WITHIN, "add"))

    with open(d / "a.txt", "rb") as held:  # pages cached, a descriptor kept open
        assert held.read() == b"version one"
        env.sdk.upload(io.BytesIO(b"version two"), "/VZMOBILE/remote", name="a.txt")  # same size
        delays.append(visible_within(lambda: read(d / "a.txt") == b"version two", WITHIN,
                                     "modify"))
        held.seek(0)
        assert held.read() == b"version two"  # the open descriptor sees no stale pages

    env.sdk.delete("/VZMOBILE/remote/a.txt")  # delete
    delays.append(visible_within(lambda: not (d / "a.txt").exists(), WITHIN, "delete"))
    assert "a.txt" not in os.listdir(d)

    env.sdk.create_folder("/VZMOBILE/remote/old")
    env.sdk.upload(io.BytesIO(b"inside"), "/VZMOBILE/remote/old", name="in.txt")
    wait_for(lambda: read(d / "old" / "in.txt") == b"inside", WITHIN, "the folder")
    env.sdk.rename("/VZMOBILE/remote/old", "new")  # rename a folder
    delays.append(visible_within(lambda: read(d / "new" / "in.txt") == b"inside", WITHIN,
                                 "rename"))
    assert sorted(os.listdir(d)) == ["new"]

    env.sdk.create_virtualfolder("Phone")  # a virtual folder
    delays.append(visible_within(lambda: "Phone" in os.listdir(mnt.path), WITHIN,
                                 "virtual folder"))
    assert os.path.isdir(mnt.path / "Phone")
    print(f"remote change -> visible, poll {POLL} s: median "
          f"{statistics.median(delays):.3f} s, max {max(delays):.3f} s")


def _inotify_events(watched: Path, mask: int, action: Callable[[], None],
                    timeout: float) -> list[int]:
    """Event masks inotify reports for ``watched`` while ``action`` runs (``timeout`` at
    most, until the first one)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK)
    assert fd >= 0
    try:
        assert libc.inotify_add_watch(fd, os.fsencode(watched), mask) >= 0
        action()
        events: list[int] = []
        deadline = time.monotonic() + timeout
        while not events and time.monotonic() < deadline:
            if not select.select([fd], [], [], 0.1)[0]:
                continue
            buf = os.read(fd, 4096)
            while buf:
                _, got, _, length = struct.unpack_from("iIII", buf)
                events.append(got)
                buf = buf[16 + length:]
        return events
    finally:
        os.close(fd)


def test_inotify_watchers_see_remote_deletions(mnt: Mount, env: CloudEnv):
    """The kernel is told which inode went (FUSE notify_delete). Linux 5.3+ then tells
    the watchers of the file itself (IN_DELETE_SELF), not those of its directory (its
    d_delete no longer notifies): that much "the kernel allows"."""
    d = mnt.vz("watched")
    os.makedirs(d)
    env.sdk.upload(io.BytesIO(b"x"), "/VZMOBILE/watched", name="gone.txt")
    wait_for(lambda: read(d / "gone.txt") == b"x", WITHIN, "the file")
    in_delete_self = 0x400
    events = _inotify_events(d / "gone.txt", in_delete_self,
                             lambda: env.sdk.delete("/VZMOBILE/watched/gone.txt"), WITHIN + 2)
    assert events and events[0] & in_delete_self


def test_205_resync_keeps_queued_local_changes(mnt: Mount, env: CloudEnv):
    config = env.server.cloud.config
    d = mnt.vz("resync")
    os.makedirs(d / "made-here")
    env.sdk.upload(io.BytesIO(b"base"), "/VZMOBILE/resync", name="edited.txt")
    env.sdk.upload(io.BytesIO(b"stays"), "/VZMOBILE/resync", name="clean.txt")
    wait_for(lambda: read(d / "edited.txt") == b"base", WITHIN, "the files")
    retention = config.change_log_retention
    block_uploads(env)
    try:
        write(d / "edited.txt", b"edited locally")
        write(d / "new.txt", b"new locally")
        write(d / "made-here" / "deep.txt", b"deep locally")
        # The other device makes enough changes that the mount's etag falls out of a
        # tiny change log: its next poll gets 205 and resyncs everything.
        config.change_log_retention = 1
        for name in ("r1", "r2", "r3"):
            env.sdk.create_folder(f"/VZMOBILE/resync/{name}")
        env.sdk.delete("/VZMOBILE/resync/clean.txt")
        wait_for(lambda: (d / "r3").is_dir() and not (d / "clean.txt").exists(), 4 * POLL + 3,
                 "the resync")
        assert "resyncing everything" in mnt.stderr()
        assert read(d / "edited.txt") == b"edited locally"
        assert read(d / "new.txt") == b"new locally"
        assert read(d / "made-here" / "deep.txt") == b"deep locally"
        assert sorted(os.listdir(d)) == ["edited.txt", "made-here", "new.txt", "r1", "r2", "r3"]
    finally:
        config.change_log_retention = retention
        env.faults.clear()
    for name in ("edited.txt", "new.txt", "made-here/deep.txt"):
        fsync_path(d / name)
    assert env.cloud_bytes("/VZMOBILE/resync/edited.txt") == b"edited locally"
    assert env.cloud_bytes("/VZMOBILE/resync/new.txt") == b"new locally"
    assert env.cloud_bytes("/VZMOBILE/resync/made-here/deep.txt") == b"deep locally"


def test_conflict_keeps_both_versions(mnt: Mount, env: CloudEnv):
    d = mnt.vz("conflict")
    os.makedirs(d)
    env.sdk.upload(io.BytesIO(b"base version"), "/VZMOBILE/conflict", name="doc.txt")
    env.sdk.upload(io.BytesIO(b"the other device's version"), "/VZWEB", name="theirs.txt")
    wait_for(lambda: read(d / "doc.txt") == b"base version", WITHIN, "the file")
    block_uploads(env)
    try:
        write(d / "doc.txt", b"my local version")  # queued: uploads fail
        env.sdk.copy("/VZWEB/theirs.txt", "/VZMOBILE/conflict/doc.txt")  # replaced remotely
        wait_for(lambda: len(os.listdir(d)) == 2, 4 * POLL + 3, "the conflict copy")
    finally:
        env.faults.clear()
    copy = next(n for n in os.listdir(d) if n != "doc.txt")
    assert CONFLICT.match(copy), copy
    assert read(d / "doc.txt") == b"the other device's version"
    assert read(d / copy) == b"my local version"
    assert "conflict: /VZMOBILE/conflict/doc.txt changed in the cloud" in mnt.stderr()
    fsync_path(d / copy)
    assert env.cloud_bytes(f"/VZMOBILE/conflict/{copy}") == b"my local version"
    assert env.cloud_bytes("/VZMOBILE/conflict/doc.txt") == b"the other device's version"


def test_conflict_found_before_upload_keeps_both_versions(mnt: Mount, env: CloudEnv):
    """The other device changes the file after the mount's last poll, just before the
    mount uploads its own change: the upload checks first and keeps both."""
    d = mnt.vz("conflict2")
    os.makedirs(d)
    env.sdk.upload(io.BytesIO(b"base version"), "/VZMOBILE/conflict2", name="doc.txt")
    env.sdk.upload(io.BytesIO(b"theirs, just before"), "/VZWEB", name="theirs2.txt")
    wait_for(lambda: read(d / "doc.txt") == b"base version", WITHIN, "the file")
    env.faults.slow("fullview", 3)  # the mount does not see the change before uploading
    try:
        env.sdk.copy("/VZWEB/theirs2.txt", "/VZMOBILE/conflict2/doc.txt")
        write(d / "doc.txt", b"mine, just after")
    finally:
        env.faults.clear()
    wait_for(lambda: len(os.listdir(d)) == 2, 8, "the conflict copy")
    copy = next(n for n in os.listdir(d) if n != "doc.txt")
    assert CONFLICT.match(copy), copy
    fsync_path(d / copy)
    assert env.cloud_bytes(f"/VZMOBILE/conflict2/{copy}") == b"mine, just after"
    assert env.cloud_bytes("/VZMOBILE/conflict2/doc.txt") == b"theirs, just before"
    assert "doc.txt changed in the cloud; syncing first" in mnt.stderr()  # the check
    assert read(d / "doc.txt") == b"theirs, just before"


def test_remote_delete_of_a_file_with_queued_changes_uploads_it_again(mnt: Mount,
                                                                       env: CloudEnv):
    d = mnt.vz("deleted")
    os.makedirs(d / "sub")
    env.sdk.upload(io.BytesIO(b"base"), "/VZMOBILE/deleted/sub", name="kept.txt")
    wait_for(lambda: read(d / "sub" / "kept.txt") == b"base", WITHIN, "the file")
    block_uploads(env)
    try:
        write(d / "sub" / "kept.txt", b"changed locally")
        env.sdk.delete("/VZMOBILE/deleted/sub")  # its whole folder, even
        wait_for(lambda: "was deleted in the cloud while local changes" in mnt.stderr(),
                 4 * POLL + 3, "the remote delete to be seen")
        assert read(d / "sub" / "kept.txt") == b"changed locally"
    finally:
        env.faults.clear()
    fsync_path(d / "sub" / "kept.txt")
    assert env.cloud_bytes("/VZMOBILE/deleted/sub/kept.txt") == b"changed locally"


def test_refused_sync_requests_and_errors_are_not_fatal(mnt: Mount, env: CloudEnv):
    env.faults.fail("fullview", 503, times=3)
    mnt.sync_now()
    time.sleep(3 * POLL)
    env.sdk.upload(io.BytesIO(b"after the outage"), "/VZMOBILE", name="after.txt")
    wait_for(lambda: read(mnt.vz("after.txt")) == b"after the outage", 4 * POLL + 3,
             "sync to resume")
    assert "Traceback" not in mnt.stderr()
    with pytest.raises(OSError) as e:
        os.stat(mnt.vz("never-there"))
    assert e.value.errno == errno.ENOENT


def test_polls_wait_while_local_changes_keep_coming(mnt: Mount, env: CloudEnv):
    """Answers fetched while local changes keep coming would be dropped (``fs.sync``), so
    the poller does not ask for them then (fs.mount ``QUIET_BEFORE_POLL``), and asks
    once the local changes stop."""
    fullviews: list[str] = []

    class Count(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "/fullview" in record.getMessage():
                fullviews.append(record.getMessage())

    access = logging.getLogger("vzcloud.server.access")
    level, handler = access.level, Count()
    access.setLevel(logging.INFO)
    access.addHandler(handler)
    try:
        os.makedirs(mnt.vz("burst"))
        time.sleep(POLL)  # the poller has seen that change
        fullviews.clear()
        for i in range(20):  # 8 poll intervals of local changes (folders made: API calls)
            os.mkdir(mnt.vz("burst", str(i)))
            time.sleep(0.2)
        during = len(fullviews)
        env.sdk.upload(io.BytesIO(b"after"), "/VZMOBILE/burst", name="after.txt")
        visible_within(lambda: read(mnt.vz("burst", "after.txt")) == b"after",
                       WITHIN + 0.5, "a remote change once local changes stopped")
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    assert during <= 1, fullviews
