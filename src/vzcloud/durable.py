"""Making writes survive a power loss: the few calls the server and the mount share.

``fsync_dir`` makes a rename or a new file in a directory durable; ``fdatasync_wal`` the
commits of a SQLite database in WAL mode with ``synchronous=NORMAL`` (what a checkpoint
moved into the database file was synced by the checkpoint itself; the WAL's own size
change is data to fdatasync, as SQLite's own syncs rely on); ``WalSync`` the same for
many threads with one flush (group commit). All of them block on the disk: call them
from worker threads.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """fsync a directory: its entries (a rename, a new file) are then durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fdatasync_wal(db_path: Path) -> None:
    """Every commit made so far to the SQLite database at ``db_path`` (WAL mode) is on
    disk when this returns: fdatasync of its WAL (of the database file if there is no
    WAL; nothing if neither exists)."""
    wal = db_path.with_name(db_path.name + "-wal")
    try:
        fd = os.open(wal if wal.exists() else db_path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fdatasync(fd)
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
    The server's commits and the mount's ``MetadataStore.sync_to_disk`` rely on it."""

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
        fdatasync_wal(self.db_path)
