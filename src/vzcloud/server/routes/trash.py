"""GET /trash (list one virtual folder's trash), DELETE /trash (empty it) and
POST /fops/restore (put items back at their original paths).

What is "in the trash" and how restore treats missing folders: see ``vzcloud.server.tree``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from vzcloud.api import paths as P
from vzcloud.server import tree
from vzcloud.server.app import Ctx
from vzcloud.server.routes import handler
from vzcloud.server.routes.search import listing_json


def _trashed_roots(snap: tree.Snapshot, top_id: int) -> list[sqlite3.Row]:
    """Items of the virtual folder ``top_id`` that were sent to the trash themselves."""
    return [r for r in snap.rows.values()
            if r["trashed"] is not None and snap.top(r["id"]) == top_id]


@handler("trash")
def trash(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    """``{"trashCan": {"file": [...], "folder": [...]}}``: what was sent to the trash in
    ``virtualfolder``, each with ``deleted: true`` and ``parentPath`` its original parent.

    An item trashed inside a folder that was trashed later is listed on its own (it
    was deleted on its own). ``deep=true`` also lists everything inside trashed folders.
    ``filter``, ``sort`` (folders first) and paging as in metadata. 404: no such
    virtual folder.
    """
    store, account = ctx.store, ctx.account
    top = tree.virtual_folder(store, account, args["virtualfolder"])
    snap = tree.Snapshot(store, account)
    rows = _trashed_roots(snap, top["id"])
    if args["deep"]:
        # A flagged descendant is a root of its own, listed once above with its subtree.
        rows += [r for root in rows for r in snap.subtree(root["id"], skip_trashed=True)]
    return {"trashCan": listing_json(
        ctx, snap, rows, sort=args["sort"], page=args["page"], count=args["count"],
        kind=args["filter"], deleted=True,
    )}


@handler("empty_trash")
def empty_trash(ctx: Ctx, args: dict[str, Any]) -> None:
    """Purge everything in ``virtualfolder``'s trash (see ``tree.purge``). 200, empty;
    404: no such virtual folder."""
    store, account = ctx.store, ctx.account
    with store.tx():
        top = tree.virtual_folder(store, account, args["virtualfolder"])
        snap = tree.Snapshot(store, account)
        for row in _trashed_roots(snap, top["id"]):
            # Purging an outer trashed folder takes the trashed items inside it along.
            parent = row["parent_id"]
            if snap.trashed_at(parent) is None:
                tree.purge(store, account, row)


@handler("restore")
def restore(ctx: Ctx, args: dict[str, Any]) -> None:
    """Restore each path of ``path`` (original paths, as the trash lists them), in
    order, all or nothing (see ``tree.restore``). 204. 400: an invalid path; 404: one
    is not in the trash; 409: a live item stands in the way. A path given twice is
    restored once."""
    store, account = ctx.store, ctx.account
    paths = list(dict.fromkeys(P.normalize(p) for p in args["path"]))
    with store.tx():
        for path in paths:
            tree.restore(store, account, path)
