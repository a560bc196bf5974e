"""Operations on one account's item tree shared by the fops, trash, virtual folder,
favorites, tags and search handlers: lookups that speak the API's errors, moving,
copying, trashing, purging and restoring subtrees, and a one-query snapshot of the tree.

Contract of every mutating function here:
- the caller holds a transaction (``with store.tx():``) around the whole operation, so a
  failure half-way (a 409 deep in a merge) rolls everything back;
- every change is recorded with ``store.log_change`` so fullview deltas see it: a path
  that went away as ``deleted_path`` (a trashed, purged or moved item), and every item
  that appeared or changed by id (``store.log_subtree`` after a move, copy or restore);
- nothing here checks the account of an id it is given: callers only pass rows obtained
  through ``resolve``/``resolve_uri``/``virtual_folder`` (which are account-scoped) and
  rows below them.

The trash (see ``store.py``): a trashed item carries ``trashed`` = when; its subtree stays
attached and unflagged but unreachable by path. An item is "in the trash" when it or an
ancestor is flagged (``trashed_at``). A trashed item keeps its (parent_id, name), so its
original path is derived like any other path, and several trashed items may share one.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from vzcloud.api import paths as P
from vzcloud.api.errors import (
    BadRequestError,
    ConflictError,
    GoneError,
    NotFoundError,
    QuotaExceededError,
)
from vzcloud.server.config import ServerConfig
from vzcloud.server.store import Account, Store

_BATCH = 500  # ids per IN (...) query (SQLite allows 999 parameters at least)

# Lookups -----------------------------------------------------------------------------------


def resolve(store: Store, account: Account, path: str) -> sqlite3.Row:
    """The live item at ``path``; 404 when missing *or in the trash*.

    The endpoints served here declare 404 for a trashed path (only metadata and download
    answer 410), so GoneError is mapped, keeping its description.
    """
    try:
        return store.resolve(account, path)
    except GoneError as exc:
        raise NotFoundError(exc.description) from None


def resolve_folder(store: Store, account: Account, path: str) -> sqlite3.Row:
    """Like ``resolve``; 400 when the item is a file."""
    row = resolve(store, account, path)
    if not row["is_folder"]:
        raise BadRequestError(f"not a folder: {path}")
    return row


def resolve_entry(store: Store, account: Account, path: str, what: str) -> sqlite3.Row:
    """The live file or folder at ``path`` below a virtual folder (404 as ``resolve``).

    400 for ``/`` and for a virtual folder itself: those are managed through the
    virtual folder API, not by ``what`` ("moved", "deleted", ...).
    """
    row = resolve(store, account, path)
    if row["parent_id"] is None:
        raise BadRequestError(f"the root cannot be {what}")
    if row["parent_id"] == account.root_id:
        raise BadRequestError(
            f"{path} is a virtual folder and cannot be {what} here; use /virtualfolder"
        )
    return row


def virtual_folder(store: Store, account: Account, name: str) -> sqlite3.Row:
    """The virtual folder ``name`` (a child of the root); 404 when there is none."""
    row = store.child(account.root_id, name)
    if row is None:
        raise NotFoundError(f"no virtual folder named {name!r}")
    return row


def resolve_uri(store: Store, account: Account, uri: str) -> sqlite3.Row:
    """The live item an item URI (``dv-file://<user>:VZMOBILE/a.jpg``) names.

    400: malformed, or it names the root. 404: another account's user id (never
    revealed as such), a missing or trashed item, or a ``dv-file`` URI naming a folder
    (or ``dv-folder`` naming a file): the URI names something that does not exist.
    """
    user_id, path, is_folder = P.parse_uri(uri)
    if not P.split_path(path):
        raise BadRequestError(f"invalid item uri {uri!r}: it names the root, not an item")
    if user_id != account.user_id:
        raise NotFoundError(f"no such file or folder: {uri}")
    row = resolve(store, account, path)
    if bool(row["is_folder"]) != is_folder:
        raise NotFoundError(
            f"no such {'folder' if is_folder else 'file'}: {uri} names a "
            f"{'file' if row['is_folder'] else 'folder'}"
        )
    return row


def item_json(store: Store, account: Account, item_id: int) -> dict[str, Any]:
    """``{"file": {...}}`` or ``{"folder": {...}}``: the wire answer naming one item."""
    row = store.item(item_id)
    assert row is not None
    return {"folder" if row["is_folder"] else "file": store.to_model(account, row).to_json()}


def trashed_at(store: Store, item_id: int) -> float | None:
    """When the item went to the trash: its own ``trashed`` or its nearest trashed
    ancestor's; None when it is live."""
    with store.tx() as db:
        current: int | None = item_id
        while current is not None:
            row = db.execute("SELECT parent_id, trashed FROM items WHERE id=?",
                             (current,)).fetchone()
            if row is None:
                return None
            if row["trashed"] is not None:
                return float(row["trashed"])
            current = row["parent_id"]
        return None


