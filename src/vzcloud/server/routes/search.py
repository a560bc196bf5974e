"""GET /search, and the listing shape shared by search, trash and favorites.

Search runs over a snapshot of the account's live items (one query, matched in Python;
fine for accounts of up to some 100,000 items). The query language is
``vzcloud.server.search_query``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from vzcloud.api.models import CloudFolder
from vzcloud.server import tree
from vzcloud.server.app import Ctx
from vzcloud.server.content import DEFAULT_MIME_TYPE
from vzcloud.server.routes import handler
from vzcloud.server.routes.files import extension_of, sort_rows
from vzcloud.server.search_query import Record, matches, parse

ALL_VIRTUAL_FOLDERS = "*"


def listing_json(
    ctx: Ctx, snap: tree.Snapshot, rows: Iterable[sqlite3.Row], *,
    sort: tuple[str, bool] | None = None, page: int = 1, count: int | None = None,
    kind: str | None = None, deleted: bool = False,
) -> dict[str, Any]:
    """``{"file": [...], "folder": [...]}`` of ``rows``: only ``kind`` (file|folder) when
    given, ordered as metadata orders (folders first, each by ``sort``), then page
    ``page`` of ``count`` (None = all) over that combined order. ``deleted`` marks every
    item deleted (the trash lists the contents of trashed folders, unflagged themselves).
    """
    if kind is not None:
        rows = [r for r in rows if bool(r["is_folder"]) == (kind == "folder")]
    ordered = sort_rows(list(rows), sort)
    if count is not None:
        ordered = ordered[(page - 1) * count:page * count]
    out: dict[str, list[Any]] = {"file": [], "folder": []}
    for row in ordered:
        model = ctx.store.to_model(ctx.account, row, parent_path=snap.path(row["parent_id"]),
                                   count=snap.live_child_count(row["id"]))
        model.deleted = model.deleted or deleted
        out["folder" if isinstance(model, CloudFolder) else "file"].append(model.to_json())
    return out


def scope(ctx: Ctx, snap: tree.Snapshot, virtualfolder: str) -> Iterable[sqlite3.Row]:
    """The live items of ``virtualfolder`` (``*`` = every one); 404 for an unknown one."""
    if virtualfolder == ALL_VIRTUAL_FOLDERS:
        return snap.live_items()
    top = tree.virtual_folder(ctx.store, ctx.account, virtualfolder)
    return snap.live_items(top["id"])


def record(row: sqlite3.Row) -> Record:
    """What the query matcher sees of an item row."""
    mime = "" if row["is_folder"] else (row["mime_type"] or DEFAULT_MIME_TYPE)
    attrs = json.loads(row["attrs"]) if row["attrs"] else {}
    if mime:
        attrs["mimeType"] = mime
    return Record(
        name=row["name"], is_folder=bool(row["is_folder"]), size=row["size"],
        mime_type=mime, extension="" if row["is_folder"] else extension_of(row["name"]),
        tags=tuple(t for t in (row["tags"] or "").split(",") if t),
        favorite=bool(row["favorite"]), attrs=attrs,
    )


@handler("search")
def search(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    """``{"searchResults": {"file": [...], "folder": [...]}}``: the live files and folders
    of ``virtualfolder`` (default VZMOBILE, ``*`` = all; virtual folders themselves are
    never results) matching ``query``, sorted and paged as metadata. 400: a malformed
    query, naming where; 404: an unknown virtual folder."""
    query = parse(args["query"])
    snap = tree.Snapshot(ctx.store, ctx.account)
    found = [r for r in scope(ctx, snap, args["virtualfolder"]) if matches(query, record(r))]
    return {"searchResults": listing_json(
        ctx, snap, found, sort=args["sort"], page=args["page"], count=args["count"],
    )}
