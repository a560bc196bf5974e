"""POST /fops/createfolder, /fops/copy, /fops/move, /fops/rename and DELETE /fops/delete.

``target`` of copy, move and rename is the full new path of the item, never a folder to
put it *into*: ``move {src: /V/a.txt, target: /V/docs}`` makes the file ``/V/docs`` (or
meets the folder ``docs`` as a conflict), exactly as the reference's ``target_path``
("path where the file is to be moved to") reads. The conflict rules live in
``tree.transfer``. A trashed path answers 404 everywhere here.
"""

from __future__ import annotations

from typing import Any

from vzcloud.api import paths as P
from vzcloud.api.errors import BadRequestError, ConflictError, QuotaExceededError
from vzcloud.server import tree
from vzcloud.server.app import Ctx
from vzcloud.server.routes import handler


@handler("create_folder")
def create_folder(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    """Create ``name`` in the folder ``path``; 201 ``{"folder": {...}}``.

    400: ``path`` is ``/`` (virtual folders are made with POST /virtualfolder/{name}) or
    a file. 404: ``path`` is missing or in the trash. When ``name`` exists as a folder,
    ``override`` (overwrite or modify) answers that folder as it is (201; an existing
    folder is never emptied by this call), no override is 409. When ``name`` is a file:
    409 whatever the override.
    """
    store, account = ctx.store, ctx.account
    parent_path: str = args["path"]
    name: str = args["name"]
    if not P.split_path(parent_path):
        raise BadRequestError(
            "folders cannot be created in '/'; create a virtual folder with "
            "POST /virtualfolder/{name}"
        )
    with store.tx():
        parent = tree.resolve_folder(store, account, parent_path)
        existing = store.child(parent["id"], name)
        if existing is not None:
            where = P.join([*P.split_path(parent_path), name])
            if not existing["is_folder"]:
                raise ConflictError(f"a file exists at {where}")
            if args["override"] is None:
                raise ConflictError(
                    f"a folder exists at {where}; pass override=modify to use it as it is"
                )
            return tree.item_json(store, account, existing["id"])
        item_id = store.insert_item(account.id, parent["id"], name, is_folder=True)
        store.log_change(account.id, item_id=item_id)
        return tree.item_json(store, account, item_id)


def _transfer(ctx: Ctx, args: dict[str, Any], *, copy: bool, rename: bool = False) -> Any:
    """Shared body of copy, move and rename (see ``tree.transfer`` for conflicts).

    400: ``src`` is ``/`` or a virtual folder; ``target`` is directly in ``/``; ``target``
    is the source folder itself or below it; rename to another folder; target's parent
    is a file. 404: ``src`` or the target's parent folder missing or trashed. 413 (copy):
    the copy would exceed the quota, or a folder file limit.
    """
    store, account, config = ctx.store, ctx.account, ctx.cloud.config
    what = "copied" if copy else "renamed" if rename else "moved"
    target_parent, target_name = P.parent_and_name(args["target"])
    if target_parent == "/":
        raise BadRequestError(
            f"{args['target']} would be a virtual folder; items cannot be {what} into '/' "
            "(use /virtualfolder to create or rename virtual folders)"
        )
    how = tree.Conflicts(args["safe"], args["override"], args["conflictsolve"])
    with store.tx():
        src = tree.resolve_entry(store, account, args["src"], what)
        parent = tree.resolve_folder(store, account, target_parent)
        if rename and parent["id"] != src["parent_id"]:
            raise BadRequestError(
                f"rename keeps an item in its folder: {args['target']} is not in the folder "
                f"of {args['src']}; use move"
            )
        if src["is_folder"] and tree.is_ancestor(store, src["id"], parent["id"]):
            raise BadRequestError(f"cannot {'copy' if copy else 'move'} a folder into itself: "
                                  f"{args['target']} is below {args['src']}")
        if copy:
            needed = tree.live_bytes(store, src)
            used = store.quota_used(account.id)
            if used + needed > account.quota:
                raise QuotaExceededError(
                    f"over quota: {used} of {account.quota} bytes used, the copy needs "
                    f"{needed} more"
                )
        item_id = tree.transfer(store, config, account, src, parent, target_name, how,
                                copy=copy)
        return tree.item_json(store, account, item_id)


@handler("copy")
def copy(ctx: Ctx, args: dict[str, Any]) -> Any:
    """Copy ``src`` (and, for a folder, its live contents) to the path ``target``."""
    return _transfer(ctx, args, copy=True)


@handler("move")
def move(ctx: Ctx, args: dict[str, Any]) -> Any:
    """Move ``src`` to the path ``target`` (one row changes; the subtree follows)."""
    return _transfer(ctx, args, copy=False)


@handler("rename")
def rename(ctx: Ctx, args: dict[str, Any]) -> Any:
    """A move whose ``target`` is in the same folder as ``src`` (400 otherwise)."""
    return _transfer(ctx, args, copy=False, rename=True)


@handler("delete")
def delete(ctx: Ctx, args: dict[str, Any]) -> None:
    """Send ``path`` to the trash, or with ``purge=true`` remove it and everything below
    it for good (versions, playlist entries and share resources included). 200, empty.

    404: missing or already in the trash (the trash is emptied with DELETE /trash).
    400: ``/`` or a virtual folder (DELETE /virtualfolder).
    """
    store, account = ctx.store, ctx.account
    with store.tx():
        row = tree.resolve_entry(store, account, args["path"], "deleted")
        if args["purge"]:
            tree.purge(store, account, row)
        else:
            tree.trash(store, account, row)