def is_ancestor(store: Store, ancestor_id: int, item_id: int) -> bool:
    """True when ``ancestor_id`` is ``item_id`` itself or one of its ancestors."""
    with store.tx() as db:
        current: int | None = item_id
        while current is not None:
            if current == ancestor_id:
                return True
            row = db.execute("SELECT parent_id FROM items WHERE id=?", (current,)).fetchone()
            current = row["parent_id"] if row is not None else None
        return False


def live_children(store: Store, folder_id: int) -> list[sqlite3.Row]:
    with store.tx() as db:
        return db.execute(
            "SELECT * FROM items WHERE parent_id=? AND trashed IS NULL ORDER BY id", (folder_id,)
        ).fetchall()


def live_bytes(store: Store, row: sqlite3.Row) -> int:
    """Bytes of the live files in ``row``'s subtree (the row itself included)."""
    if not row["is_folder"]:
        return int(row["size"])
    return sum(live_bytes(store, child) for child in live_children(store, row["id"]))


# Small mutations ------------------------------------------------------------------------------


def update_item(
    store: Store, account: Account, row: sqlite3.Row, *, create_version: bool = False,
    **columns: Any,
) -> None:
    """Set ``columns`` (favorite, tags) of an item; ``create_version`` also bumps its
    ``version``. Logs the change, unless nothing changed (so a repeated favorite call does
    not make every client's next delta list the item again)."""
    changed = {k: v for k, v in columns.items() if row[k] != v}
    if create_version:
        changed["version"] = row["version"] + 1
    if not changed:
        return
    with store.tx() as db:
        assignments = ", ".join(f"{column}=?" for column in changed)
        db.execute(f"UPDATE items SET {assignments} WHERE id=?", (*changed.values(), row["id"]))
        store.log_change(account.id, item_id=row["id"])


def trash(store: Store, account: Account, row: sqlite3.Row, now: float | None = None) -> None:
    """Send a live item (and so its subtree) to the trash; logs its path as deleted."""
    path = store.path_of(row["id"])
    with store.tx() as db:
        db.execute("UPDATE items SET trashed=? WHERE id=?",
                   (time.time() if now is None else now, row["id"]))
        store.log_change(account.id, deleted_path=path)


def purge(store: Store, account: Account, row: sqlite3.Row) -> None:
    """Remove an item and its whole subtree for good (trashed descendants included):
    their version rows (blobs no longer referenced are deleted after commit) and, by
    cascade, their playlist entries and share resources. Logs the path as deleted when
    the item was live (a trashed one was logged when it went to the trash)."""
    was_live = trashed_at(store, row["id"]) is None
    path = store.path_of(row["id"])
    with store.tx() as db:
        ids = [row["id"], *(r["id"] for r in store.descendants(row["id"]))]
        store.release_versions(ids)
        # Deepest first: items.parent_id references items.id.
        for i in range(len(ids), 0, -500):
            batch = ids[max(0, i - 500):i]
            db.execute(f"DELETE FROM items WHERE id IN ({','.join('?' * len(batch))})", batch)
        if was_live:
            store.log_change(account.id, deleted_path=path)


