"""Real programs on a real mount (``vzcloud mount`` in a subprocess, see ``mount_harness``):
cp, tar, rsync, git, sqlite, shell redirections, dd, mv. After each, the mount must
show what the program wrote, and the cloud (read through the SDK once the write-back
queue has drained, polled with a bound) must hold exactly the same bytes: no file
missing, none left over (temporary names), none with other content.

All tests share one mount (module scope) and work in a folder of their own. Timings of
``cp -a`` and ``tar x`` are printed as ``[figure]`` lines (``pytest -s`` shows them).
"""

from __future__ import annotations

import io
import os
import random
import shutil
import sqlite3
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vzcloud.fs.uploads import sha256_file

from .mount_checks import (
    Tree,
    cloud_tree,
    download_tree,
    local_tree,
    wait_cloud_tree,
)
from .mount_harness import MOUNT_TIMEOUT, CloudEnv, Mount, mounted, sha256

pytestmark = MOUNT_TIMEOUT

MiB = 1 << 20


@pytest.fixture(scope="module")
def mnt(env: CloudEnv) -> Iterator[Mount]:
    with mounted(env, "programs") as m:
        yield m


def run(*cmd: str, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 60) -> str:
    """Run a program; fail with its stderr unless it exits 0; returns its stdout."""
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{' '.join(cmd)} exited {done.returncode}: {done.stderr}"
    return done.stdout


def sh(script: str, cwd: Path, **env: str) -> str:
    return run("sh", "-ec", script, cwd=cwd, env={**os.environ, **env})


def figure(text: str) -> None:
    print(f"\n[figure] {text}")


def make_tree(root: Path, rng: random.Random, files: int, dirs: list[str],
              max_size: int = 8192) -> None:
    for d in dirs:
        (root / d).mkdir(parents=True, exist_ok=True)
    for i in range(files):
        d = root / dirs[i % len(dirs)]
        size = 0 if i % 10 == 3 else rng.randrange(1, max_size)
        (d / f"file{i:04d}.dat").write_bytes(rng.randbytes(size))


def assert_same_tree(mount_dir: Path, expected: Tree) -> None:
    got = local_tree(mount_dir)
    assert got == expected, f"the mount differs from the source under {mount_dir}"


# Copying trees ----------------------------------------------------------------------------


def test_cp_a_tree(mnt: Mount, env: CloudEnv, tmp_path: Path):
    rng = random.Random(1)
    src = tmp_path / "src"
    make_tree(src, rng, 49, ["", "a", "a/b", "a/b/c", "a/b/c/d", "e", "e/f"])
    (src / "a" / "b" / "big.bin").write_bytes(rng.randbytes(3 * MiB))
    (src / "empty-dir" / "nested-empty").mkdir(parents=True)
    os.utime(src / "a" / "file0001.dat", ns=(1_600_000_000_123_456_789,) * 2)
    expected = local_tree(src)
    assert sum(v is not None for v in expected.values()) == 50

    started = time.monotonic()
    run("cp", "-a", str(src), str(mnt.vz("cpa")))
    copied = time.monotonic() - started
    dest = mnt.vz("cpa")
    assert_same_tree(dest, expected)
    # cp -a keeps modification times: utimens is honoured locally.
    for rel in ("a/file0001.dat", "a/b/big.bin", "e/f/file0006.dat"):
        assert os.stat(dest / rel).st_mtime_ns == os.stat(src / rel).st_mtime_ns, rel
    waited = wait_cloud_tree(env, "/VZMOBILE/cpa", expected, timeout=40)
    figure(f"cp -a of 50 files (3 MiB + 49 small, 9 dirs): {copied:.2f} s to return, "
           f"{copied + waited:.2f} s until all in the cloud")


