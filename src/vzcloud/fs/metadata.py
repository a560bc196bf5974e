"""The mount's on-disk metadata: inodes, (parent, name) entries, attributes, upload jobs.

Local state is keyed by inode number, never by path: a directory rename changes one row,
and a cloud path is derived from the entry chain only when a request needs it.

Concurrency contract: the mount runs every handler in one trio thread, so this object is
used from that thread only; statements are short and stay inline (fuse-notes: short
local SQLite statements may). Only ``sync_to_disk`` may (must) run in a worker thread.

Durability: WAL with ``synchronous=NORMAL``, so the many small commits of writes (size,
mtime) cost no fsync on the trio thread; a process crash loses nothing committed. Where
a commit must also survive a power loss (an upload job, before ``close()`` returns),
the caller commits and then runs ``sync_to_disk`` in a worker thread.

``local_seq`` counts local changes that mirror a cloud change (an API call made, an
upload finished). The syncer applies a fullview only if it did not move while the
fullview was being fetched: otherwise the answer may predate a change already applied
locally and would undo it (see ``fs.sync``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from vzcloud.api.models import CloudFile, CloudFolder
from vzcloud.durable import WalSync

ROOT_INODE = 1
# Inode numbers from here up name the special entries (``.favorites``, ``.trash``: see
# ``fs.special``), kept in memory; the table's AUTOINCREMENT never gets this far.
SPECIAL_INO_BASE = 1 << 40
SCHEMA_VERSION = 1
WAL_SIZE_LIMIT = 4 << 20  # bytes the WAL is cut back to after a checkpoint

SCHEMA = """
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    -- schema_version; etag: last applied fullview etag; account: the cloud account id
    -- this cache belongs to (a different account wipes the cache).