def move(store: Store, account: Account, row: sqlite3.Row, parent_id: int, name: str) -> None:
    """Re-attach an item as ``name`` in ``parent_id`` (one row changes). Logs the old path
    as deleted and the item and its live subtree as new, as the reference says a moved
    folder must appear in fullview deltas. The caller checked that the name is free."""
    old_path = store.path_of(row["id"])
    with store.tx() as db:
        db.execute("UPDATE items SET parent_id=?, name=? WHERE id=?", (parent_id, name, row["id"]))
        store.log_change(account.id, deleted_path=old_path)
        store.log_subtree(account.id, row["id"])


def copy_subtree(
    store: Store, account: Account, row: sqlite3.Row, parent_id: int, name: str,
    now: float | None = None,
) -> int:
    """Copy an item and its live subtree (trashed parts are left behind) as ``name`` in
    ``parent_id``; returns the new id and logs every new item.

    A copied file is a new file: version 1 of the same content (its version row names the
    same blob, so nothing is written to disk), its system attributes and tags, a new
    content token, created and versionCreated = now. Favorite marks are not copied: a
    favorite is the user's mark on that item, not part of its content. Quota and the
    folder file limit are the caller's to check.
    """
    now = time.time() if now is None else now

    def copy_one(src: sqlite3.Row, into: int, as_name: str) -> int:
        new_id = store.insert_item(
            account.id, into, as_name, is_folder=bool(src["is_folder"]), size=src["size"],
            checksum=src["checksum"], mime_type=src["mime_type"],
            attrs=json.loads(src["attrs"]) if src["attrs"] else None, now=now,
        )
        if src["tags"]:
            with store.tx() as db:
                db.execute("UPDATE items SET tags=? WHERE id=?", (src["tags"], new_id))
        if src["is_folder"]:
            for child in live_children(store, src["id"]):
                copy_one(child, new_id, child["name"])
        return new_id

    with store.tx():
        new_id = copy_one(row, parent_id, name)
        store.log_subtree(account.id, new_id)
    return new_id


# Copy, move and rename with their conflict rules ----------------------------------------------


@dataclass(frozen=True)
class Conflicts:
    """How a copy or move treats an existing item at its target (the fops parameters)."""

    safe: bool = False
    override: str | None = None  # "overwrite" | "modify" | None
    conflictsolve: str | None = None  # "copy" | None


_NUMBERED = re.compile(r"^(?P<base>.*) \((?P<n>\d+)\)$")


def free_name(store: Store, folder_id: int, name: str) -> str:
    """A name like ``name`` that no live item in ``folder_id`` has: ``photo.jpg`` ->
    ``photo (1).jpg``, ``photo (1).jpg`` -> ``photo (2).jpg``, ``Docs`` -> ``Docs (1)``.
    The number goes before the extension so the file keeps its type."""
    dot = name.rfind(".") if "." in name.strip(".") else -1
    stem, ext = (name[:dot], name[dot:]) if dot > 0 else (name, "")
    numbered = _NUMBERED.match(stem)
    if numbered:
        stem = numbered["base"]
    with store.tx() as db:
        taken = {r[0] for r in db.execute(
            "SELECT name FROM items WHERE parent_id=? AND trashed IS NULL", (folder_id,))}
    n = int(numbered["n"]) + 1 if numbered else 1
    while True:
        suffix = f" ({n}){ext}"
        base = stem
        while len((base + suffix).encode("utf-8")) > P.MAX_NAME_BYTES and base:
            base = base[:-1]
        candidate = base + suffix
        if candidate not in taken:
            return candidate
        n += 1


def check_folder_room(store: Store, config: ServerConfig, folder_id: int) -> None:
    """413 ``folder_full`` when the folder holds ``config.folder_file_limit`` live files
    already (the same limit and error as uploads)."""
    with store.tx() as db:
        files = db.execute(
            "SELECT COUNT(*) FROM items WHERE parent_id=? AND is_folder=0 AND trashed IS NULL",
            (folder_id,),
        ).fetchone()[0]
    if files >= config.folder_file_limit:
        raise QuotaExceededError(f"a folder holds at most {config.folder_file_limit} files",
                                 error="folder_full")