def test_tar_x_of_1000_small_files(mnt: Mount, env: CloudEnv, tmp_path: Path):
    rng = random.Random(2)
    src = tmp_path / "src"
    make_tree(src, rng, 1000, [f"d{i}" for i in range(10)], max_size=2000)
    expected = local_tree(src)
    tarball = tmp_path / "small.tar"
    with tarfile.open(tarball, "w") as tar:
        tar.add(src, arcname=".")
    dest = mnt.vz("tarx")
    os.mkdir(dest)

    started = time.monotonic()
    run("tar", "-xf", str(tarball), "-C", str(dest), timeout=80)
    returned = time.monotonic() - started
    waited = wait_cloud_tree(env, "/VZMOBILE/tarx", expected, timeout=75)
    figure(f"tar x of 1,000 small files: {returned:.2f} s to return, "
           f"{returned + waited:.2f} s until all 1,000 are in the cloud")

    files = sorted(p for p, c in expected.items() if c is not None)
    assert len(files) == 1000
    for rel in random.Random(3).sample(files, 25):  # bytes, not only checksums
        assert env.cloud_bytes(f"/VZMOBILE/tarx/{rel}") == (src / rel).read_bytes(), rel
        assert (dest / rel).read_bytes() == (src / rel).read_bytes(), rel


def test_rsync_and_incremental_rsync(mnt: Mount, env: CloudEnv, tmp_path: Path):
    rng = random.Random(4)
    src = tmp_path / "src"
    make_tree(src, rng, 30, ["", "x", "x/y", "z"], max_size=64 * 1024)
    (src / "x" / "large.bin").write_bytes(rng.randbytes(MiB + 7))
    dest = mnt.vz("rsync")

    run("rsync", "-a", f"{src}/", f"{dest}/")
    assert_same_tree(dest, local_tree(src))
    wait_cloud_tree(env, "/VZMOBILE/rsync", local_tree(src))

    # A few changes: longer, shorter, same size (new mtime), new, deleted.
    with open(src / "file0000.dat", "ab") as f:
        f.write(b"appended")
    (src / "x" / "file0001.dat").write_bytes(b"short now")
    same = src / "x" / "y" / "file0002.dat"
    same.write_bytes(rng.randbytes(same.stat().st_size))
    os.utime(same, ns=(1_700_000_000_000_000_000,) * 2)
    (src / "new" / "deeper").mkdir(parents=True)
    (src / "new" / "deeper" / "added.txt").write_bytes(b"added")
    (src / "z" / "file0003.dat").unlink()
    changed = run("rsync", "-ai", "--delete", f"{src}/", f"{dest}/")
    transferred = [line for line in changed.splitlines() if line.startswith(">f")]
    assert len(transferred) == 4, changed
    expected = local_tree(src)
    assert_same_tree(dest, expected)
    wait_cloud_tree(env, "/VZMOBILE/rsync", expected)
    # Byte for byte, as rsync itself sees it: nothing left to send.
    assert run("rsync", "-ai", "--checksum", "--delete", f"{src}/", f"{dest}/") == ""


# Programs with their own file formats -----------------------------------------------------


def test_git_init_add_commit_log(mnt: Mount, env: CloudEnv, tmp_path: Path):
    repo = mnt.vz("gitrepo")
    os.mkdir(repo)
    git_env = {**os.environ, "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1",
               "GIT_AUTHOR_NAME": "Tester", "GIT_AUTHOR_EMAIL": "t@example.com",
               "GIT_COMMITTER_NAME": "Tester", "GIT_COMMITTER_EMAIL": "t@example.com"}

    def git(*args: str, cwd: Path = repo) -> str:
        return run("git", *args, cwd=cwd, env=git_env)

    git("init", "-q", "-b", "main")
    (repo / "README.md").write_text("# demo\n")
    (repo / "src" / "lib").mkdir(parents=True)
    (repo / "src" / "app.py").write_text("print('hello')\n")
    (repo / "src" / "lib" / "util.py").write_text("def f():\n    return 1\n")
    (repo / "empty.txt").write_bytes(b"")
    git("add", "-A")
    git("commit", "-q", "-m", "first")
    (repo / "README.md").write_text("# demo\n\nmore\n")
    git("rm", "-q", "src/app.py")
    (repo / "data.bin").write_bytes(random.Random(5).randbytes(200_000))
    git("add", "-A")
    git("commit", "-q", "-m", "second")

    assert git("log", "--format=%s").splitlines() == ["second", "first"]
    assert git("status", "--porcelain") == ""
    git("fsck", "--strict", "--no-progress")

    # The cloud's copy is the same repository, commits and all.
    wait_cloud_tree(env, "/VZMOBILE/gitrepo", local_tree(repo))
    clone = tmp_path / "from-cloud"
    download_tree(env, "/VZMOBILE/gitrepo", clone)
    git("fsck", "--strict", "--no-progress", cwd=clone)
    assert git("log", "--format=%s", cwd=clone).splitlines() == ["second", "first"]
    assert git("status", "--porcelain", cwd=clone) == ""
    assert (clone / "data.bin").read_bytes() == (repo / "data.bin").read_bytes()


