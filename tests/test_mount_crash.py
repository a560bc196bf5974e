"""Crash safety of the mount: ``kill -9`` at a random moment loses nothing acknowledged.

A writer process (``tests/crash_writer.py``) keeps creating, appending and renaming
files in the mount and journals (outside the mount) every completed ``close()`` and
``rename()``. The mount is SIGKILLed at a random moment, its dead mount detached
(``fusermount3 -u -z``) and the same cache directory mounted again; then the next round
starts. After the last round the upload queue must drain, and every journaled file must
be in the cloud at its final path with the journaled SHA-256, exactly once (a rename
the mount died during may have happened or not, but the file is at one of the two
paths), and read back the same through the mount. No conflict copies may appear (one
writer, so none is legitimate). Finally ``vzcloud check`` on the unmounted cache must
find the cache consistent with the cloud.

``VZCLOUD_MOUNT_CRASH_ROUNDS`` sets the number of kills (CI: 6), ``VZCLOUD_MOUNT_CRASH_SEED``
the seed (printed); ``scripts/crash-mount N`` runs more rounds.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vzcloud.fs.uploads import sha256_file

from .mount_checks import cloud_tree
from .mount_harness import CloudEnv, Mount, kill_mount, start_cloud, start_mount, stop_cloud

ROUNDS = int(os.environ.get("VZCLOUD_MOUNT_CRASH_ROUNDS", "6"))
SEED = int(os.environ.get("VZCLOUD_MOUNT_CRASH_SEED", str(random.randrange(1 << 30))))
WRITER = Path(__file__).with_name("crash_writer.py")
FOLDER = "crash"
DRAIN_TIMEOUT = 60.0

pytestmark = pytest.mark.timeout(max(90, 25 * ROUNDS + 60), method="thread")


@dataclass
class Expected:
    """What the journal promises: path -> SHA-256, and the renames whose outcome is
    unknown (the mount died during them): (from, to, SHA-256); ``gone``: paths that a
    journaled rename left, which must not exist (a copy left behind)."""
    files: dict[str, str] = field(default_factory=dict)
    uncertain: list[tuple[str, str, str]] = field(default_factory=list)
    gone: set[str] = field(default_factory=set)


def read_journal(path: Path) -> Expected:
    expected = Expected()
    pending: tuple[str, str] | None = None
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if entry["op"] == "write":
            expected.files[entry["path"]] = entry["sha256"]
        elif entry["op"] == "renaming":
            pending = (entry["from"], entry["to"])
        elif entry["op"] == "rename":
            expected.files[entry["to"]] = expected.files.pop(entry["from"])
            expected.gone.add(entry["from"])
            pending = None
    if pending is not None and pending[0] in expected.files:
        # The journal is one writer after another; only the last one can end this way
        # per round, so collect it and reset (next rounds use other names).
        expected.uncertain.append((*pending, expected.files.pop(pending[0])))
    return expected


def read_journals(paths: list[Path]) -> Expected:
    merged = Expected()
    for path in paths:
        one = read_journal(path)
        merged.files.update(one.files)
        merged.uncertain.extend(one.uncertain)
        merged.gone |= one.gone
    return merged


def differences(expected: Expected, cloud: dict[str, str | None]) -> list[str]:
    """Every way the cloud breaks the journal's promises (empty: none)."""
    problems = [f"{p}: expected {sha[:12]}, cloud has {cloud.get(p)}"
                for p, sha in sorted(expected.files.items()) if cloud.get(p) != sha]
    for src, dst, sha in expected.uncertain:
        at = [p for p in (src, dst) if cloud.get(p) == sha]
        if len(at) != 1:
            problems.append(f"rename {src} -> {dst} in flight at the kill: content found "
                            f"at {at} (cloud: {cloud.get(src)}, {cloud.get(dst)})")
    problems += [f"{p} was renamed but is still there" for p in sorted(expected.gone & set(cloud))]
    problems += [f"unexpected conflict copy {p}" for p in sorted(cloud) if "(conflict" in p]
    return problems


def queued(mount: Mount) -> int | None:
    done = mount.vzcloud("status", "--json", str(mount.path), timeout=30)
    if done.returncode != 0:
        return None
    return int(json.loads(done.stdout)["uploads"]["queued"])


def wait_drained(env: CloudEnv, mount: Mount, expected: Expected) -> dict[str, str | None]:
    """Until the mount's queue is empty and the cloud keeps the journal's promises;
    returns the cloud's tree under the crash folder."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while True:
        cloud = cloud_tree(env, f"/VZMOBILE/{FOLDER}")
        problems = differences(expected, cloud)
        if not problems and queued(mount) == 0:
            return cloud
        if time.monotonic() > deadline:
            raise AssertionError(f"after {DRAIN_TIMEOUT} s, queue {queued(mount)}; "
                                 f"{len(problems)} problem(s): {problems[:10]}\n"
                                 f"mount log:\n{mount.stderr()[-4000:]}")
        time.sleep(0.5)


def unmount_cleanly(mount: Mount) -> None:
    done = subprocess.run(["fusermount3", "-u", str(mount.path)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert mount.proc.wait(timeout=60) == 0, mount.stderr()[-4000:]


def test_kill_9_of_the_mount_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    print(f"mount crash test: {ROUNDS} rounds, seed {SEED}")
    env = start_cloud(tmp_path)
    mount = start_mount(env, "crash")
    journals: list[Path] = []
    try:
        mount.vz(FOLDER).mkdir()
        for round_no in range(ROUNDS):
            journal = tmp_path / f"journal-{round_no}.jsonl"
            journals.append(journal)
            with open(tmp_path / f"writer-{round_no}.log", "wb") as log:
                writer = subprocess.Popen(
                    [sys.executable, str(WRITER), str(mount.vz(FOLDER)), str(journal),
                     f"r{round_no}", str(rng.randrange(1 << 30))],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            time.sleep(rng.uniform(0.5, 3.0))
            kill_mount(mount)
            assert writer.wait(timeout=30) == 0, (tmp_path / f"writer-{round_no}.log").read_text()
            mount = start_mount(env, "crash")
        expected = read_journals(journals)
        assert len(expected.files) >= ROUNDS, "the writer hardly wrote anything"
        cloud = wait_drained(env, mount, expected)
        for rel, sha in expected.files.items():  # the mount's own view agrees
            assert sha256_file(mount.vz(FOLDER, rel)) == sha, rel
        verified = len(expected.files) + len(expected.uncertain)
        print(f"mount crash test: {ROUNDS} kills, {verified} files verified "
              f"({len(expected.uncertain)} renames in flight at a kill), "
              f"{len(cloud)} in the cloud, 0 lost")
        unmount_cleanly(mount)
        checked = mount.vzcloud("check", "--cache-dir", str(mount.cache_dir))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "consistent with the cloud" in checked.stdout
    except BaseException:
        kill_mount(mount)
        raise
    finally:
        stop_cloud(env)
