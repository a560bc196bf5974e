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

Paths are computed in memory from one read of the account's rows (``tree.Snapshot``), so
a 100k-item account costs one query, not one per item. Rows, changes and the etag are read
in one transaction, so the etag matches the listing exactly.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from vzcloud.api.errors import BadRequestError, CloudError, OutOfSyncError
from vzcloud.server import tree
from vzcloud.server.app import Ctx, error_response
from vzcloud.server.routes import handler
from vzcloud.server.store import Account, Store
from vzcloud.server.tree import Snapshot

ETAG_HEADER = "X-Header-ETag"


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


def _live_child_count(snap: Snapshot, folder_id: int) -> int:
    # Children of a live folder are live unless trashed themselves.
    return sum(1 for c in snap.children.get(folder_id, ()) if c["trashed"] is None)


def _in_scope(path: str, scope: str | None) -> bool:
    return scope is None or path == scope or path.startswith(scope + "/")


def _parse_etag(etag: str) -> tuple[str, int]:
    epoch, sep, seq = etag.strip().strip('"').rpartition("-")
    if not sep or not epoch or not seq.isdigit() or len(seq) > 19:
        raise BadRequestError(f"invalid {ETAG_HEADER} {etag!r}: expected EPOCH-SEQ as returned "
                              "by an earlier fullview")
    return epoch, int(seq)


def _models(store: Store, account: Account, snap: Snapshot, ids: list[int],
            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Wire JSON of items by id, split into files and folders, each sorted by path."""
    files: list[tuple[str, dict[str, Any]]] = []
    folders: list[tuple[str, dict[str, Any]]] = []
    for item_id in ids:
        row = snap.rows[item_id]
        model = store.to_model(
            account, row, parent_path=snap.path(row["parent_id"]),
            count=_live_child_count(snap, item_id) if row["is_folder"] else None,
        )
        (folders if row["is_folder"] else files).append((snap.path(item_id), model.to_json()))
    files.sort(key=lambda pm: pm[0])
    folders.sort(key=lambda pm: pm[0])
    return [m for _, m in files], [m for _, m in folders]


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
            changes = db.execute(
                "SELECT item_id, deleted_path FROM changes WHERE account_id=? AND seq>?"
                " ORDER BY seq", (account.id, since),
            ).fetchall()
        snap = Snapshot(store, account)
    etag = f"{store.epoch}-{last}"

    top_id: int | None = None
    scope: str | None = None
    if args["virtualfolder"] is not None:
        top_id = tree.virtual_folder(store, account, args["virtualfolder"])["id"]
        scope = "/" + args["virtualfolder"]
    virtual_folders = [
        r["id"] for r in snap.children.get(account.root_id, ())
        if r["trashed"] is None and (top_id is None or r["id"] == top_id)
    ]

    deleted: list[str] = []
    if since is None:
        with_files = _folders_with_files(snap)
        candidates = [*virtual_folders, *(r["id"] for r in snap.live_items(top_id))]
        ids = [i for i in candidates if not (snap.rows[i]["is_folder"] and i in with_files)]
    else:
        changed: dict[int, None] = {}  # ordered sets
        gone: dict[str, None] = {}
        for change in changes:
            path = change["deleted_path"]
            if path is not None:
                if _in_scope(path, scope):
                    gone[path] = None
            elif change["item_id"] is not None:
                changed[change["item_id"]] = None
        deleted = list(gone)
        ids = [
            i for i in changed
            if i in snap.rows and snap.rows[i]["parent_id"] is not None
            and snap.trashed_at(i) is None and (top_id is None or snap.top(i) == top_id)
        ]
    files, folders = _models(store, account, snap, ids)
    body = {"data": {"file": files, "folder": folders, "deleted": {"path": deleted}}}
    return JSONResponse(body, headers={ETAG_HEADER: etag})
