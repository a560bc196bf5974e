"""Room kept back on the cache disk, so that a full disk can be emptied again.

On a full cache disk the staged files of acknowledged writes hold the space, and they go
only once their upload is recorded in the metadata database, which needs a few pages of
its own. Without room for those pages, every landed upload fails to record, nothing is
freed, and the mount stays full for ever (seen in CI). ``DiskReserve`` is a file of
``size`` bytes allocated in the cache directory while there is room; the uploader
releases it when recording fails with SQLITE_FULL and records again at once, which frees
the staged file, and the file is allocated again once there is room.

Programs writing to the mount see ENOSPC ``size`` bytes sooner: the price of recovering.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

log = logging.getLogger("vzcloud.fs.reserve")

RESERVE_BYTES = 1 << 20  # a record needs a few 4 KiB pages of WAL; SQLite may checkpoint


class DiskReserve:
    def __init__(self, path: Path, size: int = RESERVE_BYTES) -> None:
        self.path = path
        self.size = size
        self.held = False  # whether the file is allocated now

    def ensure(self) -> bool:
        """Allocate the reserve if it is not (blocking: a worker thread or start-up).
        Returns whether it is held; a disk without room leaves it for a later call."""
        if self.held:
            return True
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)
            finally:
                os.close(fd)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                # Never fatal: without a reserve a full disk recovers only as files close.
                log.warning("cannot keep room back on the cache disk: %s", exc)
            try:
                self.path.unlink(missing_ok=True)
            except OSError:
                pass
            return False
        self.held = True
        return True

    def release(self) -> bool:
        """Free the reserve (a few microseconds: callable from the event loop). Returns
        whether it was held, i.e. whether retrying what failed for want of room may
        succeed now."""
        if not self.held:
            return False
        self.path.unlink(missing_ok=True)
        self.held = False
        log.warning("the cache disk is full: released the %d KiB kept back to record "
                    "finished uploads", self.size >> 10)
        return True
