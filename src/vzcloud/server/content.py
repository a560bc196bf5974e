"""File content of the embedded cloud: putting file versions, upload sessions' files, and
the clean-up of what abandoned uploads and crashes leave behind.

Shared by the upload handlers (``routes/uploads.py``) and anything else that writes file
content (copy, thumbnails...). Everything that changes items runs inside ``store.tx()``
and records the change with ``store.log_change``.

Blob lifetime: a blob file is adopted (renamed into ``blobs/``) and its version row is
inserted while holding ``store.lock``; ``CloudServer.collect_garbage`` checks references
and deletes under the same lock, so a blob being adopted is never deleted by a concurrent
garbage collection that saw it unreferenced a moment earlier. (An unchunked upload links
its blob into place before taking the lock, so that disk flushes overlap, and re-links
it under the lock if a collection deleted it meanwhile: ``BlobStore.place``.)

Abandoned uploads: ``remove_expired_uploads`` deletes expired sessions and their chunk
files. It runs at server start (``recover``) and lazily at every upload intent (a cheap
query on the small ``uploads`` table), not from a background thread: an idle server keeps
expired chunks until the next intent or restart, which costs disk but never correctness.
"""

from __future__ import annotations

import mimetypes
import shutil
import sqlite3
import time
from pathlib import Path

from starlette.responses import FileResponse

from vzcloud.api.errors import ConflictError, NotFoundError, QuotaExceededError
from vzcloud.server import tree
from vzcloud.server.blobs import BlobStore, BlobWriter
from vzcloud.server.config import ServerConfig
from vzcloud.server.store import Account, Store

DEFAULT_MIME_TYPE = "application/octet-stream"


class BlobFileResponse(FileResponse):
    """Starlette's FileResponse (Range, If-Range, HEAD) with 1 MiB reads: its 64 KiB reads
    cost a thread hop each and cap throughput well below the disk's. Built by
    ``content_response.blob_response``."""

    chunk_size = 1 << 20


def mime_type_for(name: str) -> str:
    """The MIME type a file name suggests (``application/octet-stream`` if none)."""
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or DEFAULT_MIME_TYPE


def check_can_put(
    store: Store, config: ServerConfig, account: Account, parent_id: int, name: str, size: int
) -> sqlite3.Row | None:
    """Check that ``name`` in folder ``parent_id`` may receive a ``size``-byte version.

    Returns the existing file of that name (None if the name is free). Raises:
    - ConflictError (409) when the name is taken by a folder;
    - QuotaExceededError (413, ``quota_exceeded``) when the account's usage, with the
      existing file's current size replaced by ``size``, would exceed its quota;
    - QuotaExceededError (413, ``folder_full``) when the name is new and the folder holds
      ``config.folder_file_limit`` files already. 413 rather than 409 because it is a size
      limit (the folder is too large), not a conflict with one item; retrying under the
      same name cannot succeed, another folder can.
    """
    with store.tx():
        existing = store.child(parent_id, name)
        if existing is not None and existing["is_folder"]:
            raise ConflictError(f"a folder named {name!r} exists already here")
        replaced = existing["size"] if existing is not None else 0
        used = store.quota_used(account.id)
        if used - replaced + size > account.quota:
            raise QuotaExceededError(
                f"over quota: {used} of {account.quota} bytes used, "
                f"this file needs {size - replaced} more"
            )
        if existing is None:
            tree.check_folder_room(store, config, parent_id)
        return existing