def transfer(
    store: Store, config: ServerConfig, account: Account, src: sqlite3.Row,
    parent: sqlite3.Row, name: str, how: Conflicts, *, copy: bool,
) -> int:
    """Copy (``copy=True``) or move the live item ``src`` to ``name`` in the live folder
    ``parent``; returns the id of the resulting item. The caller checked that ``parent``
    is not ``src`` or below it.

    When a live item already has that name, in this order:
    1. it is ``src`` itself: a move does nothing; a copy is 400 (nothing to copy onto)
       unless rule 2 gives the copy a new name;
    2. ``safe`` and ``conflictsolve=copy``: the item gets a free name (``a (1).txt``);
    3. it contains ``src`` (an ancestor): 400, it cannot be replaced or merged into;
    4. folder onto folder: ``override=modify`` merges (each child is transferred into it
       by these same rules, recursively; a moved-from folder is removed once empty),
       ``override=overwrite`` sends the existing folder to the trash and takes its place,
       no override is 409;
    5. a file onto a folder or a folder onto a file: 409 (never replace across kinds);
    6. file onto file: ``safe`` is 409; otherwise the existing file goes to the trash
       (restorable, not purged) and ``src`` takes its place.
    A file new to a folder is subject to the folder file limit (413 ``folder_full``).
    """
    existing = store.child(parent["id"], name)
    if existing is not None and existing["id"] == src["id"] and not copy:
        return int(src["id"])
    if existing is not None and how.safe and how.conflictsolve == "copy":
        name, existing = free_name(store, parent["id"], name), None
    if existing is not None:
        target = store.path_of(existing["id"])
        if existing["id"] == src["id"]:
            raise BadRequestError(
                f"cannot copy {target} onto itself; use safe=true and conflictsolve=copy "
                "to make a copy under a free name"
            )
        if is_ancestor(store, existing["id"], src["id"]):
            raise BadRequestError(f"the target {target} contains the source")
        if src["is_folder"] and existing["is_folder"]:
            if how.override == "modify":
                _merge(store, config, account, src, existing, how, copy=copy)
                return int(existing["id"])
            if how.override != "overwrite":
                raise ConflictError(
                    f"a folder exists at {target}; pass override=modify to merge into it, "
                    "override=overwrite to replace it, or safe=true&conflictsolve=copy"
                )
        elif bool(src["is_folder"]) != bool(existing["is_folder"]):
            kind = "folder" if existing["is_folder"] else "file"
            raise ConflictError(f"a {kind} exists at {target}")
        elif how.safe:
            raise ConflictError(
                f"a file exists at {target}; pass safe=false to replace it or "
                "conflictsolve=copy to keep both"
            )
        trash(store, account, existing)
    elif not src["is_folder"] and (copy or src["parent_id"] != parent["id"]):
        check_folder_room(store, config, parent["id"])
    if copy:
        return copy_subtree(store, account, src, parent["id"], name)
    move(store, account, src, parent["id"], name)
    return int(src["id"])


def _merge(
    store: Store, config: ServerConfig, account: Account, src: sqlite3.Row,
    into: sqlite3.Row, how: Conflicts, *, copy: bool,
) -> None:
    """Transfer every live child of folder ``src`` into folder ``into`` (see
    ``transfer``). A move then re-attaches ``src``'s trashed children to ``into`` (they
    stay in the trash, restorable at their new original path) and removes the empty
    ``src``, logging its path as deleted."""
    src_path = store.path_of(src["id"])
    for child in live_children(store, src["id"]):
        transfer(store, config, account, child, into, child["name"], how, copy=copy)
    if copy:
        return
    with store.tx() as db:
        db.execute("UPDATE items SET parent_id=? WHERE parent_id=?", (into["id"], src["id"]))
        db.execute("DELETE FROM items WHERE id=?", (src["id"],))
        store.log_change(account.id, deleted_path=src_path)


# Restore -------------------------------------------------------------------------------------