def test_sqlite_database(mnt: Mount, env: CloudEnv, tmp_path: Path):
    d = mnt.vz("sqlite")
    os.mkdir(d)
    db_path = d / "app.db"
    rng = random.Random(6)
    rows = [(i, f"item {i}", rng.randrange(100), rng.randbytes(rng.randrange(300)))
            for i in range(2000)]
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INT, data BLOB)")
    db.execute("CREATE INDEX items_qty ON items(qty)")
    db.execute("BEGIN")
    db.executemany("INSERT INTO items VALUES (?, ?, ?, ?)", rows)
    db.execute("COMMIT")
    db.execute("BEGIN")
    db.execute("UPDATE items SET qty = qty + 1000 WHERE id % 7 = 0")
    db.execute("DELETE FROM items WHERE id % 11 = 0")
    db.execute("COMMIT")
    db.execute("BEGIN")
    db.execute("DELETE FROM items")
    db.execute("ROLLBACK")
    for i in range(20):  # autocommitted statements, one journal each
        db.execute("INSERT INTO items VALUES (?, ?, ?, ?)", (10_000 + i, "late", i, b""))
    survivors = [r for r in rows if r[0] % 11]
    count = len(survivors) + 20
    total = sum(q + (1000 if i % 7 == 0 else 0) for i, _, q, _ in survivors) + sum(range(20))
    assert db.execute("SELECT COUNT(*), SUM(qty) FROM items").fetchone() == (count, total)
    assert db.execute("SELECT name FROM items WHERE id = 14").fetchone() == ("item 14",)
    db.close()

    db = sqlite3.connect(db_path)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.execute("SELECT COUNT(*), SUM(qty) FROM items").fetchone() == (count, total)
    db.close()
    out = run("sqlite3", str(db_path), "PRAGMA integrity_check; SELECT COUNT(*) FROM items;")
    assert out.split() == ["ok", str(count)]

    # Only the database reached the cloud (no journal), and it is a sound database.
    assert sorted(os.listdir(d)) == ["app.db"]
    wait_cloud_tree(env, "/VZMOBILE/sqlite", {"app.db": sha256_file(db_path)})
    copy = tmp_path / "copy.db"
    env.sdk.download("/VZMOBILE/sqlite/app.db", copy)
    db = sqlite3.connect(copy)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.execute("SELECT COUNT(*), SUM(qty) FROM items").fetchone() == (count, total)
    db.close()


# Shell patterns ---------------------------------------------------------------------------


def test_editor_style_saves_from_the_shell(mnt: Mount, env: CloudEnv):
    d = mnt.vz("editor")
    os.mkdir(d)
    sh("printf 'first draft\\n' > notes.txt", d)
    env.wait_cloud_bytes("/VZMOBILE/editor/notes.txt", b"first draft\n")
    # Write a temporary file and fsync it (coreutils sync FILE): once sync returns, the
    # cloud has it.
    sh("printf 'second draft\\n' > .notes.txt.swp && sync .notes.txt.swp", d)
    assert env.cloud_bytes("/VZMOBILE/editor/.notes.txt.swp") == b"second draft\n"
    sh("mv -f .notes.txt.swp notes.txt", d)
    assert os.listdir(d) == ["notes.txt"]
    assert (d / "notes.txt").read_bytes() == b"second draft\n"
    wait_cloud_tree(env, "/VZMOBILE/editor", {"notes.txt": sha256(b"second draft\n")})
    # The backup-then-write way (vim's default): rename the original aside, write a
    # new file under the name, remove the backup.
    sh("mv notes.txt notes.txt~ && printf 'third draft\\n' > notes.txt && rm notes.txt~", d)
    assert os.listdir(d) == ["notes.txt"]
    wait_cloud_tree(env, "/VZMOBILE/editor", {"notes.txt": sha256(b"third draft\n")})


