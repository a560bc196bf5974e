"""Playlists: /playlists, /playlists/{uid}, /playlists/{uid}/items[/{itemuid}].

A playlist is a named, ordered list of files of one account whose MIME types match its
type (``PLAYLIST_TYPES``). Elements reference items by id, so they follow a file that is
renamed or moved, and vanish with it when it is purged (ON DELETE CASCADE). An element
whose file (or a folder above it) is in the trash is hidden from every answer (listing,
``paths``, content) and comes back if the file is restored.

Decided where the reference is silent:
- ``uri`` is ``dv-playlist://<user id>:<uid>``.
- Every path given must be a live file of the account (404 otherwise, also for one in
  the trash), not a folder (400), whose MIME type matches the playlist's type (400). The
  whole request is checked before anything changes. A file may appear more than once;
  each occurrence is its own element with its own ``itemuid``.
- PUT /playlists/{uid} changes name and type but never the contents: a type that some
  element does not match is a 400 naming it (use PUT .../items to change both at once).
- PUT .../items replaces name, type and elements; an element whose file stays keeps its
  ``itemuid`` (in order of occurrence), so clients holding item uids are not invalidated.
- POST .../items answers 200 ``{"paths": [{"path", "itemuid"}]}``, one per added path.
- Playlists list in creation order by default; element listings in playlist order.
  Every change to the elements or the definition updates ``lastModifiedDate``.
- Removing an element whose file is in the trash is allowed (it exists, merely hidden).
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

from starlette.responses import Response

from vzcloud.api import paths as P
from vzcloud.api.errors import BadRequestError, GoneError, NotFoundError
from vzcloud.api.models import CloudFile, Playlist, PlaylistAdd, PlaylistItem
from vzcloud.server.app import Ctx
from vzcloud.server.content import DEFAULT_MIME_TYPE
from vzcloud.server.content_response import blob_response
from vzcloud.server.routes import handler
from vzcloud.server.routes.files import extension_of
from vzcloud.server.store import Account, Store, iso, new_id

MIME_TYPE_REGEX = {
    "image": "image/.*",
    "music": "audio/.*",
    "video": "video/.*",
    "image-video": "(image|video)/.*",
}
MAX_NAME = 255

# ORDER BY clauses of the playlist listing; creation order breaks ties.
_PLAYLIST_ORDER = {
    "name": "name COLLATE NOCASE",
    "creationDate": "created",
    "lastModifiedDate": "modified",
    "type": "type",
}
# Sort keys of element listings (over item rows).
_ELEMENT_KEYS: dict[str, Callable[[sqlite3.Row], Any]] = {
    "name": lambda item: item["name"].casefold(),
    "versionCreated": lambda item: item["modified"],
    "size": lambda item: item["size"],
    "extension": lambda item: extension_of(item["name"]),
}


def check_playlist_name(name: str) -> str:
    """The name, or BadRequestError: not blank, at most MAX_NAME characters, no control
    characters."""
    if not name.strip():
        raise BadRequestError("a playlist name cannot be blank")
    if len(name) > MAX_NAME:
        raise BadRequestError(f"a playlist name is at most {MAX_NAME} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise BadRequestError("a playlist name cannot contain control characters")
    return name


def matches_type(mime_type: str | None, playlist_type: str) -> bool:
    return re.fullmatch(MIME_TYPE_REGEX[playlist_type], mime_type or DEFAULT_MIME_TYPE) is not None


def _own_playlist(store: Store, account: Account, uid: str) -> sqlite3.Row:
    with store.tx() as db:
        row = db.execute(
            "SELECT * FROM playlists WHERE uid=? AND account_id=?", (uid, account.id)
        ).fetchone()
    if row is None:
        raise NotFoundError(f"no such playlist: {uid}")
    return row


def _playlist_file(store: Store, account: Account, path: str, playlist_type: str) -> sqlite3.Row:
    """The live file at ``path`` if it may join a playlist of ``playlist_type``."""
    try:
        row = store.resolve(account, path)
    except GoneError:
        raise NotFoundError(f"no such file (it is in the trash): {path}") from None
    if row["is_folder"]:
        raise BadRequestError(f"{path} is a folder; a playlist holds files")
    if not matches_type(row["mime_type"], playlist_type):
        raise BadRequestError(
            f"{path} is {row['mime_type'] or DEFAULT_MIME_TYPE}, which a {playlist_type} "
            f"playlist cannot hold (it takes {MIME_TYPE_REGEX[playlist_type]})"
        )
    return row


def _parse_paths(
    store: Store, account: Account, paths: list[str], playlist_type: str
) -> list[sqlite3.Row]:
    # Paths arrive as plain strings (strlist): validate each one here (400 if malformed).
    return [_playlist_file(store, account, P.normalize(p), playlist_type) for p in paths]


def _elements(store: Store, playlist_uid: str, hidden: bool = False) -> list[sqlite3.Row]:
    """The elements in playlist order: item rows with the element's ``itemuid`` as an
    extra column. Those whose file is not live are left out unless ``hidden``."""
    with store.tx() as db:
        rows = db.execute(
            "SELECT items.*, playlist_items.itemuid"
            " FROM playlist_items JOIN items ON items.id = playlist_items.item_id"
            " WHERE playlist_uid=? ORDER BY position",
            (playlist_uid,),
        ).fetchall()
        return [row for row in rows if hidden or store.is_live(row["id"])]


def _definition(store: Store, account: Account, row: sqlite3.Row) -> Playlist:
    return Playlist(
        uid=row["uid"],
        name=row["name"],
        type=row["type"],
        mime_type_regex=MIME_TYPE_REGEX[row["type"]],
        creation_date=iso(row["created"]),
        last_modified_date=iso(row["modified"]),
        uri=f"dv-playlist://{account.user_id}:{row['uid']}",
        paths=[store.path_of(item["id"]) for item in _elements(store, row["uid"])],
    )


def _append(store: Store, playlist_uid: str, item_ids: list[int],
            reuse: dict[int, deque[str]] | None = None) -> list[str]:
    """Add elements for ``item_ids`` at the end; returns their itemuids. ``reuse`` gives
    itemuids to take (per item id, in order) before making new ones."""
    with store.tx() as db:
        last = db.execute(
            "SELECT COALESCE(MAX(position), 0) FROM playlist_items WHERE playlist_uid=?",
            (playlist_uid,),
        ).fetchone()[0]
        uids = []
        for position, item_id in enumerate(item_ids, start=last + 1):
            kept = reuse.get(item_id) if reuse else None
            itemuid = kept.popleft() if kept else new_id(16)
            db.execute(
                "INSERT INTO playlist_items (itemuid, playlist_uid, item_id, position)"
                " VALUES (?, ?, ?, ?)",
                (itemuid, playlist_uid, item_id, position),
            )
            uids.append(itemuid)
        return uids


def _touch(store: Store, uid: str, **changes: str) -> None:
    sets = "".join(f", {column}=?" for column in changes)
    with store.tx() as db:
        db.execute(f"UPDATE playlists SET modified=?{sets} WHERE uid=?",
                   (time.time(), *changes.values(), uid))


# Handlers --------------------------------------------------------------------------------


@handler("playlists")
def playlists(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    """``{"playlistDefinitions": {"playlistDefinition": [...]}}``: one page, ``type``-filtered."""
    account = ctx.account
    field, descending = args["sort"] or ("creationDate", False)
    order = f"{_PLAYLIST_ORDER[field]} {'DESC' if descending else 'ASC'}, created, rowid"
    where, params = "account_id=?", [account.id]
    if args["type"] is not None:
        where, params = where + " AND type=?", [*params, args["type"]]
    with ctx.store.tx() as db:
        rows = db.execute(
            f"SELECT * FROM playlists WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
            (*params, args["count"], (args["page"] - 1) * args["count"]),
        ).fetchall()
        found = [_definition(ctx.store, account, row).to_json() for row in rows]
    return {"playlistDefinitions": {"playlistDefinition": found}}


@handler("create_playlist")
def create_playlist(ctx: Ctx, args: dict[str, Any]) -> Playlist:
    """201 with the new playlist definition."""
    name = check_playlist_name(args["name"])
    now = time.time()
    uid = new_id(16)
    with ctx.store.tx() as db:
        files = _parse_paths(ctx.store, ctx.account, args["paths"], args["type"])
        db.execute(
            "INSERT INTO playlists (uid, account_id, name, type, created, modified)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (uid, ctx.account.id, name, args["type"], now, now),
        )
        _append(ctx.store, uid, [f["id"] for f in files])
        return _definition(ctx.store, ctx.account, _own_playlist(ctx.store, ctx.account, uid))


@handler("playlist")
def playlist(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    with ctx.store.tx():
        row = _own_playlist(ctx.store, ctx.account, args["uid"])
        return {"playlistDefinition": _definition(ctx.store, ctx.account, row).to_json()}


@handler("update_playlist")
def update_playlist(ctx: Ctx, args: dict[str, Any]) -> Playlist:
    """Rename and/or retype; 400 if an element does not fit the new type."""
    name = check_playlist_name(args["name"])
    with ctx.store.tx():
        row = _own_playlist(ctx.store, ctx.account, args["uid"])
        # Hidden (trashed) elements too: they must still fit when restored.
        for item in _elements(ctx.store, row["uid"], hidden=True):
            if not matches_type(item["mime_type"], args["type"]):
                raise BadRequestError(
                    f"{ctx.store.path_of(item['id'])} ({item['mime_type']}) cannot stay in a "
                    f"{args['type']} playlist; change the items with PUT .../items"
                )
        _touch(ctx.store, row["uid"], name=name, type=args["type"])
        return _definition(ctx.store, ctx.account, _own_playlist(ctx.store, ctx.account, row["uid"]))


@handler("delete_playlist")
def delete_playlist(ctx: Ctx, args: dict[str, Any]) -> None:
    with ctx.store.tx() as db:
        row = _own_playlist(ctx.store, ctx.account, args["uid"])
        db.execute("DELETE FROM playlists WHERE uid=?", (row["uid"],))


@handler("playlist_items")
def playlist_items(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    """``{"playlist": {"playlistElement": [...]}}``: one page of the visible elements."""
    with ctx.store.tx():
        row = _own_playlist(ctx.store, ctx.account, args["uid"])
        elements = _elements(ctx.store, row["uid"])
        if args["sort"] is not None:
            field, descending = args["sort"]
            elements.sort(key=_ELEMENT_KEYS[field], reverse=descending)
        start = (args["page"] - 1) * args["count"]
        page = elements[start:start + args["count"]]
        out = []
        for item in page:
            f = ctx.store.to_model(ctx.account, item)
            assert isinstance(f, CloudFile)
            out.append(PlaylistItem(
                itemuid=item["itemuid"], filename=f.name, path=f.path,
                mime_type=f.mime_type, size=f.size, version_created=f.version_created,
                content_token=f.content_token, checksum=f.checksum, extension=f.extension,
                tags=f.tags, uri=f.uri,
            ).to_json())
    return {"playlist": {"playlistElement": out}}


@handler("add_playlist_items")
def add_playlist_items(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    """Append files; ``{"paths": [{"path", "itemuid"}]}`` in the order given."""
    with ctx.store.tx():
        row = _own_playlist(ctx.store, ctx.account, args["uid"])
        files = _parse_paths(ctx.store, ctx.account, args["add"], row["type"])
        uids = _append(ctx.store, row["uid"], [f["id"] for f in files])
        _touch(ctx.store, row["uid"])
        added = [
            PlaylistAdd(path=ctx.store.path_of(f["id"]), itemuid=uid).to_json()
            for f, uid in zip(files, uids, strict=True)
        ]
    return {"paths": added}


@handler("update_playlist_definition")
def update_playlist_definition(ctx: Ctx, args: dict[str, Any]) -> Playlist:
    """Replace name, type and elements; staying files keep their itemuids."""
    name = check_playlist_name(args["name"])
    with ctx.store.tx() as db:
        row = _own_playlist(ctx.store, ctx.account, args["uid"])
        files = _parse_paths(ctx.store, ctx.account, args["paths"], args["type"])
        reuse: dict[int, deque[str]] = defaultdict(deque)
        for old in db.execute(
            "SELECT itemuid, item_id FROM playlist_items WHERE playlist_uid=? ORDER BY position",
            (row["uid"],),
        ):
            reuse[old["item_id"]].append(old["itemuid"])
        db.execute("DELETE FROM playlist_items WHERE playlist_uid=?", (row["uid"],))
        _append(ctx.store, row["uid"], [f["id"] for f in files], reuse)
        _touch(ctx.store, row["uid"], name=name, type=args["type"])
        return _definition(ctx.store, ctx.account, _own_playlist(ctx.store, ctx.account, row["uid"]))


def _own_element(ctx: Ctx, uid: str, itemuid: str) -> sqlite3.Row:
    """The item row of element ``itemuid`` of the caller's playlist ``uid`` (404 if none)."""
    row = _own_playlist(ctx.store, ctx.account, uid)
    with ctx.store.tx() as db:
        item = db.execute(
            "SELECT items.* FROM playlist_items JOIN items ON items.id = playlist_items.item_id"
            " WHERE playlist_uid=? AND itemuid=?",
            (row["uid"], itemuid),
        ).fetchone()
    if item is None:
        raise NotFoundError(f"playlist {uid} has no item {itemuid}")
    return item


@handler("remove_playlist_item")
def remove_playlist_item(ctx: Ctx, args: dict[str, Any]) -> None:
    with ctx.store.tx() as db:
        _own_element(ctx, args["uid"], args["itemuid"])
        db.execute("DELETE FROM playlist_items WHERE itemuid=?", (args["itemuid"],))
        _touch(ctx.store, args["uid"])


@handler("playlist_item_content")
def playlist_item_content(ctx: Ctx, args: dict[str, Any]) -> Response:
    """The element's file content (Range supported); 404 while the file is in the trash."""
    with ctx.store.tx():
        item = _own_element(ctx, args["uid"], args["itemuid"])
        if not ctx.store.is_live(item["id"]):
            raise NotFoundError(f"the file of playlist item {args['itemuid']} is in the trash")
    return blob_response(ctx, item, args["Range"])
