"""The benchmark's data set: on disk (local directory, rclone's served directory) and in
the embedded cloud, the same files under the same relative paths.

Layout, relative to a system's ``main`` and ``tree`` directories:

- ``main/big.bin``: ``Sizes.big_file`` pseudo-random bytes (every MiB differs, so nothing
  can deduplicate or compress it);
- ``main/ls/f00000...``: ``Sizes.ls_entries`` files of ``SMALL_CONTENT``;
- ``main/tiny/t00000...``: ``Sizes.tiny_files`` files of 64 to 4,096 distinct bytes each
  (distinct, so a cache keyed by content cannot serve one from another);
- ``main/scratch/``: empty; the write workloads write there;
- ``tree/d000/f0000...``: ``Sizes.tree_dirs`` folders of ``Sizes.tree_files_per_dir``
  files of ``SMALL_CONTENT`` (the find and remount workloads).

On disk, ``data/main`` and ``data/tree`` hold it (``build_local``). In the cloud
(``build_cloud``) ``main`` is ``/VZMOBILE/bench`` of the user ``bench`` and ``tree`` is
``/VZMOBILE/tree`` of the user ``benchtree``: a separate account, so the 100,000-file
account's remount is measured on its own and the other workloads' mounts stay small.
Cloud items are inserted with the store's helpers in one transaction per account (each
recorded with ``log_change``), and blob files are written straight into the blob store,
named by checksum; the server is not running meanwhile.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import tarfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from vzcloud.api.models import Token
from vzcloud.server.admin import Client, create_client, create_user, tokens_for
from vzcloud.server.app import CloudServer
from vzcloud.server.config import ServerConfig
from vzcloud.server.store import Store

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
SMALL_CONTENT = b"benchmark file\n" * 6 + b"0123456789"  # 100 bytes
MAIN_USER = "bench"
TREE_USER = "benchtree"
MAIN_CLOUD_DIR = "/VZMOBILE/bench"
TREE_CLOUD_DIR = "/VZMOBILE/tree"
TAR_DIRS = 10  # the tar archive's files are spread over this many folders


@dataclass(frozen=True)
class Sizes:
    """How big each part of the data set is (``FULL`` or ``QUICK``)."""

    big_file: int = GiB
    random_reads: int = 2000
    random_read_size: int = 4 * KiB
    write_size: int = GiB
    tar_files: int = 1000
    ls_entries: int = 10_000
    tiny_files: int = 10_000
    tree_dirs: int = 100
    tree_files_per_dir: int = 1000

    @property
    def tree_entries(self) -> int:
        return self.tree_dirs * (self.tree_files_per_dir + 1)


FULL = Sizes()
QUICK = replace(FULL, big_file=64 * MiB, random_reads=200, write_size=64 * MiB,
                tar_files=100, ls_entries=1000, tiny_files=500, tree_dirs=10,
                tree_files_per_dir=500)


def only_needed(sizes: Sizes, workloads: list[str]) -> Sizes:
    """``sizes`` without the parts none of ``workloads`` uses (they are built empty)."""
    uses = set(workloads)
    return replace(
        sizes,
        big_file=sizes.big_file if uses & {"seqread", "randread"} else 0,
        random_reads=sizes.random_reads if "randread" in uses else 0,
        ls_entries=sizes.ls_entries if "ls" in uses else 0,
        tiny_files=sizes.tiny_files if "cat" in uses else 0,
        tree_dirs=sizes.tree_dirs if uses & {"find", "mount"} else 0,
    )


@dataclass(frozen=True)
class Expected:
    """A file a write workload must find stored: size and sha256."""

    size: int
    sha256: str


@dataclass
class DataSet:
    """What was built, and what the workloads need to check their results."""

    sizes: Sizes
    work: Path
    local: Path  # holds main/ and tree/ (the local system and rclone's served directory)
    big_sha256: str = ""
    tiny_list: Path = field(default_factory=Path)  # NUL-separated names in main/tiny
    tar_archive: Path = field(default_factory=Path)
    tar_members: dict[str, Expected] = field(default_factory=dict)  # relative path -> file
    random_offsets: list[int] = field(default_factory=list)

    @property
    def main(self) -> Path:
        return self.local / "main"

    @property
    def tree(self) -> Path:
        return self.local / "tree"


@dataclass
class CloudCredentials:
    """What the mounts and the checks need to reach the embedded cloud."""

    client: Client
    main_mount: Token
    tree_mount: Token
    main_checks: Token  # the benchmark's own SDK client (a separate token family)


def ls_name(i: int) -> str:
    return f"f{i:05d}"


def tiny_name(i: int) -> str:
    return f"t{i:05d}"


def tree_dir_name(i: int) -> str:
    return f"d{i:03d}"


def tree_file_name(i: int) -> str:
    return f"f{i:04d}"


def big_blocks(size: int, seed: int = 0) -> tuple[bytearray, int]:
    """A 1 MiB buffer to write ``size`` bytes from, and the block count: block ``i`` is the
    buffer with ``i`` and ``seed`` in its first 16 bytes (``fill_block``)."""
    rng = random.Random(seed)
    return bytearray(rng.randbytes(MiB)), -(-size // MiB)


def fill_block(buf: bytearray, i: int, seed: int) -> None:
    buf[:16] = i.to_bytes(8, "little") + seed.to_bytes(8, "little")


def pseudo_random_sha256(size: int, seed: int) -> str:
    """The sha256 of what ``write_pseudo_random(..., size, seed)`` writes."""
    buf, count = big_blocks(size, seed)
    digest = hashlib.sha256()
    view = memoryview(buf)
    for i in range(count):
        fill_block(buf, i, seed)
        digest.update(view[: min(MiB, size - i * MiB)])
    return digest.hexdigest()


def write_pseudo_random(fd: int, size: int, seed: int) -> None:
    """Write ``size`` incompressible bytes (1 MiB writes) to an open descriptor."""
    buf, count = big_blocks(size, seed)
    view = memoryview(buf)
    for i in range(count):
        fill_block(buf, i, seed)
        chunk = view[: min(MiB, size - i * MiB)]
        while chunk:
            chunk = chunk[os.write(fd, chunk):]


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def build_local(sizes: Sizes, work: Path) -> DataSet:
    """The data set on disk under ``work/data``, plus the tar archive and the lists the
    workloads use. Returns what was built."""
    ds = DataSet(sizes, work, work / "data")
    main, tree = ds.main, ds.tree
    for folder in (main / "ls", main / "tiny", main / "scratch", tree):
        folder.mkdir(parents=True, exist_ok=True)

    fd = os.open(main / "big.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_pseudo_random(fd, sizes.big_file, seed=0)
    finally:
        os.close(fd)
    ds.big_sha256 = pseudo_random_sha256(sizes.big_file, seed=0)

    for i in range(sizes.ls_entries):
        _write(main / "ls" / ls_name(i), SMALL_CONTENT)
    rng = random.Random(1)
    names = []
    for i in range(sizes.tiny_files):
        name = tiny_name(i)
        _write(main / "tiny" / name, name.encode() + rng.randbytes(rng.randint(64, 4096) - 6))
        names.append(name)
    ds.tiny_list = work / "tiny.list"
    ds.tiny_list.write_bytes(b"\0".join(n.encode() for n in names))

    for d in range(sizes.tree_dirs):
        subdir = tree / tree_dir_name(d)
        subdir.mkdir()
        for f in range(sizes.tree_files_per_dir):
            _write(subdir / tree_file_name(f), SMALL_CONTENT)

    ds.tar_archive = work / "files.tar"
    ds.tar_members = _build_tar(ds.tar_archive, sizes.tar_files)
    offsets_rng = random.Random(2)
    slots = max(1, sizes.big_file // sizes.random_read_size)
    ds.random_offsets = [offsets_rng.randrange(slots) * sizes.random_read_size
                         for _ in range(sizes.random_reads)]
    return ds


def _build_tar(path: Path, count: int) -> dict[str, Expected]:
    """An archive of ``count`` files of 1 to 16 KiB of distinct bytes, in TAR_DIRS
    folders; returns each member's relative path and expected content."""
    rng = random.Random(3)
    members: dict[str, Expected] = {}
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for d in range(TAR_DIRS):
            info = tarfile.TarInfo(f"dir{d:02d}")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
            tar.addfile(info)
        for i in range(count):
            data = rng.randbytes(rng.randint(KiB, 16 * KiB))
            name = f"dir{i % TAR_DIRS:02d}/file{i:04d}.dat"
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
            members[name] = Expected(len(data), hashlib.sha256(data).hexdigest())
    return members


