"""PUT /tags, DELETE /tags and GET /tags{path}.

Tags are stored normalised (``normalize_tags``) as one
comma-separated text, NULL for none, and are also sent on every file and folder object.
"""

from __future__ import annotations

from typing import Any

from vzcloud.api.errors import BadRequestError
from vzcloud.server import tree
from vzcloud.server.app import Ctx
from vzcloud.server.routes import handler


def normalize_tags(text: str) -> str | None:
    """``" beach, Sun ,,beach,sun"`` -> ``"beach,Sun"``: split on commas, strip, drop
    empty ones and later duplicates (case-insensitively, as search matches tags), keep
    the order; None when nothing is left."""
    seen: set[str] = set()
    tags: list[str] = []
    for tag in (t.strip() for t in text.split(",")):
        if tag and tag.casefold() not in seen:
            seen.add(tag.casefold())
            tags.append(tag)
    return ",".join(tags) or None


@handler("tag")
def tag(ctx: Ctx, args: dict[str, Any]) -> None:
    """Replace the tags of the item ``uri`` with ``Tags`` (normalised; a text with no tag
    in it clears them). ``createVersion`` bumps the item's version. 200; 400: a
    malformed uri; 404: not an item of the caller's account (see ``tree.resolve_uri``)."""
    store, account = ctx.store, ctx.account
    with store.tx():
        row = tree.resolve_uri(store, account, args["uri"])
        tree.update_item(store, account, row, create_version=args["createVersion"],
                         tags=normalize_tags(args["Tags"]))


@handler("untag")
def untag(ctx: Ctx, args: dict[str, Any]) -> None:
    """Remove every tag of the item ``uri``; errors as ``tag``."""
    store, account = ctx.store, ctx.account
    with store.tx():
        row = tree.resolve_uri(store, account, args["uri"])
        tree.update_item(store, account, row, create_version=args["createVersion"], tags=None)


@handler("tags")
def tags(ctx: Ctx, args: dict[str, Any]) -> dict[str, str]:
    """``{"Tags": "a,b"}`` of the item at ``path`` (``""`` when it has none). 400: ``/``;
    404: missing or in the trash."""
    row = tree.resolve(ctx.store, ctx.account, args["path"])
    if row["parent_id"] is None:
        raise BadRequestError("the root has no tags")
    return {"Tags": row["tags"] or ""}
