"""GET /favorites, PUT /favorites (mark) and DELETE /favorites (unmark)."""

from __future__ import annotations

from typing import Any

from vzcloud.server import tree
from vzcloud.server.app import Ctx
from vzcloud.server.routes import handler
from vzcloud.server.routes.search import listing_json, scope

# MIME types (beyond text/*) that count as documents for filetype=document.
DOCUMENT_TYPES = (
    "application/pdf", "application/msword", "application/rtf", "application/vnd.ms-",
    "application/vnd.openxmlformats-officedocument.", "application/vnd.oasis.opendocument.",
    "application/vnd.apple.", "application/epub+zip", "application/x-iwork",
)


def filetype_of(mime_type: str) -> str:
    """The ``filetype`` of a MIME type: image, video, music, document or other."""
    major = mime_type.partition("/")[0]
    if major == "image":
        return "image"
    if major == "video":
        return "video"
    if major == "audio":
        return "music"
    if major == "text" or mime_type.startswith(DOCUMENT_TYPES):
        return "document"
    return "other"


def _mark(ctx: Ctx, uris: list[str], create_version: bool, favorite: bool) -> None:
    """Set the favorite mark of every item of ``uris``, all or nothing (every uri is
    resolved before anything changes). 400: a malformed uri; 404: one names no live
    item of the caller's account."""
    store, account = ctx.store, ctx.account
    with store.tx():
        rows = [tree.resolve_uri(store, account, uri) for uri in uris]
        for row in {r["id"]: r for r in rows}.values():
            tree.update_item(store, account, row, create_version=create_version,
                             favorite=int(favorite))


@handler("favorite")
def favorite(ctx: Ctx, args: dict[str, Any]) -> None:
    """Mark the items of ``uri`` (a list) as favorites; ``createVersion`` bumps their
    version. Marking a favorite again changes nothing. 200."""
    _mark(ctx, args["uri"], args["createVersion"], True)


@handler("unfavorite")
def unfavorite(ctx: Ctx, args: dict[str, Any]) -> None:
    """Unmark the items of ``uri`` (repeatable query parameter); as ``favorite``."""
    _mark(ctx, args["uri"], args["createVersion"], False)


@handler("favorites")
def favorites(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    """``{"favorites": {"file": [...], "folder": [...]}}``: the live favorites of
    ``virtualfolder`` (default VZMOBILE, ``*`` = all), ordered by name, folders first.
    ``type`` keeps only files or folders; ``filetype`` keeps only files of that kind
    (image/*, video/*, audio/* = music, text and office/PDF types = document, other),
    so it leaves folders out. 404: an unknown virtual folder."""
    # Only the marked items and their ancestors are read (a mount asks for every
    # favorite after loading a whole account: a full snapshot cost it a second).
    with ctx.store.tx() as db:
        marked = [r[0] for r in db.execute(
            "SELECT id FROM items WHERE account_id=? AND favorite=1", (ctx.account.id,))]
    snap = tree.Snapshot.of_items(ctx.store, ctx.account, marked)
    rows = [r for r in scope(ctx, snap, args["virtualfolder"]) if r["favorite"]]
    if args["filetype"] is not None:
        rows = [r for r in rows if not r["is_folder"]
                and filetype_of(r["mime_type"] or "") == args["filetype"]]
    return {"favorites": listing_json(ctx, snap, rows, kind=args["type"])}