def test_appends_from_the_shell(mnt: Mount, env: CloudEnv, tmp_path: Path):
    d = mnt.vz("appends")
    os.mkdir(d)
    sh('for i in $(seq 1 40); do echo "line $i" >> log.txt; done', d)
    model = b"".join(f"line {i}\n".encode() for i in range(1, 41))
    assert (d / "log.txt").read_bytes() == model
    env.wait_cloud_bytes("/VZMOBILE/appends/log.txt", model)
    # Appending to a file already uploaded (its content now comes from the cache).
    chunk = tmp_path / "chunk"
    chunk.write_bytes(random.Random(7).randbytes(300_000))
    sh(f'cat "{chunk}" >> log.txt && printf "tail" >> log.txt', d)
    model += chunk.read_bytes() + b"tail"
    assert (d / "log.txt").read_bytes() == model
    assert os.stat(d / "log.txt").st_size == len(model)
    env.wait_cloud_bytes("/VZMOBILE/appends/log.txt", model)


def test_dd_random_writes_and_truncate(mnt: Mount, env: CloudEnv, tmp_path: Path):
    d = mnt.vz("dd")
    os.mkdir(d)
    rng = random.Random(8)
    model = bytearray(rng.randbytes(2 * MiB + 100))
    # Uploaded by someone else: the mount must start from the cloud's content.
    env.sdk.upload(io.BytesIO(bytes(model)), "/VZMOBILE/dd", name="disk.img")
    mnt.sync_now()
    deadline = time.monotonic() + 15
    while not (d / "disk.img").exists():
        assert time.monotonic() < deadline, "the SDK's upload never appeared in the mount"
        time.sleep(0.1)
    img = d / "disk.img"
    patch = tmp_path / "patch"
    for offset, size in ((0, 512), (MiB - 10, 4096), (2 * MiB + 50, 100),
                         (3 * MiB, 10), (123_457, 70_000)):
        data = rng.randbytes(size)
        patch.write_bytes(data)
        run("dd", f"if={patch}", f"of={img}", "bs=64K", f"seek={offset}", "oflag=seek_bytes",
            "conv=notrunc", "status=none")
        if offset > len(model):  # a write past EOF: the gap reads as zeros
            model += bytes(offset - len(model))
        model[offset:offset + size] = data
        assert os.stat(img).st_size == len(model)
    assert img.read_bytes() == bytes(model)
    env.wait_cloud_bytes("/VZMOBILE/dd/disk.img", bytes(model))

    run("truncate", "-s", "1500000", str(img))
    del model[1_500_000:]
    run("truncate", "-s", "1600000", str(img))
    model += bytes(100_000)
    run("dd", f"if={patch}", f"of={img}", "bs=64K", "seek=1550000", "oflag=seek_bytes",
        "conv=notrunc", "status=none")
    model[1_550_000:1_620_000] = patch.read_bytes()
    assert img.read_bytes() == bytes(model)
    env.wait_cloud_bytes("/VZMOBILE/dd/disk.img", bytes(model))


# Namespace ---------------------------------------------------------------------------------