CREATE TABLE IF NOT EXISTS inodes (
    ino          INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused (AUTOINCREMENT)
    parent       INTEGER,          -- directory inode; NULL for the root and for an
                                   -- unlinked inode kept alive by open handles/lookups
    name         TEXT,             -- entry name in parent; NULL when parent is NULL
    is_dir       INTEGER NOT NULL,
    size         INTEGER NOT NULL DEFAULT 0,
    mtime_ns     INTEGER NOT NULL,
    ctime_ns     INTEGER NOT NULL,
    checksum     TEXT,             -- sha256 of the cloud content the clean data is;
                                   -- NULL for directories and never-uploaded files
    version      INTEGER,          -- cloud version of that content
    remote       INTEGER NOT NULL DEFAULT 0,  -- 1 = exists in the cloud at the entry's path
    dirty        INTEGER NOT NULL DEFAULT 0,  -- 1 = staging file holds data not yet uploaded
    write_gen    INTEGER NOT NULL DEFAULT 0,  -- bumped by every local write/truncate; an
                                              -- upload only cleans the inode if unchanged
    favorite     INTEGER NOT NULL DEFAULT 0,
    tags         TEXT,
    uri          TEXT,
    mime_type    TEXT,
    content_token TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS inodes_entry ON inodes(parent, name) WHERE parent IS NOT NULL;
-- readdir pages through a directory by inode number (its next_id).
CREATE INDEX IF NOT EXISTS inodes_children ON inodes(parent, ino);
-- .favorites lists the favorites without scanning the table.
CREATE INDEX IF NOT EXISTS inodes_favorites ON inodes(ino) WHERE favorite = 1;

-- Persistent upload queue: one job per inode whose staged content must reach the cloud.
CREATE TABLE IF NOT EXISTS upload_jobs (
    ino          INTEGER PRIMARY KEY REFERENCES inodes(ino),
    queued_at    REAL NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_try     REAL NOT NULL DEFAULT 0,   -- time.time() before which it is not retried
    last_error   TEXT,
    journal      BLOB,              -- a small file's whole content as of close(), or NULL
    journal_gen  INTEGER,           -- the inode's write_gen that content is
    sent_checksum TEXT,             -- sha256 of the last content sent for it (an attempt
    sent_gen     INTEGER            -- started) and its write_gen: see ``already_uploaded``
);
-- The uploader looks for due jobs oldest first and for the next due time after every
-- close and every finished upload: without these, each look scans (and sorts) the queue.
CREATE INDEX IF NOT EXISTS upload_jobs_queued ON upload_jobs(queued_at);
CREATE INDEX IF NOT EXISTS upload_jobs_next_try ON upload_jobs(next_try);
"""
# Columns added to ``upload_jobs`` after the first release (added on open when missing).
UPLOAD_JOB_COLUMNS = {"journal": "BLOB", "journal_gen": "INTEGER", "sent_checksum": "TEXT",
                      "sent_gen": "INTEGER"}


@dataclass
class Inode:
    ino: int
    parent: int | None
    name: str | None
    is_dir: bool
    size: int
    mtime_ns: int
    ctime_ns: int
    checksum: str | None
    version: int | None
    remote: bool
    dirty: bool
    write_gen: int
    favorite: bool
    tags: str | None
    uri: str | None
    mime_type: str | None
    content_token: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Inode:
        return cls(
            row["ino"], row["parent"], row["name"], bool(row["is_dir"]), row["size"],
            row["mtime_ns"], row["ctime_ns"], row["checksum"], row["version"],
            bool(row["remote"]), bool(row["dirty"]), row["write_gen"], bool(row["favorite"]),
            row["tags"], row["uri"], row["mime_type"], row["content_token"],
        )

    @classmethod
    def from_tuple(cls, row: tuple[Any, ...]) -> Inode:
        """An inode from a plain row of ``INODE_COLUMNS``: several times cheaper than
        ``from_row`` (getattr and lookup read one per request)."""
        (ino, parent, name, is_dir, size, mtime_ns, ctime_ns, checksum, version, remote,
         dirty, write_gen, favorite, tags, uri, mime_type, content_token) = row
        return cls(ino, parent, name, bool(is_dir), size, mtime_ns, ctime_ns, checksum,
                   version, bool(remote), bool(dirty), write_gen, bool(favorite), tags, uri,
                   mime_type, content_token)


# The columns of ``Inode`` in its field order (``Inode.from_tuple`` reads rows of them).
INODE_COLUMNS = ", ".join(f.name for f in fields(Inode))


class Entry(NamedTuple):
    """What a directory listing shows of a child (``MetadataStore.entries``): reading
    only these columns costs a third of a whole ``Inode`` (``find`` lists 100,000)."""

    ino: int
    name: str
    is_dir: int  # 0 or 1
    size: int
    mtime_ns: int
    ctime_ns: int


class MetadataStore:
    """SQLite-backed inode table of one mount's cache directory."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        # Small files' content passes through the WAL (journaled upload jobs): a WAL left
        # at its high-water mark would hold that space on the cache disk for good.
        self.db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        self.db.executescript(SCHEMA)
        self._add_missing_columns()
        self._ensure_root()
        self.local_seq = 0
        # Uploads in flight: inode -> the path its content is being sent to (see
        # ``upload_unsettled``).
        self.sending: dict[int, list[str]] = {}
        # Directory renames between their cloud move and their local record: paths
        # under them are about to change (the uploader must not recreate the old ones).
        self.folder_moves = 0
        # Jobs found queued when the mount started: inode -> (sha256 of its staged
        # content, write_gen). The previous mount may have been killed after that
        # content reached the cloud but before it recorded so; the syncer and the
        # uploader recognise it (see ``already_uploaded``) instead of making a conflict
        # copy or a second version. Filled by the mount's recovery, and by the uploader
        # for an upload that landed but could not be recorded (a full cache disk);
        # a job's end drops it.
        self.recovered: dict[int, tuple[str, int]] = {}
        # When a job could not be written (SQLITE_FULL), or None: a closed file may have
        # written content and no job; the mount's poller looks for it (``queue_stranded``).
        self.enqueue_failed_at: float | None = None
        self._wal = WalSync(Path(path))

    def _ensure_root(self) -> None:
        if self.get(ROOT_INODE) is None:
            now = time.time_ns()
            self.db.execute(
                "INSERT INTO inodes (ino, parent, name, is_dir, mtime_ns, ctime_ns, remote)"
                " VALUES (?, NULL, NULL, 1, ?, ?, 1)",
                (ROOT_INODE, now, now),
            )
            self.set_state("schema_version", str(SCHEMA_VERSION))

    def _add_missing_columns(self) -> None:
        have = {row["name"] for row in self.db.execute("PRAGMA table_info(upload_jobs)")}
        for column, kind in UPLOAD_JOB_COLUMNS.items():
            if column not in have:
                self.db.execute(f"ALTER TABLE upload_jobs ADD COLUMN {column} {kind}")

    def close(self) -> None:
        self.db.close()

    def sync_to_disk(self) -> None:
        """Every commit so far survives a power loss once this returns (one fdatasync of
        the WAL, shared by the closes waiting at the same time: ``durable.WalSync``).
        Blocks on disk: call it from a worker thread."""
        self._wal.sync()

    def note_local_change(self) -> None:
        """A local change mirroring a cloud change was applied (see ``local_seq``)."""
        self.local_seq += 1

    def upload_unsettled(self) -> bool:
        """An upload in flight was unlinked or renamed locally after it started: until the
        uploader has deleted or moved the cloud copy (and noted that change), the cloud
        may show the file at a path where no local entry mirrors it, so a fullview must
        not be applied (it would bring the file back)."""
        return any(self.path_parts(ino) != parts for ino, parts in self.sending.items())

    def reset(self) -> None:
        """Forget every inode, job and the etag (the cache belongs to another account)."""
        with self.tx() as db:
            db.execute("DELETE FROM upload_jobs")
            db.execute("DELETE FROM inodes WHERE ino != ?", (ROOT_INODE,))
            db.execute("DELETE FROM state WHERE key != 'schema_version'")

    # State ------------------------------------------------------------------------------

    def get_state(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM state WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_state(self, key: str, value: str | None) -> None:
        if value is None:
            self.db.execute("DELETE FROM state WHERE key=?", (key,))
        else:
            self.db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, value))

    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, exc_type: object, *rest: object) -> None:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")

    def tx(self) -> MetadataStore._Tx:
        """A transaction: several changes that must land together (a fullview delta)."""
        return MetadataStore._Tx(self.db)

    # Inodes -----------------------------------------------------------------------------

    def _inodes(self, where: str, params: tuple[Any, ...]) -> list[Inode]:
        """The inodes ``SELECT ... FROM inodes WHERE <where>`` finds, read as plain tuples
        (no ``sqlite3.Row``: the hot paths getattr, lookup and readdir come here)."""
        cursor = self.db.cursor()
        cursor.row_factory = None
        return [Inode.from_tuple(row) for row in cursor.execute(
            f"SELECT {INODE_COLUMNS} FROM inodes WHERE {where}", params)]

    def get(self, ino: int) -> Inode | None:
        found = self._inodes("ino=?", (ino,))
        return found[0] if found else None

    def lookup(self, parent: int, name: str) -> Inode | None:
        found = self._inodes("parent=? AND name=?", (parent, name))
        return found[0] if found else None

    def children(self, parent: int, after_ino: int = 0, limit: int = -1) -> list[Inode]:
        """Entries of a directory by increasing inode number, starting after ``after_ino``
        (at most ``limit``; -1 = all).

        Ordering by inode makes the readdir offset (``next_id`` = last ino) stable while
        entries are added or removed.
        """
        return self._inodes("parent=? AND ino>? ORDER BY ino LIMIT ?", (parent, after_ino, limit))

    def entries(self, parent: int, after_ino: int = 0, limit: int = -1) -> list[Entry]:
        """``children`` for a listing: the same entries in the same order, as ``Entry``."""
        cursor = self.db.cursor()
        cursor.row_factory = None
        return [Entry._make(row) for row in cursor.execute(
            "SELECT ino, name, is_dir, size, mtime_ns, ctime_ns FROM inodes"
            " WHERE parent=? AND ino>? ORDER BY ino LIMIT ?", (parent, after_ino, limit))]

    def has_children(self, parent: int) -> bool:
        return self.db.execute(
            "SELECT 1 FROM inodes WHERE parent=? LIMIT 1", (parent,)
        ).fetchone() is not None

    def create(
        self, parent: int, name: str, *, is_dir: bool, size: int = 0,
        mtime_ns: int | None = None, checksum: str | None = None, version: int | None = None,
        remote: bool = False, dirty: bool = False, favorite: bool = False,
        tags: str | None = None, uri: str | None = None, mime_type: str | None = None,
        content_token: str | None = None,
    ) -> Inode:
        now = time.time_ns()
        cur = self.db.execute(
            "INSERT INTO inodes (parent, name, is_dir, size, mtime_ns, ctime_ns, checksum,"
            " version, remote, dirty, favorite, tags, uri, mime_type, content_token)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (parent, name, int(is_dir), size, mtime_ns or now, now, checksum, version,
             int(remote), int(dirty), int(favorite), tags, uri, mime_type, content_token),
        )
        inode = self.get(int(cur.lastrowid or 0))
        assert inode is not None
        return inode

    def update(self, ino: int, **fields: object) -> None:
        """Set columns of one inode (names as in the schema)."""
        if not fields:
            return
        cols = ", ".join(f"{k}=?" for k in fields)
        self.db.execute(f"UPDATE inodes SET {cols} WHERE ino=?", (*fields.values(), ino))

    def move(self, ino: int, parent: int | None, name: str | None) -> None:
        """Change an inode's entry (rename), or detach it (parent None) when unlinked."""
        self.db.execute(
            "UPDATE inodes SET parent=?, name=?, ctime_ns=? WHERE ino=?",
            (parent, name, time.time_ns(), ino),
        )

    def delete(self, ino: int) -> None:
        """Forget an inode for good (no entry, no lookups, no handles)."""
        self.db.execute("DELETE FROM upload_jobs WHERE ino=?", (ino,))
        self.db.execute("DELETE FROM inodes WHERE ino=?", (ino,))

    def path_parts(self, ino: int) -> list[str] | None:
        """Names from the root down to ``ino``; None if it is detached (unlinked)."""
        parts: list[str] = []
        current = ino
        while current != ROOT_INODE:
            row = self.db.execute(
                "SELECT parent, name FROM inodes WHERE ino=?", (current,)
            ).fetchone()
            if row is None or row["parent"] is None:
                return None
            parts.append(row["name"])
            current = row["parent"]
        return list(reversed(parts))

    def resolve(self, parts: list[str]) -> Inode | None:
        """The inode at a cloud path given as names, or None."""
        inode = self.get(ROOT_INODE)
        for name in parts:
            if inode is None:
                return None
            inode = self.lookup(inode.ino, name)
        return inode

    def detached(self) -> list[int]:
        """Inodes with no entry (unlinked while open): removed at mount start."""
        return [
            r[0] for r in self.db.execute(
                "SELECT ino FROM inodes WHERE parent IS NULL AND ino != ?", (ROOT_INODE,)
            )
        ]

    def favorites(self) -> list[Inode]:
        """Inodes marked favorite that have an entry, by inode number."""
        return [Inode.from_row(row) for row in self.db.execute(
            "SELECT * FROM inodes WHERE favorite = 1 AND parent IS NOT NULL ORDER BY ino")]

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM inodes").fetchone()[0])

    # Fullview staging and bulk loading ----------------------------------------------------

    def stage(self) -> FullviewStage:
        """An empty stage for the next fullview answer (see ``FullviewStage``)."""
        return FullviewStage(self.db)

    def is_empty(self) -> bool:
        """Only the root: nothing was ever loaded or made here (a first load may insert
        in bulk, ``bulk_load``)."""
        return self.db.execute(
            "SELECT 1 FROM inodes WHERE ino != ? LIMIT 1", (ROOT_INODE,)).fetchone() is None

    def bulk_load(self, stage: FullviewStage,
                  progress: Callable[[int, int], None] | None = None) -> int:
        """Insert a whole staged fullview into an empty tree (``is_empty``), inside the
        caller's transaction: every folder on the way, the listed folders with their
        attributes, every file, with batched inserts and folders resolved from memory
        (one dict of folder paths) instead of a lookup per path component. Returns how
        many files were inserted; ``progress(done, total)`` as in ``Syncer.progress``."""
        dirs: dict[str, int] = {"": ROOT_INODE}
        now = time.time_ns()

        def folder(path: str) -> int:
            ino = dirs.get(path)
            if ino is None:
                parent_path, name = _split(path)
                ino = int(self.db.execute(
                    "INSERT INTO inodes (parent, name, is_dir, mtime_ns, ctime_ns, remote)"
                    " VALUES (?, ?, 1, ?, ?, 1)", (folder(parent_path), name, now, now),
                ).lastrowid or 0)
                dirs[path] = ino
            return ino

        for item in stage.items(STAGED_FOLDER):
            self.update(folder(item.path.rstrip("/")), remote=1, favorite=int(item.favorite),
                        tags=item.tags, uri=item.uri, version=item.version)
        # The files' folders, then the files themselves copied by SQLite from the stage
        # (no Python object per file), a range of the answer at a time for ``progress``.
        for (parent,) in self.db.execute(
                "SELECT DISTINCT parent FROM fullview_stage WHERE kind=?", (STAGED_FILE,),
                ).fetchall():
            folder(parent)
        self.db.execute("CREATE TEMP TABLE IF NOT EXISTS fullview_dirs"
                        " (path TEXT PRIMARY KEY, ino INTEGER NOT NULL)")
        self.db.execute("DELETE FROM fullview_dirs")
        self.db.executemany("INSERT INTO fullview_dirs VALUES (?, ?)", dirs.items())
        total = stage.count(STAGED_FILE)
        first, last = self.db.execute("SELECT MIN(n), MAX(n) FROM fullview_stage WHERE kind=?",
                                      (STAGED_FILE,)).fetchone()
        done = 0
        for start in range(first or 0, (last or -1) + 1, _BULK_BATCH):
            done += self.db.execute(
                "INSERT INTO inodes (parent, name, is_dir, size, mtime_ns, ctime_ns, checksum,"
                " version, remote, favorite, tags, uri, mime_type, content_token)"
                " SELECT d.ino, s.name, 0, s.size, IIF(s.mtime_ns, s.mtime_ns, :now), :now,"
                " s.checksum, s.version, 1, s.favorite, s.tags, s.uri, s.mime_type,"
                " s.content_token FROM fullview_stage s JOIN fullview_dirs d"
                " ON d.path = s.parent WHERE s.kind=:kind AND s.n BETWEEN :start AND :end"
                " ORDER BY s.n", {"now": now, "kind": STAGED_FILE, "start": start,
                                  "end": start + _BULK_BATCH - 1}).rowcount
            if progress is not None:
                progress(done, total)
        self.db.execute("DELETE FROM fullview_dirs")
        if progress is not None and not total:
            progress(0, 0)
        return done

    # Upload jobs ------------------------------------------------------------------------

    def enqueue_upload(self, ino: int, delay: float = 0.0, journal: bytes | None = None,
                       journal_gen: int | None = None) -> None:
        """Record that ``ino`` must be uploaded, due in ``delay`` seconds (the caller
        makes it durable with ``sync_to_disk`` before close() returns). ``journal``: the
        file's whole content at write generation ``journal_gen``, kept in the job so one
        sync makes job and content durable (the staging file then needs none); None
        clears an older job's journal (the content is only in the staging file)."""
        now = time.time()
        due = now + delay if delay else 0.0
        try:
            self.db.execute(
                "INSERT INTO upload_jobs (ino, queued_at, next_try, journal, journal_gen)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(ino) DO UPDATE SET next_try=excluded.next_try,"
                " journal=excluded.journal, journal_gen=excluded.journal_gen",
                (ino, now, due, journal, journal_gen),
            )
        except sqlite3.OperationalError:
            self.enqueue_failed_at = time.monotonic()  # the poller looks for the file
            raise

    def journaled(self, ino: int) -> tuple[bytes, int] | None:
        """The content journaled in ``ino``'s job and its write generation, or None."""
        row = self.db.execute(
            "SELECT journal, journal_gen FROM upload_jobs WHERE ino=? AND journal IS NOT NULL",
            (ino,)).fetchone()
        return None if row is None else (bytes(row[0]), int(row[1]))

    def journaled_inodes(self) -> list[int]:
        """Inodes whose job holds journaled content (mount recovery)."""
        return [r[0] for r in self.db.execute(
            "SELECT ino FROM upload_jobs WHERE journal IS NOT NULL")]

    def upload_jobs(self, now: float | None = None, limit: int = -1) -> list[sqlite3.Row]:
        """Jobs due at ``now`` (all jobs when ``now`` is None), oldest first, at most
        ``limit`` (-1 = all): ``ino``, ``attempts`` and the inode's ``size`` (0 for a
        deleted inode; the journal is not read here)."""
        select = ("SELECT j.ino, j.queued_at, j.attempts, j.next_try, j.last_error,"
                  " COALESCE(i.size, 0) AS size FROM upload_jobs j LEFT JOIN inodes i USING (ino)")
        if now is None:
            return self.db.execute(
                f"{select} ORDER BY j.queued_at LIMIT ?", (limit,)).fetchall()
        return self.db.execute(
            f"{select} WHERE j.next_try <= ? ORDER BY j.queued_at LIMIT ?",
            (now, limit),
        ).fetchall()

    def upload_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM upload_jobs").fetchone()[0])

    def upload_queue(self, limit: int) -> tuple[int, int, int, list[sqlite3.Row]]:
        """The queue at a glance (``vzcloud status``): how many jobs, their files' total
        size in bytes, how many have failed at least once, and the ``limit`` oldest jobs
        (``upload_jobs`` columns plus the inode's ``size``)."""
        count, total, failing = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(i.size), 0), COALESCE(SUM(j.attempts > 0), 0)"
            " FROM upload_jobs j LEFT JOIN inodes i USING (ino)").fetchone()
        rows = self.db.execute(
            "SELECT j.ino, j.queued_at, j.attempts, j.next_try, j.last_error,"
            " COALESCE(i.size, 0) AS size FROM upload_jobs j"
            " LEFT JOIN inodes i USING (ino) ORDER BY j.queued_at LIMIT ?", (limit,)).fetchall()
        return int(count), int(total), int(failing), rows

    def next_upload_due(self) -> float | None:
        """The earliest ``next_try`` of the queue (None when empty)."""
        row = self.db.execute("SELECT MIN(next_try) FROM upload_jobs").fetchone()
        return None if row[0] is None else float(row[0])

    def upload_attempts(self, ino: int) -> int:
        row = self.db.execute("SELECT attempts FROM upload_jobs WHERE ino=?", (ino,)).fetchone()
        return 0 if row is None else int(row[0])

    def retry_now(self, ino: int) -> None:
        """Make ``ino``'s job due at once (fsync is waiting for it)."""
        self.db.execute("UPDATE upload_jobs SET next_try=0 WHERE ino=?", (ino,))

    def retry_all_now(self) -> None:
        """Make every job due at once (the cloud answers again after an outage)."""
        self.db.execute("UPDATE upload_jobs SET next_try=0")

    def has_upload_job(self, ino: int) -> bool:
        return self.db.execute(
            "SELECT 1 FROM upload_jobs WHERE ino=?", (ino,)
        ).fetchone() is not None

    def upload_failed(self, ino: int, error: str, retry_in: float) -> None:
        self.db.execute(
            "UPDATE upload_jobs SET attempts=attempts+1, next_try=?, last_error=? WHERE ino=?",
            (time.time() + retry_in, error, ino),
        )

    def upload_sending(self, ino: int, checksum: str, gen: int) -> None:
        """An attempt is about to send content ``checksum`` of write generation ``gen``
        (committed, not synced: it matters after a kill of the mount; see
        ``already_uploaded``)."""
        self.db.execute("UPDATE upload_jobs SET sent_checksum=?, sent_gen=? WHERE ino=?",
                        (checksum, gen, ino))

    def upload_done(self, ino: int) -> None:
        self.recovered.pop(ino, None)
        self.db.execute("DELETE FROM upload_jobs WHERE ino=?", (ino,))

    def already_uploaded(self, inode: Inode, checksum: str | None, gen: int | None = None,
                         ) -> bool:
        """Whether cloud content ``checksum`` is content of ``inode`` that the previous
        mount sent and died before recording (only for jobs queued since the mount
        started, ``recovered``): with ``gen`` (the uploader: the write generation it is
        about to send), exactly that generation, which then need not be sent again;
        without (the syncer), that generation or an older one whose upload was in
        flight while the file was written again (``upload_sending``): either way our
        own content, the new base to upload over, not another device's change."""
        known = self.recovered.get(inode.ino)
        if known is None or checksum is None:
            return False
        if known == (checksum, inode.write_gen if gen is None else gen):
            return True
        row = self.db.execute("SELECT sent_checksum, sent_gen FROM upload_jobs WHERE ino=?",
                              (inode.ino,)).fetchone()
        if row is None or row[0] != checksum:
            return False
        return gen is None or row[1] == gen


