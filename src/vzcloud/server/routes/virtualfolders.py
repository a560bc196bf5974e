"""POST /virtualfolder/{name}, PUT /virtualfolder (rename), DELETE /virtualfolder.

Virtual folders are the children of the account root (``/VZMOBILE``...). The default
ones are ordinary: they may be renamed and deleted like any other.
"""

from __future__ import annotations

from typing import Any

from vzcloud.api.errors import ConflictError
from vzcloud.server import tree
from vzcloud.server.app import Ctx
from vzcloud.server.routes import handler


@handler("create_virtualfolder")
def create_virtualfolder(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    """Create the virtual folder ``name``: 201 ``{"folder": {...}}`` (the same shape as
    createfolder). 409: it exists."""
    store, account = ctx.store, ctx.account
    name: str = args["name"]
    with store.tx():
        if store.child(account.root_id, name) is not None:
            raise ConflictError(f"the virtual folder {name!r} exists already")
        item_id = store.insert_item(account.id, account.root_id, name, is_folder=True)
        store.log_change(account.id, item_id=item_id)
        return tree.item_json(store, account, item_id)


@handler("rename_virtualfolder")
def rename_virtualfolder(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    """Rename the virtual folder ``src`` to ``target``: 200 ``{"folder": {...}}``. Its
    trash follows it. Fullview deltas show the old path deleted and the whole subtree
    added under the new one. Renaming to the same name changes nothing.
    404: no ``src``; 409: ``target`` exists."""
    store, account = ctx.store, ctx.account
    with store.tx():
        folder = tree.virtual_folder(store, account, args["src"])
        if args["target"] != args["src"]:
            if store.child(account.root_id, args["target"]) is not None:
                raise ConflictError(f"the virtual folder {args['target']!r} exists already")
            tree.move(store, account, folder, account.root_id, args["target"])
        return tree.item_json(store, account, folder["id"])


@handler("delete_virtualfolder")
def delete_virtualfolder(ctx: Ctx, args: dict[str, Any]) -> None:
    """Delete the virtual folder ``name``. 200, empty; 404: no such virtual folder.

    A virtual folder holding anything, its trash included, is 409 without
    ``force=true``. With force, everything in it and in its trash is purged for good,
    not trashed: the trash belongs to the virtual folder, so there would be nowhere to
    restore it from.
    """
    store, account = ctx.store, ctx.account
    with store.tx() as db:
        folder = tree.virtual_folder(store, account, args["name"])
        if not args["force"]:
            live, trashed = db.execute(
                "SELECT COUNT(*) FILTER (WHERE trashed IS NULL), COUNT(*) FILTER"
                " (WHERE trashed IS NOT NULL) FROM items WHERE parent_id=?", (folder["id"],),
            ).fetchone()
            if live or trashed:
                raise ConflictError(
                    f"the virtual folder {args['name']!r} is not empty ({live} items, "
                    f"{trashed} more in its trash); pass force=true to delete it with "
                    "everything in it"
                )
        tree.purge(store, account, folder)
