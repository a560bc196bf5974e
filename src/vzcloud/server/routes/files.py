"""GET /metadata{path} (a folder's listing or a file's metadata) and GET /files{path}
(content, with HTTP Range)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from vzcloud.api import errors as E
from vzcloud.api.models import CloudFile, CloudFolder
from vzcloud.server.app import Ctx
from vzcloud.server.content import DEFAULT_MIME_TYPE
from vzcloud.server.content_response import blob_response
from vzcloud.server.routes import handler

# Sort keys over item rows; ties are broken by name. Folders have no size, extension or
# content type of their own, so they sort as 0 / "" there.
SORT_KEYS: dict[str, Callable[[sqlite3.Row], Any]] = {
    "name": lambda r: r["name"].casefold(),
    "versionCreated": lambda r: r["modified"],
    "size": lambda r: 0 if r["is_folder"] else r["size"],
    "extension": lambda r: "" if r["is_folder"] else extension_of(r["name"]),
    "contentType": lambda r: "" if r["is_folder"] else (r["mime_type"] or DEFAULT_MIME_TYPE),
    "creationDate": lambda r: r["created"],
    "favorite": lambda r: r["favorite"],
}


def extension_of(name: str) -> str:
    """Lower-cased text after the last dot (``""`` for none or a dot file)."""
    return name.rsplit(".", 1)[1].lower() if "." in name.strip(".") else ""


def sort_rows(rows: list[sqlite3.Row], sort: tuple[str, bool] | None) -> list[sqlite3.Row]:
    """Rows ordered by the ``sort`` parameter (``(field, descending)``; None = name
    ascending), ties broken by name ascending, folders before files."""
    field, descending = sort or ("name", False)
    key = SORT_KEYS[field]
    out = sorted(rows, key=lambda r: (r["name"].casefold(), r["name"]))
    out.sort(key=key, reverse=descending)  # stable: equal keys stay in name order
    out.sort(key=lambda r: not r["is_folder"])
    return out


@handler("metadata")
def metadata(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    """A file: ``{"file": {...}}``. A folder: ``{"folder": {...its own fields...,
    "file": [...], "folder": [...]}}`` with its children (trashed ones too when
    ``include_deleted``), ``filter``-ed, sorted (folders first, then files, each by
    ``sort``) and paged over that combined order. The root has no own fields and lists the
    virtual folders. 404 missing, 410 in the trash."""
    account = ctx.account
    store = ctx.store
    path: str = args["path"]
    row = store.resolve(account, path)
    if not row["is_folder"]:
        return {"file": store.to_model(account, row).to_json()}
    with store.tx() as db:
        rows = db.execute(
            "SELECT * FROM items WHERE parent_id=?"
            + ("" if args["include_deleted"] else " AND trashed IS NULL"),
            (row["id"],),
        ).fetchall()
    if args["filter"] is not None:
        want_folders = args["filter"] == "folder"
        rows = [r for r in rows if bool(r["is_folder"]) == want_folders]
    count: int = args["count"]
    start = (args["page"] - 1) * count
    page = sort_rows(rows, args["sort"])[start:start + count]
    own = {} if row["parent_id"] is None else store.to_model(account, row).to_json()
    models = [store.to_model(account, r, parent_path=path) for r in page]
    return {"folder": {
        **own,
        "file": [m.to_json() for m in models if isinstance(m, CloudFile)],
        "folder": [m.to_json() for m in models if isinstance(m, CloudFolder)],
    }}


@handler("download")
def download(ctx: Ctx, args: dict[str, Any]) -> Any:
    """The current content of a file, whole (200) or one byte range (206), as
    ``content_response.blob_response`` serves it. A folder is a 400."""
    account = ctx.account
    row = ctx.store.resolve(account, args["path"])
    if row["is_folder"]:
        raise E.BadRequestError(f"{args['path']} is a folder; only files have content")
    return blob_response(ctx, row, args["Range"])
