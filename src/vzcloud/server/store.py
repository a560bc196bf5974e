"""SQLite storage of the embedded cloud: the schema, transactions and item helpers.

Concurrency contract: one connection, shared by every worker thread and guarded by
``Store.lock`` (an RLock). Every read and write goes through ``Store.tx()``, which holds
the lock for the whole transaction, so no two transactions interleave; WAL mode keeps
readers of other processes (``sqlite3`` CLI, ``vzcloud check``) out of the writer's way.
Handlers run in Starlette's thread pool (they are plain ``def``), never on the event loop.

Items are keyed by id with a (parent_id, name) entry; paths are derived by walking
parents, so a folder rename or move is one row. Blob files (``blobs.py``) are named by
SHA-256 and referenced by ``versions.checksum``; a blob with no referencing version row is
garbage and is deleted after the transaction that dropped its last reference commits.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vzcloud.api import paths as P
from vzcloud.api.errors import BadRequestError, GoneError, NotFoundError
from vzcloud.api.models import CloudFile, CloudFolder, join_path
from vzcloud.durable import WalSync

SCHEMA_VERSION = 1

SCHEMA = """
-- key/value facts about this database.
--   schema_version: SCHEMA_VERSION it was created with
--   epoch: random text made once per database; part of every fullview etag, so an etag
--          from another (or a reset) server is never taken for one of ours.
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS accounts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       TEXT NOT NULL UNIQUE,     -- 32 hex digits; appears in item URIs
    username      TEXT NOT NULL UNIQUE,     -- login name on the consent page
    password_hash TEXT NOT NULL,            -- see server/passwords.py (scrypt, salted)
    quota         INTEGER NOT NULL,         -- bytes
    root_id       INTEGER,                  -- items.id of the account's root folder
    log_floor     INTEGER NOT NULL DEFAULT 0, -- changes.seq <= log_floor were pruned:
                                            -- an etag below it gets 205
    created       REAL NOT NULL
);

-- OAuth clients (applications). Secrets are stored hashed (sha256).
CREATE TABLE IF NOT EXISTS clients (
    client_id     TEXT PRIMARY KEY,
    secret_hash   TEXT NOT NULL,
    redirect_uri  TEXT NOT NULL,            -- the only redirect_uri accepted
    name          TEXT NOT NULL DEFAULT '',
    created       REAL NOT NULL
);

-- Authorization codes: single-use, short-lived; stored as sha256 of the code.
CREATE TABLE IF NOT EXISTS auth_codes (
    code_hash     TEXT PRIMARY KEY,
    client_id     TEXT NOT NULL,
    account_id    INTEGER NOT NULL,
    redirect_uri  TEXT NOT NULL,
    expires       REAL NOT NULL,
    used          INTEGER NOT NULL DEFAULT 0
);