def put_file_version(
    store: Store, config: ServerConfig, account: Account, parent_id: int, name: str,
    checksum: str, size: int, now: float | None = None,
) -> sqlite3.Row:
    """Make ``checksum`` (a blob already in the blob store) the content of ``name``.

    Creates the file, or, when the name exists as a file, makes a new version of it:
    version + 1, new checksum, size, MIME type and versionCreated, a ``versions`` row, and
    at most ``config.versions_kept`` version rows kept (older blobs are released). Other
    system attributes describe the old content and are dropped. The parent must be a live
    folder of the account (404 otherwise, e.g. trashed since the intent); limits are those
    of ``check_can_put``. Records the change; returns the item row.
    """
    now = time.time() if now is None else now
    mime = mime_type_for(name)
    with store.tx() as db:
        parent = store.item(parent_id)
        if (parent is None or parent["account_id"] != account.id or not parent["is_folder"]
                or not store.is_live(parent_id)):
            raise NotFoundError("the target folder no longer exists")
        existing = check_can_put(store, config, account, parent_id, name, size)
        if existing is None:
            item_id = store.insert_item(
                account.id, parent_id, name, is_folder=False, size=size, checksum=checksum,
                mime_type=mime, now=now,
            )
        else:
            item_id = existing["id"]
            version = existing["version"] + 1
            db.execute(
                "UPDATE items SET size=?, checksum=?, version=?, mime_type=?, attrs=NULL,"
                " modified=? WHERE id=?",
                (size, checksum, version, mime, now, item_id),
            )
            db.execute(
                "INSERT INTO versions (item_id, version, checksum, size, created)"
                " VALUES (?, ?, ?, ?, ?)",
                (item_id, version, checksum, size, now),
            )
            store.release_versions([item_id], keep_latest=max(1, config.versions_kept))
        store.log_change(account.id, item_id=item_id)
        row = store.item(item_id)
        assert row is not None
        return row


def adopt_and_put(
    store: Store, blobs: BlobStore, config: ServerConfig, account: Account, parent_id: int,
    name: str, writer: BlobWriter,
) -> sqlite3.Row:
    """Move a finished, verified blob writer into the blob store and commit it as the new
    content of ``name`` (see ``put_file_version``); the writer's file is removed on error.

    The fsync happens before taking the store lock; adoption and the version row happen
    under it (see the module docstring on blob lifetime).
    """
    try:
        writer.close()
        with store.tx():
            checksum = blobs.adopt(writer)
            return put_file_version(store, config, account, parent_id, name, checksum,
                                    writer.size)
    finally:
        writer.abort()  # no-op once adopted (the file was renamed away)


# Upload sessions' chunk files -----------------------------------------------------------


def uploads_dir(config: ServerConfig) -> Path:
    return config.data_dir / "uploads"


def upload_dir(config: ServerConfig, upload_id: str) -> Path:
    """Where the chunks of a chunked upload session live: ``uploads/<id>/<offset>``."""
    return uploads_dir(config) / upload_id


def remove_expired_uploads(store: Store, config: ServerConfig, now: float | None = None) -> int:
    """Delete expired upload sessions and their chunk files; returns how many."""
    now = time.time() if now is None else now
    with store.tx() as db:
        expired = [r[0] for r in db.execute("SELECT id FROM uploads WHERE expires < ?", (now,))]
        db.execute("DELETE FROM uploads WHERE expires < ?", (now,))
    for upload_id in expired:
        shutil.rmtree(upload_dir(config, upload_id), ignore_errors=True)
    return len(expired)


def recover(store: Store, blobs: BlobStore, config: ServerConfig) -> None:
    """Clean up after a crash or a long stop; call at server start, before serving.

    Removes temporary blob files, blobs that no version references (adopted but never
    committed), expired upload sessions, chunk directories without a session and
    half-received chunks (``*.part``) of live sessions; their complete chunks stay.
    """
    blobs.clear_tmp()
    with store.lock:
        for checksum in blobs.all_checksums():
            if not store.referenced(checksum):
                blobs.delete(checksum)
    remove_expired_uploads(store, config)
    root = uploads_dir(config)
    root.mkdir(parents=True, exist_ok=True)
    with store.tx() as db:
        live = {r[0] for r in db.execute("SELECT id FROM uploads")}
    for entry in root.iterdir():
        if entry.name in live:
            for part in entry.glob("*.part"):  # a chunk being received when we stopped
                part.unlink(missing_ok=True)
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