# The embedded cloud -----------------------------------------------------------------------


class _Inserter:
    """Bulk insertion into one account inside the caller's transaction."""

    def __init__(self, cloud: CloudServer, username: str) -> None:
        self.cloud = cloud
        self.store: Store = cloud.store
        account = self.store.account_by_username(username)
        assert account is not None
        self.account = account
        self.stored_blobs: set[str] = set()

    def folder_id(self, path: str) -> int:
        return int(self.store.resolve_folder(self.account, path)["id"])

    def folder(self, parent_id: int, name: str) -> int:
        item = self.store.insert_item(self.account.id, parent_id, name, is_folder=True)
        self.store.log_change(self.account.id, item_id=item)
        return item

    def blob(self, data: bytes) -> str:
        """Store ``data`` as a blob (no fsync: a benchmark's data set); its checksum."""
        checksum = hashlib.sha256(data).hexdigest()
        if checksum not in self.stored_blobs:
            target = self.cloud.blobs.path(checksum)
            target.parent.mkdir(parents=True, exist_ok=True)
            _write(target, data)
            self.stored_blobs.add(checksum)
        return checksum

    def blob_from_file(self, path: Path, checksum: str) -> str:
        target = self.cloud.blobs.path(checksum)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        return checksum

    def file(self, parent_id: int, name: str, size: int, checksum: str) -> None:
        item = self.store.insert_item(self.account.id, parent_id, name, is_folder=False,
                                      size=size, checksum=checksum,
                                      mime_type="application/octet-stream")
        self.store.log_change(self.account.id, item_id=item)