# Fullview staging -------------------------------------------------------------------------

STAGED_DELETED, STAGED_FOLDER, STAGED_FILE = 0, 1, 2  # kinds, in the order they apply
_BULK_BATCH = 5000  # rows per executemany of a bulk load
_STAGE_BATCH = 2000  # staged rows read at a time


@dataclass(slots=True)
class RemoteItem:
    """What the mount keeps of a cloud file or folder of a fullview (a staged row)."""

    path: str
    size: int = 0
    checksum: str | None = None
    version: int | None = None
    mtime_ns: int = 0  # versionCreated; 0 = unknown
    favorite: bool = False
    tags: str | None = None
    uri: str | None = None
    mime_type: str | None = None
    content_token: str | None = None


def _split(path: str) -> tuple[str, str]:
    """``/a/b/c.txt`` -> (``/a/b``, ``c.txt``); the root is ``""``."""
    cut = path.rfind("/")
    return (path[:cut] if cut > 0 else ""), path[cut + 1:]


def parse_time_ns(text: str | None) -> int:
    """An ISO 8601 time of the wire (``2015-12-21T10:45:54.634Z``) in nanoseconds since
    the epoch; 0 when missing or unreadable."""
    if not text:
        return 0
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return 0
    return int(dt.timestamp() * 1_000_000_000)