def find_in_trash(store: Store, account: Account, path: str) -> sqlite3.Row:
    """The item in the trash whose original path is ``path``: an item sent to the trash
    itself or one inside a trashed folder. When several match (a.txt trashed, a new a.txt
    made and trashed too), the one trashed last. 404 when none."""
    parts = P.split_path(path)
    if not parts:
        raise NotFoundError("the root is never in the trash")
    with store.tx() as db:
        candidates = db.execute(
            "SELECT * FROM items WHERE account_id=? AND name=?", (account.id, parts[-1])
        ).fetchall()
        best: tuple[float, sqlite3.Row] | None = None
        for row in candidates:
            when = trashed_at(store, row["id"])
            if when is not None and store.path_of(row["id"]) == path and (
                best is None or when > best[0]
            ):
                best = (when, row)
    if best is None:
        raise NotFoundError(f"not in the trash: {path}")
    return best[1]


def restore(store: Store, account: Account, path: str, now: float | None = None) -> None:
    """Put the item in the trash whose original path is ``path`` (``find_in_trash``) back
    at that path, live, with its subtree; logs everything restored as new.

    Missing folders on the way are recreated empty, the way a desktop recycle bin
    restores a file out of a deleted folder: the trashed ancestor itself stays in the
    trash with the rest of its contents, so restoring one file never brings back more
    than was asked. Restoring that ancestor later finds its name taken by the recreated
    folder and is 409, like any other restore onto a live name. 409 also when a file
    stands where a folder on the way should be. 404 when the virtual folder is gone.
    """
    item = find_in_trash(store, account, path)
    parts = P.split_path(path)
    with store.tx() as db:
        folder = virtual_folder(store, account, parts[0])
        for i, name in enumerate(parts[1:-1], start=2):
            row = store.child(folder["id"], name)
            if row is None:
                new_id = store.insert_item(account.id, folder["id"], name, is_folder=True, now=now)
                store.log_change(account.id, item_id=new_id)
                row = store.item(new_id)
                assert row is not None
            elif not row["is_folder"]:
                raise ConflictError(
                    f"cannot restore {path}: {P.join(parts[:i])} is a file, not a folder"
                )
            folder = row
        if store.child(folder["id"], parts[-1]) is not None:
            raise ConflictError(
                f"cannot restore {path}: a live item has that path; move or rename it first"
            )
        db.execute("UPDATE items SET trashed=NULL, parent_id=? WHERE id=?",
                   (folder["id"], item["id"]))
        store.log_subtree(account.id, item["id"])


# A snapshot of the whole tree -----------------------------------------------------------------