-- Access and refresh tokens, stored as sha256 of the token. A refresh token is spent
-- (used=1) by one refresh; presenting a spent one revokes its whole family (the chain of
-- tokens grown from one authorization), as OAuth 2.0 security practice asks.
CREATE TABLE IF NOT EXISTS tokens (
    token_hash    TEXT PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    account_id    INTEGER NOT NULL,
    client_id     TEXT NOT NULL,
    family        TEXT NOT NULL,
    expires       REAL NOT NULL,
    used          INTEGER NOT NULL DEFAULT 0,
    revoked       INTEGER NOT NULL DEFAULT 0,
    created       REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_family ON tokens(family);

-- Files and folders. The account root has parent_id NULL and name ''; virtual folders
-- are its children. A trashed item keeps its (parent_id, name) and has trashed set; its
-- descendants keep trashed NULL but are unreachable because path lookups only walk
-- untrashed entries. Ids are AUTOINCREMENT so they are never reused.
CREATE TABLE IF NOT EXISTS items (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id    INTEGER NOT NULL REFERENCES accounts(id),
    parent_id     INTEGER REFERENCES items(id),
    name          TEXT NOT NULL,
    is_folder     INTEGER NOT NULL,
    size          INTEGER NOT NULL DEFAULT 0,  -- files: bytes of the current version
    checksum      TEXT,                        -- files: sha256 hex of the current version
    version       INTEGER NOT NULL DEFAULT 1,  -- bumped by every new content or metadata version
    mime_type     TEXT,                        -- files: systemAttributes.mimeType
    attrs         TEXT,                        -- files: JSON of other systemAttributes
    content_token TEXT UNIQUE,                 -- files: opaque id for thumbnails etc.
    created       REAL NOT NULL,
    modified      REAL NOT NULL,               -- versionCreated
    trashed       REAL,                        -- when deleted to the trash; NULL = not
    favorite      INTEGER NOT NULL DEFAULT 0,
    tags          TEXT                         -- comma separated, NULL = none
);
-- At most one untrashed item per name in a folder.
CREATE UNIQUE INDEX IF NOT EXISTS items_entry ON items(parent_id, name) WHERE trashed IS NULL;
CREATE INDEX IF NOT EXISTS items_parent ON items(parent_id);
CREATE INDEX IF NOT EXISTS items_account ON items(account_id, is_folder);

-- Bytes used per account (``quota_used``: the size of every file, the trash included),
-- kept by triggers on items: summing every file is O(files) and uploads ask it twice.
CREATE TABLE IF NOT EXISTS usage (
    account_id    INTEGER PRIMARY KEY,
    used          INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS items_usage_insert AFTER INSERT ON items WHEN NEW.is_folder = 0
BEGIN
    INSERT INTO usage (account_id, used) VALUES (NEW.account_id, NEW.size)
        ON CONFLICT(account_id) DO UPDATE SET used = used + excluded.used;
END;
CREATE TRIGGER IF NOT EXISTS items_usage_delete AFTER DELETE ON items WHEN OLD.is_folder = 0
BEGIN
    UPDATE usage SET used = used - OLD.size WHERE account_id = OLD.account_id;
END;
CREATE TRIGGER IF NOT EXISTS items_usage_update AFTER UPDATE OF size, is_folder, account_id
    ON items WHEN OLD.size != NEW.size OR OLD.is_folder != NEW.is_folder
                  OR OLD.account_id != NEW.account_id
BEGIN
    UPDATE usage SET used = used - OLD.size
        WHERE account_id = OLD.account_id AND OLD.is_folder = 0;
    INSERT INTO usage (account_id, used)
        VALUES (NEW.account_id, CASE WHEN NEW.is_folder = 0 THEN NEW.size ELSE 0 END)
        ON CONFLICT(account_id) DO UPDATE SET used = used + excluded.used;
END;

-- Content versions of files, newest last. A blob file lives while a row names it.
CREATE TABLE IF NOT EXISTS versions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id       INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    version       INTEGER NOT NULL,
    checksum      TEXT NOT NULL,
    size          INTEGER NOT NULL,
    created       REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS versions_item ON versions(item_id);
CREATE INDEX IF NOT EXISTS versions_checksum ON versions(checksum);

-- The change log behind fullview deltas. A row says either "item_id changed or
-- appeared" (deleted_path NULL; its current state is read at fullview time) or
-- "deleted_path went away" (a delete, trash, or the old path of a move).
CREATE TABLE IF NOT EXISTS changes (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id    INTEGER NOT NULL,
    item_id       INTEGER,
    deleted_path  TEXT,
    at            REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_account ON changes(account_id, seq);

-- Upload sessions between intent and the last POST/commit. Chunks live as files under
-- the data directory (uploads/<id>/<offset>) until commit; expired sessions are removed.
CREATE TABLE IF NOT EXISTS uploads (
    id            TEXT PRIMARY KEY,
    account_id    INTEGER NOT NULL,
    parent_id     INTEGER NOT NULL,
    name          TEXT NOT NULL,
    size          INTEGER NOT NULL,
    checksum      TEXT NOT NULL,
    chunked       INTEGER NOT NULL,
    created       REAL NOT NULL,
    expires       REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS playlists (
    uid           TEXT PRIMARY KEY,
    account_id    INTEGER NOT NULL,
    name          TEXT NOT NULL,
    type          TEXT NOT NULL,
    created       REAL NOT NULL,
    modified      REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS playlist_items (
    itemuid       TEXT PRIMARY KEY,
    playlist_uid  TEXT NOT NULL REFERENCES playlists(uid) ON DELETE CASCADE,
    item_id       INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    position      INTEGER NOT NULL
);
-- Listing a playlist, and the ON DELETE CASCADE from items (without an index on the child
-- key every purged item would scan the whole table).
CREATE INDEX IF NOT EXISTS playlists_account ON playlists(account_id);
CREATE INDEX IF NOT EXISTS playlist_items_playlist ON playlist_items(playlist_uid, position);
CREATE INDEX IF NOT EXISTS playlist_items_item ON playlist_items(item_id);

CREATE TABLE IF NOT EXISTS shares (
    uid           TEXT PRIMARY KEY,
    account_id    INTEGER NOT NULL,
    name          TEXT,
    expires_in    INTEGER NOT NULL,            -- seconds; 0 = never
    expires       REAL,                        -- absolute; NULL = never
    public_key    TEXT NOT NULL UNIQUE,        -- the public link's secret
    created       REAL NOT NULL,
    modified      REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS share_resources (
    uid           TEXT PRIMARY KEY,
    share_uid     TEXT NOT NULL REFERENCES shares(uid) ON DELETE CASCADE,
    item_id       INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    type          TEXT NOT NULL,
    position      INTEGER NOT NULL
);
-- Newest-first listing by account, resources of a share, and the cascade from items.
CREATE INDEX IF NOT EXISTS shares_account ON shares(account_id, created, uid);
CREATE INDEX IF NOT EXISTS share_resources_share ON share_resources(share_uid, position);
CREATE INDEX IF NOT EXISTS share_resources_item ON share_resources(item_id);

CREATE TABLE IF NOT EXISTS contacts (
    id            TEXT PRIMARY KEY,
    account_id    INTEGER NOT NULL,
    version       INTEGER NOT NULL,
    data          TEXT NOT NULL,               -- JSON of the contact's other fields
    created       REAL NOT NULL,
    modified      REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS contacts_account ON contacts(account_id);
"""

DEFAULT_VIRTUAL_FOLDERS = ("VZMOBILE", "VZWEB", "MyComputer")


def iso(ts: float | None) -> str | None:
    """Seconds since the epoch -> ``2015-12-21T10:45:54.634Z``."""
    if ts is None:
        return None
    whole = int(ts)
    ms = int(round((ts - whole) * 1000))
    if ms == 1000:
        whole, ms = whole + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{ms:03d}Z"


def new_id(nbytes: int = 16) -> str:
    return secrets.token_hex(nbytes)


@dataclass(frozen=True)
class Account:
    id: int
    user_id: str
    username: str
    quota: int
    root_id: int


@dataclass(frozen=True)
class _LogRows:
    """An account held ``rows`` change-log rows with seq in (floor, counted_to]; floor is
    its log_floor then (all its rows are above it)."""
    floor: int
    counted_to: int
    rows: int


class Store:
    """The database of one embedded cloud. See the module docstring for the contract."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.RLock()
        # Commits made with ``synchronous=NORMAL`` (``not_synced``) are made durable by
        # one WAL flush shared by the threads waiting at once (uploads).
        self.wal_sync = WalSync(path)
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA busy_timeout=5000")
        had_usage = self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='usage'").fetchone()
        self.db.executescript(SCHEMA)
        if had_usage is None:  # a database from before the usage table: count once
            with self.tx() as db:
                db.execute("DELETE FROM usage")
                db.execute("INSERT INTO usage (account_id, used) SELECT account_id, SUM(size)"
                           " FROM items WHERE is_folder = 0 GROUP BY account_id")
        with self.tx() as db:
            if db.execute("SELECT 1 FROM meta WHERE key='epoch'").fetchone() is None:
                db.execute("INSERT INTO meta VALUES ('epoch', ?)", (new_id(4),))
                db.execute(
                    "INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
        self.epoch: str = self.db.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()[0]
        # Blob checksums whose last reference went away inside the current transaction;
        # deleted from disk by the owner of the blob store once the transaction commits.
        self.released: set[str] = set()
        # Per account, its change-log row count as of a seq (see ``prune_changes``).
        self._log_rows: dict[int, _LogRows] = {}

    def close(self) -> None:
        with self.lock:
            self.db.close()

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction (BEGIN IMMEDIATE ... COMMIT, ROLLBACK on error), under the lock.

        Re-entrant: a nested ``tx()`` joins the outer transaction.
        """
        with self.lock:
            if self.db.in_transaction:
                yield self.db
                return
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                self.released.clear()
                raise
            else:
                self.db.execute("COMMIT")

    # Accounts ---------------------------------------------------------------------------

    def create_account(
        self, username: str, password_hash: str, quota: int,
        virtual_folders: tuple[str, ...] = DEFAULT_VIRTUAL_FOLDERS,
    ) -> Account:
        now = time.time()
        with self.tx() as db:
            if db.execute("SELECT 1 FROM accounts WHERE username=?", (username,)).fetchone():
                raise BadRequestError(f"user {username!r} exists already")
            cur = db.execute(
                "INSERT INTO accounts (user_id, username, password_hash, quota, created)"
                " VALUES (?, ?, ?, ?, ?)",
                (new_id(16), username, password_hash, quota, now),
            )
            account_id = int(cur.lastrowid or 0)
            root = db.execute(
                "INSERT INTO items (account_id, parent_id, name, is_folder, created, modified)"
                " VALUES (?, NULL, '', 1, ?, ?)",
                (account_id, now, now),
            ).lastrowid
            db.execute("UPDATE accounts SET root_id=? WHERE id=?", (root, account_id))
            for name in virtual_folders:
                item = self.insert_item(account_id, int(root or 0), name, is_folder=True)
                self.log_change(account_id, item_id=item)
        acct = self.account_by_id(account_id)
        assert acct is not None
        return acct

    def _account(self, row: sqlite3.Row | None) -> Account | None:
        if row is None:
            return None
        return Account(row["id"], row["user_id"], row["username"], row["quota"], row["root_id"])

    def account_by_id(self, account_id: int) -> Account | None:
        with self.tx() as db:
            return self._account(db.execute("SELECT * FROM accounts WHERE id=?", (account_id,)).fetchone())

    def account_by_username(self, username: str) -> Account | None:
        with self.tx() as db:
            return self._account(
                db.execute("SELECT * FROM accounts WHERE username=?", (username,)).fetchone()
            )

    def quota_used(self, account_id: int) -> int:
        """Bytes used: current versions of every file not purged (the trash counts),
        as the ``usage`` table's triggers keep it."""
        with self.tx() as db:
            row = db.execute("SELECT used FROM usage WHERE account_id=?",
                             (account_id,)).fetchone()
            return int(row[0]) if row is not None else 0

    # Items ------------------------------------------------------------------------------

    def insert_item(
        self, account_id: int, parent_id: int, name: str, *, is_folder: bool,
        size: int = 0, checksum: str | None = None, mime_type: str | None = None,
        attrs: dict[str, Any] | None = None, now: float | None = None,
    ) -> int:
        """Insert a live item (the caller checked that the name is free); returns its id."""
        now = time.time() if now is None else now
        with self.tx() as db:
            cur = db.execute(
                "INSERT INTO items (account_id, parent_id, name, is_folder, size, checksum,"
                " mime_type, attrs, content_token, created, modified)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (account_id, parent_id, name, int(is_folder), size, checksum, mime_type,
                 json.dumps(attrs) if attrs else None,
                 None if is_folder else new_id(16), now, now),
            )
            item_id = int(cur.lastrowid or 0)
            if not is_folder and checksum is not None:
                db.execute(
                    "INSERT INTO versions (item_id, version, checksum, size, created)"
                    " VALUES (?, 1, ?, ?, ?)",
                    (item_id, checksum, size, now),
                )
            return item_id

    def child(self, parent_id: int, name: str) -> sqlite3.Row | None:
        """The untrashed entry ``name`` in folder ``parent_id``."""
        with self.tx() as db:
            return db.execute(
                "SELECT * FROM items WHERE parent_id=? AND name=? AND trashed IS NULL",
                (parent_id, name),
            ).fetchone()

    def item(self, item_id: int) -> sqlite3.Row | None:
        with self.tx() as db:
            return db.execute("SELECT * FROM items WHERE id=?", (item_id,)).fetchone()

    def resolve(self, account: Account, path: str) -> sqlite3.Row:
        """The untrashed item at cloud ``path`` (``/`` = the root), or NotFoundError.

        Raises GoneError (410) when the path names an item that is in the trash.
        """
        parts = P.split_path(path)
        with self.tx() as db:
            row = db.execute("SELECT * FROM items WHERE id=?", (account.root_id,)).fetchone()
            for i, name in enumerate(parts):
                if not row["is_folder"]:
                    raise NotFoundError(f"not a folder: {P.join(parts[:i])}")
                nxt = db.execute(
                    "SELECT * FROM items WHERE parent_id=? AND name=? AND trashed IS NULL",
                    (row["id"], name),
                ).fetchone()
                if nxt is None:
                    if i == len(parts) - 1 and db.execute(
                        "SELECT 1 FROM items WHERE parent_id=? AND name=? AND trashed IS NOT NULL",
                        (row["id"], name),
                    ).fetchone():
                        raise GoneError(f"in the trash: {path}")
                    raise NotFoundError(f"no such file or folder: {P.join(parts[: i + 1])}")
                row = nxt
            return row

    def resolve_folder(self, account: Account, path: str) -> sqlite3.Row:
        row = self.resolve(account, path)
        if not row["is_folder"]:
            raise BadRequestError(f"not a folder: {path}")
        return row

    def path_of(self, item_id: int) -> str:
        """The cloud path of an item, by walking its parents (``/`` for the root)."""
        names: list[str] = []
        with self.tx() as db:
            current: int | None = item_id
            while current is not None:
                row = db.execute(
                    "SELECT parent_id, name FROM items WHERE id=?", (current,)
                ).fetchone()
                if row is None:
                    raise NotFoundError(f"no item {item_id}")
                if row["parent_id"] is None:
                    break
                names.append(row["name"])
                current = row["parent_id"]
        return P.join(list(reversed(names)))

    def is_live(self, item_id: int) -> bool:
        """True when neither the item nor any ancestor is in the trash."""
        with self.tx() as db:
            current: int | None = item_id
            while current is not None:
                row = db.execute(
                    "SELECT parent_id, trashed FROM items WHERE id=?", (current,)
                ).fetchone()
                if row is None or row["trashed"] is not None:
                    return False
                current = row["parent_id"]
            return True

    def descendants(self, item_id: int) -> list[sqlite3.Row]:
        """Every item below ``item_id`` (trashed or not), parents before children."""
        with self.tx() as db:
            return db.execute(
                "WITH RECURSIVE sub(id, depth) AS ("
                " SELECT id, 0 FROM items WHERE parent_id=?"
                " UNION ALL SELECT items.id, sub.depth + 1 FROM items JOIN sub"
                " ON items.parent_id = sub.id)"
                " SELECT items.* FROM items JOIN sub ON items.id = sub.id ORDER BY sub.depth",
                (item_id,),
            ).fetchall()

    def to_model(
        self, account: Account, row: sqlite3.Row, parent_path: str | None = None,
        count: int | None = None,
    ) -> CloudFile | CloudFolder:
        """The wire object of an item row. ``parent_path`` saves a walk when known, and
        ``count`` (a folder's live children) a query when known."""
        if parent_path is None:
            parent_path = self.path_of(row["parent_id"]) if row["parent_id"] else ""
        # Stored names and derived paths are valid already: join without re-validating
        # (re-parsing the parent path cost a third of a 100k-item fullview).
        path = join_path(parent_path or "/", row["name"])
        common = dict(
            name=row["name"],
            parent_path=parent_path or "/",
            deleted=row["trashed"] is not None,
            version=row["version"],
            version_created=iso(row["modified"]),
            creation_date=iso(row["created"]),
            uri=P.item_uri(account.user_id, path, bool(row["is_folder"])),
            favorite=bool(row["favorite"]),
            tags=row["tags"],
        )
        if row["is_folder"]:
            if count is None:
                with self.tx() as db:
                    count = db.execute(
                        "SELECT COUNT(*) FROM items WHERE parent_id=? AND trashed IS NULL",
                        (row["id"],),
                    ).fetchone()[0]
            return CloudFolder(size=0, count=count, **common)
        name = row["name"]
        ext = name.rsplit(".", 1)[1].lower() if "." in name.strip(".") else ""
        attrs = json.loads(row["attrs"]) if row["attrs"] else {}
        attrs["mimeType"] = row["mime_type"] or "application/octet-stream"
        return CloudFile(
            size=row["size"],
            checksum=row["checksum"],
            content_accessible=True,
            content_token=row["content_token"],
            extension=ext,
            system_attributes=attrs,
            **common,
        )

    # Change log -------------------------------------------------------------------------

    def log_change(
        self, account_id: int, *, item_id: int | None = None, deleted_path: str | None = None
    ) -> None:
        """Record that ``item_id`` changed/appeared, or that ``deleted_path`` went away."""
        with self.tx() as db:
            db.execute(
                "INSERT INTO changes (account_id, item_id, deleted_path, at) VALUES (?, ?, ?, ?)",
                (account_id, item_id, deleted_path, time.time()),
            )

    def log_subtree(self, account_id: int, item_id: int) -> None:
        """Record the item and everything live below it as changed (after a move/restore)."""
        self.log_change(account_id, item_id=item_id)
        for row in self.descendants(item_id):
            if row["trashed"] is None:
                self.log_change(account_id, item_id=row["id"])

    def last_seq(self, account_id: int) -> int:
        with self.tx() as db:
            row = db.execute(
                "SELECT MAX(seq) FROM changes WHERE account_id=?", (account_id,)
            ).fetchone()
            return int(row[0] or 0)

    def etag(self, account_id: int) -> str:
        return f"{self.epoch}-{self.last_seq(account_id)}"

    def log_floor(self, account_id: int) -> int:
        """Change-log rows with seq <= this were pruned (an older etag gets 205)."""
        with self.tx() as db:
            row = db.execute("SELECT log_floor FROM accounts WHERE id=?", (account_id,)).fetchone()
            return int(row[0]) if row else 0

    def prune_changes(self, account_id: int, keep: int) -> None:
        """Keep the newest ``keep`` change-log rows of the account; raise its log_floor to
        the newest seq deleted.

        Cheap enough for every fullview: the account's row count is remembered
        (``_log_rows``), so a call counts only the rows logged since the last one and
        deletes only the rows past ``keep``, each through the (account_id, seq) index:
        its cost follows the changes since the last call, not the size of the log (it
        used to step over up to ``keep`` index entries under the store lock each time).
        The count is recounted in full if log_floor moved under it, and is kept only from
        a call in its own transaction (a rollback of an enclosing one would falsify it).
        """
        keep = max(keep, 0)
        with self.lock:
            nested = self.db.in_transaction
            with self.tx() as db:
                floor = self.log_floor(account_id)
                memo = self._log_rows.get(account_id)
                if memo is None or memo.floor != floor or nested:
                    memo = _LogRows(floor=floor, counted_to=floor, rows=0)
                new, newest = db.execute(
                    "SELECT COUNT(*), MAX(seq) FROM changes WHERE account_id=? AND seq>?",
                    (account_id, memo.counted_to),
                ).fetchone()
                rows = memo.rows + int(new)
                counted_to = int(newest) if newest is not None else memo.counted_to
                if rows > keep:
                    # The (rows - keep)th oldest row after the floor is the newest to go.
                    floor = int(db.execute(
                        "SELECT seq FROM changes WHERE account_id=? AND seq>?"
                        " ORDER BY seq LIMIT 1 OFFSET ?",
                        (account_id, floor, rows - keep - 1),
                    ).fetchone()[0])
                    db.execute("DELETE FROM changes WHERE account_id=? AND seq<=?",
                               (account_id, floor))
                    db.execute("UPDATE accounts SET log_floor=MAX(log_floor, ?) WHERE id=?",
                               (floor, account_id))
                    rows = keep
            if nested:
                self._log_rows.pop(account_id, None)
            else:
                self._log_rows[account_id] = _LogRows(floor, counted_to, rows)

    # Blob references --------------------------------------------------------------------

    def release_versions(self, item_ids: list[int], keep_latest: int = 0) -> None:
        """Delete the version rows of these items; remember blobs that became garbage.

        ``keep_latest`` > 0 keeps that many newest version rows of each item (pruning old
        versions after an upload) and deletes only the older ones.
        """
        if not item_ids:
            return
        with self.tx() as db:
            checksums: set[str] = set()
            for i in range(0, len(item_ids), 500):
                batch = item_ids[i: i + 500]
                marks = ",".join("?" * len(batch))
                where = f"item_id IN ({marks})"
                if keep_latest > 0:
                    where += (
                        " AND id NOT IN (SELECT newer.id FROM versions AS newer"
                        " WHERE newer.item_id = versions.item_id"
                        " ORDER BY newer.version DESC, newer.id DESC LIMIT ?)"
                    )
                    params: list[int] = [*batch, keep_latest]
                else:
                    params = list(batch)
                checksums.update(
                    r[0] for r in db.execute(
                        f"SELECT DISTINCT checksum FROM versions WHERE {where}", params
                    )
                )
                db.execute(f"DELETE FROM versions WHERE {where}", params)
            for checksum in checksums:
                if not db.execute(
                    "SELECT 1 FROM versions WHERE checksum=? LIMIT 1", (checksum,)
                ).fetchone():
                    self.released.add(checksum)

    def take_released(self) -> set[str]:
        """Checksums released by committed transactions; the caller deletes the blobs."""
        with self.lock:
            out, self.released = self.released, set()
            return out

    def referenced(self, checksum: str) -> bool:
        with self.tx() as db:
            return db.execute(
                "SELECT 1 FROM versions WHERE checksum=? LIMIT 1", (checksum,)
            ).fetchone() is not None