class FullviewStage:
    """A fullview answer kept on disk while it streams in (a ``vzcloud.sdk.fullview``
    sink): the mount's memory follows one batch, not the account. Rows go to a TEMP table
    of the metadata connection (the temporary database, not the cache's file), and are
    read back in the order they apply: deleted paths, folders, files (the answer may list
    them in any order). Used from the mount's trio thread only, like the store."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        db.execute(
            "CREATE TEMP TABLE IF NOT EXISTS fullview_stage (n INTEGER PRIMARY KEY,"
            " kind INTEGER NOT NULL, path TEXT NOT NULL,"
            " parent TEXT, name TEXT,"  # path split at its last '/' ("" = the root)
            " size INTEGER, checksum TEXT,"
            " version INTEGER, mtime_ns INTEGER, favorite INTEGER, tags TEXT, uri TEXT,"
            " mime_type TEXT, content_token TEXT)")
        db.execute("CREATE INDEX IF NOT EXISTS temp.fullview_stage_kind"
                   " ON fullview_stage(kind, n)")
        self.restart()

    def restart(self) -> None:
        """Forget everything staged."""
        self.db.execute("DELETE FROM fullview_stage")

    close = restart

    def add(self, files: Sequence[CloudFile], folders: Sequence[CloudFolder],
            deleted: Sequence[str]) -> None:
        rows: list[tuple[object, ...]] = [
            (STAGED_DELETED, path, None, None, None, None, None, None, None, None, None,
             None, None) for path in deleted]
        rows += [(STAGED_FOLDER, d.path, *_split(d.path), 0, None, d.version, 0,
                  int(bool(d.favorite)), d.tags, d.uri, None, None) for d in folders]
        rows += [(STAGED_FILE, f.path, *_split(f.path), f.size, f.checksum, f.version,
                  parse_time_ns(f.version_created), int(bool(f.favorite)), f.tags, f.uri,
                  f.mime_type, f.content_token) for f in files]
        self.db.executemany(
            "INSERT INTO fullview_stage (kind, path, parent, name, size, checksum, version,"
            " mtime_ns, favorite, tags, uri, mime_type, content_token)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def count(self, kind: int) -> int:
        return int(self.db.execute(
            "SELECT COUNT(*) FROM fullview_stage WHERE kind=?", (kind,)).fetchone()[0])

    def items(self, kind: int) -> Iterator[RemoteItem]:
        """The staged items of one kind, in the answer's order, a batch at a time (the
        caller may write to the store meanwhile)."""
        after = 0
        while True:
            rows = self.db.execute(
                "SELECT n, path, size, checksum, version, mtime_ns, favorite, tags, uri,"
                " mime_type, content_token FROM fullview_stage WHERE kind=? AND n>?"
                " ORDER BY n LIMIT ?", (kind, after, _STAGE_BATCH)).fetchall()
            if not rows:
                return
            for row in rows:
                yield RemoteItem(row[1], row[2] or 0, row[3], row[4], row[5] or 0,
                                 bool(row[6]), row[7], row[8], row[9], row[10])
            after = rows[-1][0]

    def deleted(self) -> list[str]:
        """Deleted paths where nothing new lives again: a delta lists a path as deleted
        even when it was re-created or moved over since (that item is updated instead)."""
        return [row[0] for row in self.db.execute(
            "SELECT path FROM fullview_stage WHERE kind=? AND path NOT IN"
            " (SELECT path FROM fullview_stage WHERE kind>?) ORDER BY n",
            (STAGED_DELETED, STAGED_DELETED))]