class Snapshot:
    """Every item of one account, read in one query, with paths, virtual folders and
    trash state derived in Python (no query per item). For listings that scan the
    account (search, trash, favorites); stale as soon as the transaction ends, so it is
    read-only.
    """

    # A partial snapshot's (``of_items``) live child counts of the folders asked for.
    _counts: dict[int, int] | None = None

    def __init__(self, store: Store, account: Account) -> None:
        with store.tx() as db:
            rows = db.execute("SELECT * FROM items WHERE account_id=?", (account.id,)).fetchall()
        self._init_memo(account)
        self.rows: dict[int, sqlite3.Row] = {r["id"]: r for r in rows}
        self.children: dict[int, list[sqlite3.Row]] = {}
        for r in rows:
            if r["parent_id"] is not None:
                self.children.setdefault(r["parent_id"], []).append(r)

    def _init_memo(self, account: Account) -> None:
        self.root_id = account.root_id
        self._paths: dict[int, str] = {self.root_id: "/"}
        self._trashed: dict[int, float | None] = {self.root_id: None}
        self._tops: dict[int, int | None] = {self.root_id: None}

    def _chain(self, item_id: int, memo: dict[int, Any]) -> list[int]:
        """``item_id`` and its ancestors up to (excluding) the first one in ``memo``."""
        chain: list[int] = []
        current = item_id
        while current not in memo:
            chain.append(current)
            current = self.rows[current]["parent_id"]
        return chain

    def path(self, item_id: int) -> str:
        for i in reversed(self._chain(item_id, self._paths)):
            row = self.rows[i]
            parent = self._paths[row["parent_id"]]
            self._paths[i] = (parent if parent != "/" else "") + "/" + row["name"]
        return self._paths[item_id]

    def trashed_at(self, item_id: int) -> float | None:
        """As ``tree.trashed_at``: own or nearest ancestor's trash time; None if live."""
        for i in reversed(self._chain(item_id, self._trashed)):
            row = self.rows[i]
            self._trashed[i] = row["trashed"] if row["trashed"] is not None else (
                self._trashed[row["parent_id"]])
        return self._trashed[item_id]

    def top(self, item_id: int) -> int | None:
        """The id of the virtual folder the item is in (itself for a virtual folder);
        None for the root."""
        for i in reversed(self._chain(item_id, self._tops)):
            parent = self.rows[i]["parent_id"]
            self._tops[i] = i if parent == self.root_id else self._tops[parent]
        return self._tops[item_id]

    def live_child_count(self, folder_id: int) -> int:
        """The ``count`` of a folder that is live: its children not trashed themselves."""
        if self._counts is not None:  # known for the folders asked; a file has none
            return self._counts[folder_id] if self.rows[folder_id]["is_folder"] else 0
        return sum(1 for c in self.children.get(folder_id, ()) if c["trashed"] is None)

    @classmethod
    def of_items(cls, store: Store, account: Account, item_ids: Iterable[int]) -> Snapshot:
        """A partial snapshot for a fullview delta: the rows of ``item_ids`` that exist
        (in the account) and of all their ancestors, read in batches, so its cost follows
        the number of items asked for, not the account's size. ``path``, ``trashed_at``
        and ``top`` work for every row it holds; ``children`` is empty, and
        ``live_child_count`` knows the folders among ``item_ids`` (read in the same
        transaction)."""
        snap = cls.__new__(cls)
        snap._init_memo(account)
        snap.rows = {}
        snap.children = {}
        snap._counts = {}
        wanted = list(dict.fromkeys(item_ids))
        asked = wanted
        with store.tx() as db:
            while wanted:
                for i in range(0, len(wanted), _BATCH):
                    batch = wanted[i:i + _BATCH]
                    for row in db.execute(
                            f"SELECT * FROM items WHERE account_id=? AND id IN"
                            f" ({','.join('?' * len(batch))})", (account.id, *batch)):
                        snap.rows[row["id"]] = row
                # Ancestors not read yet (ids of other accounts are never followed).
                wanted = list(dict.fromkeys(
                    r["parent_id"] for r in snap.rows.values()
                    if r["parent_id"] is not None and r["parent_id"] not in snap.rows))
            folders = [i for i in asked if i in snap.rows and snap.rows[i]["is_folder"]]
            for i in range(0, len(folders), _BATCH):
                batch = folders[i:i + _BATCH]
                snap._counts.update({folder: 0 for folder in batch})
                snap._counts.update((int(r[0]), int(r[1])) for r in db.execute(
                    f"SELECT parent_id, COUNT(*) FROM items WHERE trashed IS NULL AND"
                    f" parent_id IN ({','.join('?' * len(batch))}) GROUP BY parent_id",
                    batch))
        return snap

    def live_items(self, top_id: int | None = None) -> Iterator[sqlite3.Row]:
        """Live files and folders below the virtual folders (not the virtual folders
        themselves), of one virtual folder or (``top_id`` None) of all."""
        for item_id, row in self.rows.items():
            parent = row["parent_id"]
            if parent is None or parent == self.root_id:
                continue
            if (top_id is None or self.top(item_id) == top_id) and self.trashed_at(item_id) is None:
                yield row

    def subtree(self, item_id: int, *, skip_trashed: bool = False) -> Iterator[sqlite3.Row]:
        """Every item below ``item_id``, parents before children; ``skip_trashed`` leaves
        out items sent to the trash themselves, with everything below them."""
        def kids(parent: int) -> list[sqlite3.Row]:
            rows = self.children.get(parent, [])
            return [r for r in reversed(rows) if not (skip_trashed and r["trashed"] is not None)]

        stack = kids(item_id)
        while stack:
            row = stack.pop()
            yield row
            stack.extend(kids(row["id"]))
