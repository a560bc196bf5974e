"""The cloud's own features through a real mount (``fs.special``, ``fs.xattrs``):
``.favorites`` (ln -s / rm round-trips with the cloud), ``.trash`` (listing, restore by
mv, read-only), extended attributes (tags and favorite round-trips, read-only ones), and
the special names at the root. What reached the cloud is checked through the SDK; what
"another device" does is done through the SDK too.

One mount for the module, polling every POLL seconds; each test works in a folder of its
own.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .mount_harness import MOUNT_TIMEOUT, CloudEnv, Mount, mounted

pytestmark = MOUNT_TIMEOUT

POLL = 0.5


@pytest.fixture(scope="module")
def mnt(env: CloudEnv) -> Iterator[Mount]:
    with mounted(env, "special", args=("--poll-interval", str(POLL))) as m:
        yield m


def wait_for(predicate: Callable[[], bool], timeout: float = 10, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def write_synced(path: Path, data: bytes) -> None:
    """Write a file and wait until the cloud has it (fsync)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def errno_of(fn: Callable[[], object]) -> int:
    with pytest.raises(OSError) as e:
        fn()
    return e.value.errno or 0


def cloud_favorites(env: CloudEnv) -> set[str]:
    listing = env.sdk.favorites(virtualfolder="*")
    return {f.path for f in [*listing.files, *listing.folders]}


# .favorites ---------------------------------------------------------------------------


def test_favorites_by_symlink_round_trip(mnt: Mount, env: CloudEnv):
    favs = mnt.path / ".favorites"
    assert sorted(os.listdir(mnt.path))[:2] == [".favorites", ".trash"]
    d = mnt.vz("fav")
    os.makedirs(d / "dir")
    write_synced(d / "a.txt", b"favorite content")
    write_synced(d / "dir" / "inner.txt", b"inside")  # a folder with files
    os.makedirs(mnt.path / "VZWEB" / "fav")
    write_synced(mnt.path / "VZWEB" / "fav" / "a.txt", b"same name, other folder")

    # ln -s with an absolute target, a relative one, and a name clash.
    subprocess.run(["ln", "-s", str(d / "a.txt"), str(favs) + "/"], check=True)
    os.symlink("../VZMOBILE/fav/dir", favs / "dir")
    subprocess.run(["ln", "-s", str(mnt.path / "VZWEB" / "fav" / "a.txt"), str(favs) + "/"],
                   check=False)  # ln refuses: a.txt exists in .favorites already
    os.symlink(str(mnt.path / "VZWEB" / "fav" / "a.txt"), favs / "other-name")
    assert sorted(os.listdir(favs)) == ["a (2).txt", "a.txt", "dir"]
    assert os.readlink(favs / "a.txt") == "../VZMOBILE/fav/a.txt"
    assert os.readlink(favs / "a (2).txt") == "../VZWEB/fav/a.txt"
    assert (favs / "a.txt").read_bytes() == b"favorite content"
    assert (favs / "a (2).txt").read_bytes() == b"same name, other folder"
    assert os.listdir(favs / "dir") == ["inner.txt"]
    assert os.lstat(favs / "dir").st_ino != os.stat(favs / "dir").st_ino
    assert cloud_favorites(env) >= {"/VZMOBILE/fav/a.txt", "/VZMOBILE/fav/dir",
                                    "/VZWEB/fav/a.txt"}
    assert os.getxattr(d / "a.txt", "user.vzcloud.favorite") == b"1"

    # Refusals.
    assert errno_of(lambda: os.symlink(str(d / "a.txt"), favs / "again")) == errno.EEXIST
    assert errno_of(lambda: os.symlink("/etc/passwd", favs / "x")) == errno.EXDEV
    assert errno_of(lambda: os.symlink("../VZMOBILE/fav/none", favs / "x")) == errno.ENOENT
    assert errno_of(lambda: open(favs / "new.txt", "wb")) == errno.EPERM
    assert errno_of(lambda: os.mkdir(favs / "sub")) == errno.EPERM
    assert errno_of(lambda: os.rename(favs / "a.txt", favs / "b.txt")) == errno.EPERM
    assert errno_of(lambda: os.rmdir(favs)) == errno.EPERM
    assert errno_of(lambda: os.symlink("x", d / "link")) == errno.EPERM  # only there

    # rm of the link unfavorites, in the cloud too; the file stays.
    os.unlink(favs / "a.txt")
    assert "/VZMOBILE/fav/a.txt" not in cloud_favorites(env)
    assert (d / "a.txt").read_bytes() == b"favorite content"
    assert sorted(os.listdir(favs)) == ["a.txt", "dir"]  # the VZWEB one has the plain name
    assert os.readlink(favs / "a.txt") == "../VZWEB/fav/a.txt"

    # Another device: favorites and unfavorites; the mount follows within two polls.
    env.sdk.upload(io.BytesIO(b"from the phone"), "/VZMOBILE/fav", name="phone.jpg")
    env.sdk.favorite(env.sdk.file_metadata("/VZMOBILE/fav/phone.jpg").uri)
    env.sdk.unfavorite(env.sdk.file_metadata("/VZMOBILE/fav/dir").uri)
    wait_for(lambda: sorted(os.listdir(favs)) == ["a.txt", "phone.jpg"], 4 * POLL + 2,
             "the other device's favorites")
    assert (favs / "phone.jpg").read_bytes() == b"from the phone"