def build_deep_tree(root: Path, rng: random.Random) -> Tree:
    levels = ["a", "b", "c", "d", "e", "f", "g"]
    path = root
    for level in levels:
        path = path / level
        path.mkdir(parents=True)
        for i in range(3):
            (path / f"{level}{i}.txt").write_bytes(rng.randbytes(rng.randrange(1, 3000)))
    (root / "a" / "side" / "branch").mkdir(parents=True)
    (root / "a" / "side" / "branch" / "leaf.bin").write_bytes(rng.randbytes(100_000))
    (root / "a" / "b" / "empty").mkdir()
    return local_tree(root / "a")


def check_moved(env: CloudEnv, new: Path, cloud_new: str, expected: Tree, old: Path) -> None:
    assert not old.exists()
    for rel, checksum in expected.items():  # every file readable under the new path
        if checksum is not None:
            assert sha256_file(new / rel) == checksum, rel
    assert local_tree(new) == expected
    wait_cloud_tree(env, cloud_new, expected)


def test_mv_of_a_deep_tree(mnt: Mount, env: CloudEnv):
    d = mnt.vz("mvtree")
    os.mkdir(d)
    expected = build_deep_tree(d, random.Random(9))
    wait_cloud_tree(env, "/VZMOBILE/mvtree/a", expected)
    run("mv", str(d / "a"), str(d / "renamed"))
    check_moved(env, d / "renamed", "/VZMOBILE/mvtree/renamed", expected, d / "a")
    os.makedirs(d / "other" / "inner")
    run("mv", str(d / "renamed"), str(d / "other" / "inner" / "moved"))
    check_moved(env, d / "other" / "inner" / "moved", "/VZMOBILE/mvtree/other/inner/moved",
                expected, d / "renamed")
    assert set(cloud_tree(env, "/VZMOBILE/mvtree")) == {"other", "other/inner"} | {
        f"other/inner/moved/{rel}" for rel in expected} | {"other/inner/moved"}


def test_mv_of_a_deep_tree_still_uploading(mnt: Mount, env: CloudEnv):
    d = mnt.vz("mvfresh")
    os.mkdir(d)
    expected = build_deep_tree(d, random.Random(10))
    run("mv", str(d / "a"), str(d / "renamed"))  # most uploads are still queued
    check_moved(env, d / "renamed", "/VZMOBILE/mvfresh/renamed", expected, d / "a")
    assert set(cloud_tree(env, "/VZMOBILE/mvfresh")) == {"renamed"} | {
        f"renamed/{rel}" for rel in expected}


def test_unlink_while_open_in_a_shell(mnt: Mount, env: CloudEnv, tmp_path: Path):
    d = mnt.vz("openrm")
    os.mkdir(d)
    data = random.Random(11).randbytes(700_000)
    (d / "held.bin").write_bytes(data)
    env.wait_cloud_bytes("/VZMOBILE/openrm/held.bin", data)
    out = tmp_path / "read-after-rm"
    listing = sh(f'exec 3< held.bin; rm held.bin; ls -A; cat <&3 > "{out}"', d)
    assert listing == ""
    assert out.read_bytes() == data
    # A file written, unlinked while still open for writing, written again and reopened
    # through /proc: the open file keeps all of it; it never reaches the cloud.
    out2 = tmp_path / "written-after-rm"
    sh(f'exec 4> scratch.txt; printf before >&4; rm scratch.txt; printf after >&4; '
       f'cat /proc/self/fd/4 > "{out2}"; exec 4>&-', d)
    assert out2.read_bytes() == b"beforeafter"
    assert os.listdir(d) == []
    (d / "marker").write_bytes(b"m")
    env.wait_cloud_bytes("/VZMOBILE/openrm/marker", b"m")
    assert cloud_tree(env, "/VZMOBILE/openrm") == {"marker": sha256(b"m")}
    assert "held.bin" in [f.name for f in env.sdk.trash("VZMOBILE", count=100).files]


def test_mount_survives(mnt: Mount):
    """Last: nothing above killed the mount, and it logged no unexpected failure."""
    assert mnt.proc.poll() is None
    log = mnt.stderr()
    assert "failed unexpectedly" not in log and "Traceback" not in log, log[-3000:]
    assert shutil.disk_usage(mnt.path).total > 0