def build_cloud(ds: DataSet, data_dir: Path) -> CloudCredentials:
    """A new embedded cloud in ``data_dir`` holding the data set (see the module
    docstring), an OAuth client and tokens for the mounts and the checks. The server must
    not be running; start it afterwards on the same directory."""
    sizes = ds.sizes
    cloud = CloudServer(ServerConfig(data_dir=data_dir))
    try:
        client = create_client(cloud, redirect_uri="http://127.0.0.1:9/callback",
                               name="benchmark")
        for user in (MAIN_USER, TREE_USER):
            create_user(cloud, user)

        main = _Inserter(cloud, MAIN_USER)
        with cloud.store.tx():
            bench = main.folder(main.folder_id("/VZMOBILE"), "bench")
            main.file(bench, "big.bin", sizes.big_file,
                      main.blob_from_file(ds.main / "big.bin", ds.big_sha256))
            small = main.blob(SMALL_CONTENT)
            ls_dir = main.folder(bench, "ls")
            for i in range(sizes.ls_entries):
                main.file(ls_dir, ls_name(i), len(SMALL_CONTENT), small)
            tiny_dir = main.folder(bench, "tiny")
            for i in range(sizes.tiny_files):
                data = (ds.main / "tiny" / tiny_name(i)).read_bytes()
                main.file(tiny_dir, tiny_name(i), len(data), main.blob(data))
            main.folder(bench, "scratch")

        tree = _Inserter(cloud, TREE_USER)
        with cloud.store.tx():
            top = tree.folder(tree.folder_id("/VZMOBILE"), "tree")
            small = tree.blob(SMALL_CONTENT)
            for d in range(sizes.tree_dirs):
                folder_id = tree.folder(top, tree_dir_name(d))
                for f in range(sizes.tree_files_per_dir):
                    tree.file(folder_id, tree_file_name(f), len(SMALL_CONTENT), small)

        return CloudCredentials(
            client,
            main_mount=tokens_for(cloud, MAIN_USER, client.client_id),
            tree_mount=tokens_for(cloud, TREE_USER, client.client_id),
            main_checks=tokens_for(cloud, MAIN_USER, client.client_id),
        )
    finally:
        cloud.close()