def test_favorite_folders_known_after_a_fresh_mount(mnt: Mount, env: CloudEnv):
    """A first fullview lists only folders without files: favorite folders with files
    come from the favorites listing."""
    env.sdk.create_folder("/VZMOBILE/favfresh")
    env.sdk.create_folder("/VZMOBILE/favfresh/full")
    env.sdk.upload(io.BytesIO(b"x"), "/VZMOBILE/favfresh/full", name="x.txt")
    env.sdk.favorite(env.sdk.file_metadata("/VZMOBILE/favfresh/full").uri)
    with mounted(env, "fresh", args=("--poll-interval", str(POLL))) as fresh:
        favs = fresh.path / ".favorites"
        assert "full" in os.listdir(favs)
        assert os.readlink(favs / "full") == "../VZMOBILE/favfresh/full"
        assert os.listdir(favs / "full") == ["x.txt"]


# .trash --------------------------------------------------------------------------------


def test_trash_listing_read_only_and_restore_by_mv(mnt: Mount, env: CloudEnv):
    d = mnt.vz("tr")
    os.makedirs(d / "d" / "deeper")
    write_synced(d / "keep.txt", b"keep me")
    write_synced(d / "d" / "inner.txt", b"inner bytes")
    write_synced(d / "d" / "deeper" / "leaf.txt", b"leaf")
    os.unlink(d / "keep.txt")  # through the mount: the cloud's trash
    env.sdk.delete("/VZMOBILE/tr/d")  # another device trashes a folder
    wait_for(lambda: not (d / "d").exists(), 4 * POLL + 2, "the remote delete")

    trash = mnt.path / ".trash"
    assert {"VZMOBILE", "VZWEB", "MyComputer"} <= set(os.listdir(trash))
    tr = trash / "VZMOBILE" / "tr"
    assert sorted(os.listdir(tr)) == ["d", "keep.txt"]
    assert sorted(os.listdir(tr / "d")) == ["deeper", "inner.txt"]
    st = os.stat(tr / "keep.txt")
    assert st.st_size == len(b"keep me") and abs(st.st_mtime - time.time()) < 600
    assert os.stat(tr / "d" / "deeper" / "leaf.txt").st_size == 4
    found = subprocess.run(["find", str(trash / "VZMOBILE" / "tr"), "-type", "f"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert sorted(found) == sorted(str(tr / p) for p in
                                   ("keep.txt", "d/inner.txt", "d/deeper/leaf.txt"))
    listing = subprocess.run(["ls", "-la", str(tr)], capture_output=True, text=True,
                             check=True).stdout
    assert "keep.txt" in listing and " 7 " in listing
    inos = [os.stat(p).st_ino for p in (tr, tr / "d", tr / "keep.txt", mnt.vz())]
    assert len(set(inos)) == 4

    # Read-only: every change but a move out is refused.
    assert errno_of(lambda: open(tr / "keep.txt", "rb")) == errno.EACCES
    assert errno_of(lambda: open(tr / "new.txt", "wb")) == errno.EROFS
    assert errno_of(lambda: os.mkdir(tr / "new")) == errno.EROFS
    assert errno_of(lambda: os.unlink(tr / "keep.txt")) == errno.EROFS
    assert errno_of(lambda: os.rename(tr / "keep.txt", tr / "d" / "k.txt")) == errno.EROFS
    assert errno_of(lambda: os.truncate(tr / "keep.txt", 0)) == errno.EROFS
    assert errno_of(lambda: os.setxattr(tr / "keep.txt", "user.vzcloud.favorite", b"1")) \
        == errno.EROFS
    assert errno_of(lambda: os.rename(mnt.vz("fav"), tr / "fav")) == errno.EROFS
    assert errno_of(lambda: os.rmdir(trash)) == errno.EPERM
    assert errno_of(lambda: os.mkdir(trash)) == errno.EEXIST
    # tr itself is live: only the items inside it are in the trash.
    assert errno_of(lambda: os.rename(tr, mnt.vz("tr2"))) == errno.EPERM

    # Restore by mv: to the original path...
    os.rename(tr / "keep.txt", d / "keep.txt")
    assert (d / "keep.txt").read_bytes() == b"keep me"
    assert env.cloud_bytes("/VZMOBILE/tr/keep.txt") == b"keep me"
    assert "keep.txt" not in os.listdir(tr)
    # ... and elsewhere (restored, then moved), a whole folder.
    os.rename(tr / "d", mnt.vz("restored"))
    assert env.cloud_bytes("/VZMOBILE/restored/deeper/leaf.txt") == b"leaf"
    wait_for(lambda: (mnt.vz("restored", "deeper", "leaf.txt")).exists(), 4 * POLL + 2,
             "the restored folder's contents")
    assert mnt.vz("restored", "inner.txt").read_bytes() == b"inner bytes"
    assert not (tr / "d").exists()
    # Restoring never replaces a live item.
    write_synced(d / "twice.txt", b"one")
    os.unlink(d / "twice.txt")
    write_synced(d / "twice.txt", b"two")
    assert errno_of(lambda: os.rename(tr / "twice.txt", d / "twice.txt")) == errno.EEXIST
    assert errno_of(lambda: os.rename(tr / "twice.txt", d / "other.txt")) == errno.EEXIST


# Extended attributes -------------------------------------------------------------------


def test_xattrs_round_trip_with_the_cloud(mnt: Mount, env: CloudEnv):
    d = mnt.vz("xa")
    os.makedirs(d / "folder")
    data = b"tagged content"
    write_synced(d / "f.txt", data)
    write_synced(d / "folder" / "in.txt", b"in")
    f = d / "f.txt"
    meta = env.sdk.file_metadata("/VZMOBILE/xa/f.txt")
    names = set(os.listxattr(f))
    assert names == {"user.vzcloud.favorite", "user.vzcloud.checksum", "user.vzcloud.uri",
                     "user.vzcloud.content_type", "user.vzcloud.version"}
    assert os.getxattr(f, "user.vzcloud.checksum") == hashlib.sha256(data).hexdigest().encode()
    assert os.getxattr(f, "user.vzcloud.uri") == meta.uri.encode()
    assert os.getxattr(f, "user.vzcloud.version") == str(meta.version).encode()
    assert os.getxattr(f, "user.vzcloud.content_type") == meta.mime_type.encode()
    assert os.getxattr(f, "user.vzcloud.favorite") == b"0"

    # tags: write (the cloud normalises), read back, changed by another device, removed.
    os.setxattr(f, "user.vzcloud.tags", b" beach, Sun ,,beach")
    assert env.sdk.tags("/VZMOBILE/xa/f.txt") == ["beach", "Sun"]
    assert os.getxattr(f, "user.vzcloud.tags") == b"beach,Sun"
    env.sdk.tag(meta.uri, "work")
    wait_for(lambda: os.getxattr(f, "user.vzcloud.tags") == b"work", 4 * POLL + 2,
             "the other device's tags")
    os.removexattr(f, "user.vzcloud.tags")
    assert env.sdk.tags("/VZMOBILE/xa/f.txt") == []
    assert errno_of(lambda: os.getxattr(f, "user.vzcloud.tags")) == errno.ENODATA
    assert errno_of(lambda: os.removexattr(f, "user.vzcloud.tags")) == errno.ENODATA

    # favorite: 1/0, both ways.
    os.setxattr(f, "user.vzcloud.favorite", b"1")
    assert "/VZMOBILE/xa/f.txt" in cloud_favorites(env)
    assert "f.txt" in os.listdir(mnt.path / ".favorites")
    env.sdk.unfavorite(meta.uri)
    wait_for(lambda: os.getxattr(f, "user.vzcloud.favorite") == b"0", 4 * POLL + 2,
             "the other device's unfavorite")
    assert errno_of(lambda: os.setxattr(f, "user.vzcloud.favorite", b"yes")) == errno.EINVAL

    # A folder with files (not described by the first fullview) has them too.
    folder = d / "folder"
    assert os.getxattr(folder, "user.vzcloud.uri") == \
        env.sdk.file_metadata("/VZMOBILE/xa/folder").uri.encode()
    os.setxattr(folder, "user.vzcloud.tags", b"album")
    assert env.sdk.tags("/VZMOBILE/xa/folder") == ["album"]

    # Read-only and unknown names.
    for name in ("user.vzcloud.checksum", "user.vzcloud.uri", "user.vzcloud.content_type",
                 "user.vzcloud.version"):
        assert errno_of(lambda n=name: os.setxattr(f, n, b"x")) == errno.EPERM
        assert errno_of(lambda n=name: os.removexattr(f, n)) == errno.EPERM
    assert errno_of(lambda: os.getxattr(f, "user.vzcloud.colour")) == errno.ENODATA
    assert errno_of(lambda: os.getxattr(f, "user.other")) == errno.ENODATA
    assert errno_of(lambda: os.setxattr(f, "user.other", b"x")) == errno.ENOTSUP
    assert errno_of(lambda: os.getxattr(mnt.path / ".trash", "user.vzcloud.uri")) \
        == errno.ENODATA

    # getfattr -d lists them (the attr package: scripts/bootstrap).
    dump = subprocess.run(["getfattr", "-d", str(f)], capture_output=True, text=True,
                          check=True).stdout
    assert f'user.vzcloud.checksum="{hashlib.sha256(data).hexdigest()}"' in dump
    assert 'user.vzcloud.favorite="0"' in dump


# Names at the root ---------------------------------------------------------------------


def test_special_names_never_collide_with_virtual_folders(mnt: Mount, env: CloudEnv):
    assert errno_of(lambda: os.mkdir(mnt.path / ".favorites")) == errno.EEXIST
    assert errno_of(lambda: os.rename(mnt.path / "VZWEB", mnt.path / ".trash")) == errno.EEXIST
    # A virtual folder made elsewhere with a reserved name is hidden in the mount.
    env.sdk.create_virtualfolder(".trash")
    env.sdk.create_virtualfolder("Visible")
    try:
        wait_for(lambda: "Visible" in os.listdir(mnt.path), 4 * POLL + 2, "the new folder")
        assert sorted(os.listdir(mnt.path)).count(".trash") == 1
        assert "VZMOBILE" in os.listdir(mnt.path / ".trash")  # still the special one
        assert ".trash" not in os.listdir(mnt.path / ".trash")
    finally:
        env.sdk.delete_virtualfolder(".trash", force=True)
