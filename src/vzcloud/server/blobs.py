"""Content-addressed blob files: ``blobs/ab/cd/<sha256 hex>`` under the data directory.

A blob is written to ``tmp/`` first, hashed while written, fsynced, then renamed (or
hard-linked, ``place``) into place and its folder fsynced, so a crash never leaves a
partial blob under a real name. Writing a checksum that exists already keeps the
existing file (deduplication). Whether a blob is still needed is decided by the store
(``versions.checksum``); this module only does file work.

Commits are made durable with ``vzcloud.durable.WalSync`` (group commit): concurrent
uploads wait for one disk flush, not one each in turn under the store lock.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from vzcloud.durable import fsync_dir

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
        fsync_dir(target.parent)
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
        fsync_dir(target.parent)
        return checksum

    def ensure_placed(self, writer: BlobWriter, checksum: str) -> None:
        """Under the store lock, just before the version row referencing ``checksum``
        is written: put the blob back from ``writer`` (see ``place``) if it is gone."""
        target = self.path(checksum)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(writer.path, target)
        fsync_dir(target.parent)

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
