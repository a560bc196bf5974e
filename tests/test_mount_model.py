"""The mount against a model: a plain local directory (Hypothesis stateful testing).

Random operations (create, write at an offset including past EOF, append, truncate up and
down, rename including over an existing file, unlink, mkdir, rmdir, read, listdir) are
applied to ``MNT/VZMOBILE/model`` on a real mount and to ``LOCAL/model`` in tmp. After
every step the two must agree: what each operation returned (or its errno), and the whole
tree (names, kinds, sizes from stat, every file's content).

Paths are drawn mostly from what exists (or a new name in an existing folder), so most
operations do something; a fixed pool of paths supplies the missing-parent cases.

At the end of each example the cloud must hold exactly the model's tree (polled: uploads
are write-back). Every ``REMOUNT_EVERY``-th example unmounts instead, on the same cache
directory (the unmount waits for the upload queue, so the cloud is checked at once),
mounts again and checks the remounted tree still equals the model. The model folder is
emptied between examples; one mount serves the whole run otherwise.

Races between uploads and namespace changes do not replay reliably, so a failure prints
the steps of the run that failed (with times, to match the mount's log) before Hypothesis
may report it as flaky.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from .mount_checks import Tree, cloud_tree, describe_difference, local_tree, wait_cloud_tree
from .mount_harness import MOUNT_TIMEOUT, CloudEnv, Mount, mounted, start_cloud, stop_cloud

pytestmark = MOUNT_TIMEOUT

MAX_EXAMPLES = 40
STEPS = 40
REMOUNT_EVERY = 8
CLOUD_DIR = "/VZMOBILE/model"
MiB = 1 << 20

# A small namespace, so operations collide: the same names serve files and folders.
NAMES = ["a", "b", "c", "d0", "d1"]
# Paths that often do not exist (their parent is missing): the errno cases.
pool_paths = st.builds(lambda p, n: f"{p}/{n}" if p else n,
                       st.sampled_from(["", "d0", "d1", "d0/d1"]), st.sampled_from(NAMES))
offsets = st.one_of(st.integers(0, 6000), st.sampled_from([65_536, MiB - 7, MiB + 3]))
sizes = st.one_of(st.integers(0, 6000), st.sampled_from([0, 65_536, MiB + 5]))
payloads = st.one_of(
    st.binary(max_size=700),
    st.tuples(st.integers(0, 1 << 16), st.integers(1, 150_000)).map(
        lambda t: random.Random(t[0]).randbytes(t[1])),
)
KINDS = ("file", "dir", "new", "pool")

Outcome = tuple[str, Any]  # ("ok", value) or ("errno", code name)


def outcome(fn: Callable[[Path], Any], root: Path) -> Outcome:
    try:
        return ("ok", fn(root))
    except OSError as e:
        return ("errno", errno.errorcode.get(e.errno or 0, e.errno))


def full_tree(root: Path) -> dict[str, tuple[object, ...]]:
    """Every entry under ``root``: ("dir",) or ("file", size from stat, SHA-256)."""
    return {rel: ("dir",) if checksum is None else ("file", os.stat(root / rel).st_size,
                                                      checksum)
            for rel, checksum in local_tree(root).items()}


class Mounts:
    """One mount for the whole run, which can be remounted on the same cache directory;
    counts the examples run and the remounts done."""

    def __init__(self, env: CloudEnv) -> None:
        self.env = env
        self.examples = 0
        self.remounts = 0
        self._stack = ExitStack()
        self.mount: Mount = self._stack.enter_context(mounted(env, "model"))

    def unmount(self) -> None:
        self._stack.close()  # fusermount3 -u; the process drains its queue and exits 0

    def mount_again(self) -> None:
        self._stack = ExitStack()
        self.mount = self._stack.enter_context(mounted(self.env, "model"))
        self.remounts += 1

    def close(self) -> None:
        self._stack.close()


class MountModel(RuleBasedStateMachine):
    def __init__(self, mounts: Mounts, local_base: Path) -> None:
        super().__init__()
        self.mounts = mounts
        mounts.examples += 1
        self.mnt_root = mounts.mount.vz("model")
        self.local_root = local_base / "model"
        self.diverged = False  # a step failed: teardown only cleans up
        # The steps so far, with wall-clock times to match the mount's log: shown on
        # failure, since a timing-dependent failure may not replay (Hypothesis then
        # reports a flaky test, not the steps).
        self.history: list[str] = []
        os.mkdir(self.mnt_root)
        os.mkdir(self.local_root)

    def fail(self, message: str) -> None:
        self.diverged = True
        text = f"{message}; after:" + "".join(f"\n  {line}" for line in self.history)
        print(f"\nMODEL FAILURE: {text}")  # also seen when a later replay hides it
        raise AssertionError(text)

    def both(self, what: str, fn: Callable[[Path], Any]) -> Outcome:
        expected = outcome(fn, self.local_root)
        got = outcome(fn, self.mnt_root)
        shown = [o if o[0] == "errno" or not isinstance(o[1], bytes)
                 else ("ok", f"{len(o[1])} bytes") for o in (expected, got)]
        if expected != got:
            self.fail(f"{what}: the mount gave {shown[1]}, a local disk {shown[0]}")
        now = time.time()
        stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}"
        self.history.append(f"{stamp} {what} -> {shown[0]}")
        return got

    # Choosing paths -------------------------------------------------------------------------

    def entries(self) -> tuple[list[str], list[str]]:
        """The model's (files, folders), relative to its root."""
        files: list[str] = []
        dirs: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.local_root):
            rel = Path(dirpath).relative_to(self.local_root)
            dirs += [(rel / n).as_posix() for n in dirnames]
            files += [(rel / n).as_posix() for n in filenames]
        return sorted(files), sorted(dirs)

    def pick(self, data: st.DataObject, prefer: str) -> str:
        """A path: mostly of the ``prefer``red kind (an existing file or folder, or a new
        name in an existing folder), sometimes of another kind or from the fixed pool."""
        files, dirs = self.entries()
        new = [f"{d}/{n}" if d else n for d in ["", *dirs] for n in NAMES
               if not (self.local_root / d / n).exists()]
        choices = {"file": files, "dir": dirs, "new": new}
        kind = data.draw(st.sampled_from([prefer] * 5 + list(KINDS)), label="kind")
        if kind == "pool" or not choices.get(kind):
            return data.draw(pool_paths, label="path")
        return data.draw(st.sampled_from(choices[kind]), label="path")

    # Rules ---------------------------------------------------------------------------------

    @initialize(payload=payloads)
    def populate(self, payload: bytes) -> None:
        """A few entries to start from, so most operations find something."""
        for d in ("d0", "d0/d1"):
            self.both(f"mkdir {d}", lambda root, d=d: os.mkdir(root / d))
        for f in ("a", "d0/b"):
            self.both(f"create {f}", lambda root, f=f: (root / f).write_bytes(payload))

    @rule(data=st.data(), exclusive=st.booleans())
    def create(self, data: st.DataObject, exclusive: bool) -> None:
        path = self.pick(data, "new")
        flags = os.O_CREAT | os.O_WRONLY | (os.O_EXCL if exclusive else os.O_TRUNC)
        self.both(f"create {path} excl={exclusive}",
                  lambda root: os.close(os.open(root / path, flags, 0o644)))

    @rule(data=st.data(), offset=offsets, payload=payloads)
    def write(self, data: st.DataObject, offset: int, payload: bytes) -> None:
        path = self.pick(data, "file")

        def fn(root: Path) -> int:
            fd = os.open(root / path, os.O_WRONLY)
            try:
                return os.pwrite(fd, payload, offset)
            finally:
                os.close(fd)
        self.both(f"write {len(payload)} bytes at {offset} of {path}", fn)

    @rule(data=st.data(), payload=payloads)
    def append(self, data: st.DataObject, payload: bytes) -> None:
        path = self.pick(data, "file")

        def fn(root: Path) -> int:
            with open(root / path, "ab") as f:
                return f.write(payload)
        self.both(f"append {len(payload)} bytes to {path}", fn)

    @rule(data=st.data(), size=sizes)
    def truncate(self, data: st.DataObject, size: int) -> None:
        path = self.pick(data, "file")
        self.both(f"truncate {path} to {size}", lambda root: os.truncate(root / path, size))

    @rule(data=st.data())
    def rename(self, data: st.DataObject) -> None:
        src = self.pick(data, data.draw(st.sampled_from(["file", "dir"]), label="src kind"))
        dst = self.pick(data, data.draw(st.sampled_from(["new", "file", "dir"]),
                                        label="dst kind"))
        self.both(f"rename {src} -> {dst}", lambda root: os.rename(root / src, root / dst))

    @rule(data=st.data())
    def unlink(self, data: st.DataObject) -> None:
        path = self.pick(data, "file")
        self.both(f"unlink {path}", lambda root: os.unlink(root / path))

    @rule(data=st.data())
    def mkdir(self, data: st.DataObject) -> None:
        path = self.pick(data, "new")
        self.both(f"mkdir {path}", lambda root: os.mkdir(root / path))

    @rule(data=st.data())
    def rmdir(self, data: st.DataObject) -> None:
        path = self.pick(data, "dir")
        self.both(f"rmdir {path}", lambda root: os.rmdir(root / path))

    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        path = self.pick(data, "file")
        self.both(f"read {path}", lambda root: (root / path).read_bytes())

    @rule(data=st.data())
    def listdir(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(["", *self.entries()[1]])) \
            if data.draw(st.booleans()) else self.pick(data, "dir")
        self.both(f"listdir {path!r}", lambda root: sorted(os.listdir(root / path)))

    # After every step ----------------------------------------------------------------------

    @invariant()
    def same_tree(self) -> None:
        expected, got = full_tree(self.local_root), full_tree(self.mnt_root)
        if got != expected:
            self.fail("the mounted tree differs from the model: "
                      + describe_difference(expected, got))

    # At the end of each example --------------------------------------------------------------

    def teardown(self) -> None:
        try:
            if not self.diverged:  # else the failure is reported already
                self.check_cloud_and_remount()
        finally:
            shutil.rmtree(self.mnt_root, ignore_errors=self.diverged)
            shutil.rmtree(self.local_root)

    def check_cloud_and_remount(self) -> None:
        expected: Tree = local_tree(self.local_root)
        if self.mounts.examples % REMOUNT_EVERY:
            try:
                wait_cloud_tree(self.mounts.env, CLOUD_DIR, expected, timeout=20)
            except AssertionError as e:
                self.fail(str(e))
            return
        self.mounts.unmount()
        try:
            got = cloud_tree(self.mounts.env, CLOUD_DIR)
            if got != expected:
                self.fail("after unmount (which waits for the queue) the cloud differs from "
                          "the model: " + describe_difference(expected, got))
        finally:
            self.mounts.mount_again()
            self.mnt_root = self.mounts.mount.vz("model")
        remounted = local_tree(self.mnt_root)
        if remounted != expected:
            self.fail("after a remount the tree differs from the model: "
                      + describe_difference(expected, remounted))


@pytest.fixture
def env(tmp_path: Path) -> Iterator[CloudEnv]:
    e = start_cloud(tmp_path / "env")
    try:
        yield e
    finally:
        stop_cloud(e)


def test_mount_behaves_like_a_local_disk(env: CloudEnv, tmp_path: Path):
    mounts = Mounts(env)
    local_base = tmp_path / "local"
    local_base.mkdir()
    started = time.monotonic()
    try:
        run_state_machine_as_test(
            lambda: MountModel(mounts, local_base),
            settings=settings(max_examples=MAX_EXAMPLES, stateful_step_count=STEPS,
                              deadline=None, database=None,
                              suppress_health_check=list(HealthCheck)),
        )
    finally:
        mounts.close()
    print(f"\n[figure] model test: {mounts.examples} examples, {mounts.remounts} remounts, "
          f"{time.monotonic() - started:.1f} s")
    assert mounts.examples >= MAX_EXAMPLES and mounts.remounts >= 1
