"""GET /fullview: everything an account holds, or with ``X-Header-ETag`` what changed.

The etag is ``<database epoch>-<last change seq>`` (``store.etag``). Without one the
answer is every live file plus every live folder with no file anywhere below it. With one:
- unparseable -> 400; another epoch, a seq newer than ours, or a seq below the account's
  ``log_floor`` (the log was pruned past it) -> 205 (OutOfSyncError), resync without etag;
- seq == the last change -> 412 with a JSON error body (``not_modified``) and the etag;
- otherwise the delta of the changes after seq: ``deleted.path`` lists paths that went away
  (apply them first), ``file`` and ``folder`` the current state of changed items that are
  still live (changed folders are listed whether or not they hold files, so a new empty
  folder appears).
``virtualfolder`` limits both forms to one virtual folder (404 if it does not exist).

Change-log retention: each call first prunes the account's log to the newest
``config.change_log_retention`` rows, raising ``log_floor`` (so retention is enforced
whenever a client syncs; the log only grows by one small row per change in between).
Pruning costs what changed since the last call, not the log's size (``Store.prune_changes``
remembers the row count), so deltas asked for ten times a second stay cheap.

A whole view is streamed as it is made (``_streamed_body``), so a client's parsing overlaps
the server's work. Paths are computed in memory: a whole view from one read of the account's rows
(``tree.Snapshot``), so a 100k-item account costs one query, not one per item; a delta
from the changed rows and their ancestors only (``Snapshot.of_items``, reached through
the change log's (account_id, seq) index), so its cost follows the number of changes. Rows, changes and the etag are read
in one transaction, so the etag matches the listing exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from starlette.responses import JSONResponse, Response, StreamingResponse

from vzcloud.api.errors import BadRequestError, CloudError, OutOfSyncError
from vzcloud.server import tree
from vzcloud.server.app import Ctx, error_response
from vzcloud.server.routes import handler
from vzcloud.server.store import Account, Store
from vzcloud.server.tree import Snapshot

ETAG_HEADER = "X-Header-ETag"
STREAM_ITEMS = 1000  # items per piece of a streamed whole view


def _folders_with_files(snap: Snapshot) -> set[int]:
    """Ids of the folders with a live file somewhere below them."""
    out: set[int] = set()
    for row in snap.live_items():
        if row["is_folder"]:
            continue
        parent = row["parent_id"]
        while parent is not None and parent not in out:
            out.add(parent)
            parent = snap.rows[parent]["parent_id"]
    return out


def _in_scope(path: str, scope: str | None) -> bool:
    return scope is None or path == scope or path.startswith(scope + "/")


def _parse_etag(etag: str) -> tuple[str, int]:
    epoch, sep, seq = etag.strip().strip('"').rpartition("-")
    if not sep or not epoch or not seq.isdigit() or len(seq) > 19:
        raise BadRequestError(f"invalid {ETAG_HEADER} {etag!r}: expected EPOCH-SEQ as returned "
                              "by an earlier fullview")
    return epoch, int(seq)


def _sorted(snap: Snapshot, ids: list[int]) -> tuple[list[int], list[int]]:
    """``ids`` split into files and folders, each sorted by path."""
    files = sorted((i for i in ids if not snap.rows[i]["is_folder"]), key=snap.path)
    folders = sorted((i for i in ids if snap.rows[i]["is_folder"]), key=snap.path)
    return files, folders


def _item_json(store: Store, account: Account, snap: Snapshot, item_id: int,
               ) -> dict[str, Any]:
    row = snap.rows[item_id]
    return store.to_model(
        account, row, parent_path=snap.path(row["parent_id"]),
        count=snap.live_child_count(item_id) if row["is_folder"] else None,
    ).to_json()


def _dumps(value: Any) -> bytes:
    # As Starlette's JSONResponse renders.
    return json.dumps(value, ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode("utf-8")


def _streamed_body(store: Store, account: Account, snap: Snapshot, ids: list[int],
                   ) -> Iterator[bytes]:
    """The body of a whole view, made and sent a piece at a time: the client parses
    (and a mount stores) the first items while later ones are still being made, and
    the server never holds the whole document."""
    files, folders = _sorted(snap, ids)
    for key, part in (("file", files), ("folder", folders)):
        yield b'{"data":{"file":[' if key == "file" else b'],"folder":['
        for i in range(0, len(part), STREAM_ITEMS):
            chunk = _dumps([_item_json(store, account, snap, item_id)
                            for item_id in part[i:i + STREAM_ITEMS]])[1:-1]
            yield chunk if i == 0 else b"," + chunk
    yield b'],"deleted":{"path":[]}}}'


@handler("fullview")
def fullview(ctx: Ctx, args: dict[str, Any]) -> Response:
    """See the module docstring."""
    store = ctx.store
    account = ctx.account
    given: str | None = args["X-Header-ETag"]
    since = None
    if given is not None:
        epoch, since = _parse_etag(given)
        if epoch != store.epoch:
            raise OutOfSyncError("the etag is from another server or a reset one; "
                                 "resync without an etag")

    store.prune_changes(account.id, ctx.cloud.config.change_log_retention)
    with store.tx() as db:  # one transaction: the etag matches the snapshot exactly
        last = store.last_seq(account.id)
        if since is not None:
            if since > last or since < store.log_floor(account.id):
                raise OutOfSyncError("the etag is older than the change log keeps; "
                                     "resync without an etag")
            if since == last:
                response = error_response(CloudError(
                    "nothing changed since this etag", status=412, error="not_modified"))
                response.headers[ETAG_HEADER] = given or ""
                return response
            changed: dict[int, None] = {}  # ordered sets
            gone: dict[str, None] = {}
            for change in db.execute(
                    "SELECT item_id, deleted_path FROM changes WHERE account_id=? AND seq>?"
                    " ORDER BY seq", (account.id, since)):
                if change["deleted_path"] is not None:
                    gone[change["deleted_path"]] = None
                elif change["item_id"] is not None:
                    changed[change["item_id"]] = None
            # A delta reads only the changed items and their ancestors (its cost follows
            # the changes, not the account's size).
            snap = Snapshot.of_items(store, account, changed)
        else:
            snap = Snapshot(store, account)
    etag = f"{store.epoch}-{last}"

    top_id: int | None = None
    scope: str | None = None
    if args["virtualfolder"] is not None:
        top_id = tree.virtual_folder(store, account, args["virtualfolder"])["id"]
        scope = "/" + args["virtualfolder"]

    deleted: list[str] = []
    if since is None:
        virtual_folders = [
            r["id"] for r in snap.children.get(account.root_id, ())
            if r["trashed"] is None and (top_id is None or r["id"] == top_id)
        ]
        with_files = _folders_with_files(snap)
        candidates = [*virtual_folders, *(r["id"] for r in snap.live_items(top_id))]
        ids = [i for i in candidates if not (snap.rows[i]["is_folder"] and i in with_files)]
    else:
        deleted = [path for path in gone if _in_scope(path, scope)]
        ids = [
            i for i in changed
            if i in snap.rows and snap.rows[i]["parent_id"] is not None
            and snap.trashed_at(i) is None and (top_id is None or snap.top(i) == top_id)
        ]
    if since is None:
        return StreamingResponse(_streamed_body(store, account, snap, ids),
                                 media_type="application/json", headers={ETAG_HEADER: etag})
    files, folders = _sorted(snap, ids)
    body = {"data": {"file": [_item_json(store, account, snap, i) for i in files],
                     "folder": [_item_json(store, account, snap, i) for i in folders],
                     "deleted": {"path": deleted}}}
    return JSONResponse(body, headers={ETAG_HEADER: etag})
