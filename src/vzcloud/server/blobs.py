"""Content-addressed blob files: ``blobs/ab/cd/<sha256 hex>`` under the data directory.

A blob is written to ``tmp/`` first, hashed while written, fsynced, then renamed (or
hard-linked, ``place``) into place and its folder fsynced, so a crash never leaves a
partial blob under a real name. Writing a checksum that exists already keeps the
existing file (deduplication). Whether a blob is still needed is decided by the store
(``versions.checksum``); this module only does file work.

``WalSync`` makes SQLite commits made with ``synchronous=NORMAL`` durable with one
fdatasync of the write-ahead log shared by every thread waiting at the time (group
commit): concurrent uploads wait for one disk flush, not one each in turn under the
store lock.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

HEX64 = re.compile(r"^[0-9a-f]{64}$")
COPY_BUFFER = 1 << 20


class BlobWriter:
    """A temporary file being filled; ``sha256`` and ``size`` track what was written."""

    def __init__(self, path: Path, check_space: Callable[[int], None] | None = None) -> None:
        self.path = path
        self.file: BinaryIO = open(path, "wb")  # closed by close() or abort()
        self.hash = hashlib.sha256()
        self.size = 0
        self.check_space = check_space

    def write(self, data: bytes) -> None:
        if self.check_space is not None:
            self.check_space(len(data))
        self.file.write(data)
        self.hash.update(data)
        self.size += len(data)

    @property
    def sha256(self) -> str:
        return self.hash.hexdigest()

    def close(self) -> None:
        """Flush and fsync; the file stays at ``self.path``."""
        if not self.file.closed:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()

    def abort(self) -> None:
        if not self.file.closed:
            self.file.close()
        self.path.unlink(missing_ok=True)


class BlobStore:
    """``check_space(nbytes)``, when given, is called before every write of file content
    (blobs, and upload chunks through ``check_space``) and may raise OSError(ENOSPC): the
    test-only full-disk fault (``vzcloud.server.faults``)."""

    def __init__(self, root: Path, check_space: Callable[[int], None] | None = None) -> None:
        self._check_space = check_space
        self.root = root
        self.blob_dir = root / "blobs"
        self.tmp_dir = root / "tmp"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def path(self, checksum: str) -> Path:
        if not HEX64.match(checksum):
            raise ValueError(f"not a sha256 hex digest: {checksum!r}")
        return self.blob_dir / checksum[:2] / checksum[2:4] / checksum

    def exists(self, checksum: str) -> bool:
        return self.path(checksum).exists()

    def writer(self) -> BlobWriter:
        return BlobWriter(self.tmp_dir / f"{secrets.token_hex(12)}.part", self._check_space)

    def check_space(self, nbytes: int) -> None:
        """Call before writing ``nbytes`` of file content outside a BlobWriter."""
        if self._check_space is not None:
            self._check_space(nbytes)

    def adopt(self, writer: BlobWriter) -> str:
        """Move a finished writer's file into place under its checksum; return it."""
        writer.close()
        checksum = writer.sha256
        target = self.path(checksum)
        if target.exists():
            writer.path.unlink(missing_ok=True)
            return checksum
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(writer.path, target)
        _fsync_dir(target.parent)
        return checksum

    def place(self, writer: BlobWriter) -> str:
        """Make a finished writer's content durable under its checksum without taking
        the store lock (so concurrent uploads' disk flushes overlap); return the checksum.

        The writer's file is fsynced and hard-linked into place (kept if the checksum
        exists already), then the blob's folder is fsynced, also when the blob existed:
        a concurrent upload of the same content may not have synced its link yet. The
        writer's file stays (``abort`` removes it) so that ``ensure_placed``, under the
        store lock, can link it again if a garbage collection deleted the blob between
        this call and the version row (the blob was released and unreferenced then)."""
        writer.close()
        checksum = writer.sha256
        target = self.path(checksum)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(writer.path, target)
            except FileExistsError:
                pass  # the same content, placed meanwhile
        _fsync_dir(target.parent)
        return checksum

    def ensure_placed(self, writer: BlobWriter, checksum: str) -> None:
        """Under the store lock, just before the version row referencing ``checksum``
        is written: put the blob back from ``writer`` (see ``place``) if it is gone."""
        target = self.path(checksum)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(writer.path, target)
        _fsync_dir(target.parent)

    def put_bytes(self, data: bytes) -> str:
        w = self.writer()
        try:
            w.write(data)
        except BaseException:
            w.abort()
            raise
        return self.adopt(w)

    def delete(self, checksum: str) -> None:
        try:
            self.path(checksum).unlink(missing_ok=True)
        except ValueError:
            pass

    def all_checksums(self) -> list[str]:
        return [p.name for p in self.blob_dir.glob("*/*/*") if HEX64.match(p.name)]

    def clear_tmp(self) -> None:
        """Remove temporary files left by a crash (only call when no upload is running)."""
        for p in self.tmp_dir.iterdir():
            p.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WalSync:
    """Group commit for a SQLite database in WAL mode: ``sync()`` returns once every
    transaction committed before the call is on disk, with one fdatasync of the WAL for
    all the threads that call it meanwhile (a thread arriving during a flush waits for
    the next one, which covers it and everyone else who arrived).

    Why an fdatasync of the WAL file suffices for commits made with
    ``synchronous=NORMAL``: a committed transaction is frames appended to the WAL; what
    a checkpoint already moved into the database file was synced by the checkpoint
    itself (SQLite syncs the WAL before a checkpoint and the database after it). The
    mount's ``MetadataStore.sync_to_disk`` relies on the same."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self._cond = threading.Condition()
        self._asked = 0  # tickets handed out: one per sync() call
        self._covered = 0  # every ticket up to this one is on disk
        self._flushing = False

    def sync(self) -> None:
        """Until every commit made before this call is durable (worker thread)."""
        with self._cond:
            self._asked += 1
            ticket = self._asked
            while self._flushing and self._covered < ticket:
                self._cond.wait()
            if self._covered >= ticket:
                return  # a flush that started after our commit covered it
            self._flushing = True
            covers = self._asked  # all these tickets were taken after their commits
        flushed = False
        try:
            self._fdatasync()
            flushed = True
        finally:
            with self._cond:
                if flushed:
                    self._covered = max(self._covered, covers)
                self._flushing = False
                self._cond.notify_all()

    def _fdatasync(self) -> None:
        wal = self.db_path.with_name(self.db_path.name + "-wal")
        try:
            fd = os.open(wal if wal.exists() else self.db_path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)
