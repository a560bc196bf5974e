"""Shares and their public links: POST/GET /shares, DELETE /shares/{uid},
GET /public/shares/{key} and GET /public/shares/{key}/{resource uid}.

A share names files and folders of one account by their item URIs; it gets a random
public invite key, and its public link ``{api}/public/shares/<key>`` shows the share
object to anyone holding it, without a token. The content of a shared *file* is at
``{public link}/<resource uid>`` (Range supported). Resources reference items by id: they
follow a renamed or moved item (``location`` is its current URI) and vanish when it is
purged (ON DELETE CASCADE); while an item (or a folder above it) is in the trash its
resource is hidden from the share object and its content is a 404.

Decided where the reference is silent:
- ``expiresIn`` 0 means never; otherwise the share expires ``expiresIn`` seconds after
  creation and both public endpoints answer 410 from that very instant. The owner still
  lists an expired share (``expirationDate`` tells) until they unshare it.
- ``owner`` is the account's user id and ``sharer`` its user name.
- A resource's ``type`` may be left out (taken from the URI's scheme); given, it must
  agree with the URI (400). ``name`` defaults to the item's name. A client's ``size`` is
  ignored: the answer carries the item's current size (0 for a folder).
- Playlists cannot be shared: a ``playlist`` resource is a 400 ("not supported"), since
  a resource is a file or folder of the account.
- GET /shares lists newest first. ``since``/``until`` bound the creation time
  (inclusive) and take W3C date-times (``1997``, ``1997-07``, ``1997-07-16``,
  ``1997-07-16T19:20+01:00``, seconds and fractions optional; no zone = UTC). ``count``
  in the answer is the number of shares on this page. ``links`` holds a ``next`` link
  (the same query with a ``cursor``) when more shares follow. The cursor is opaque and
  signed with a per-database secret, bound to the account: a forged, altered or another
  account's cursor is a 400.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from vzcloud.api import paths as P
from vzcloud.api.errors import BadRequestError, GoneError, NotFoundError
from vzcloud.api.models import Link, Share, ShareResource
from vzcloud.server.app import Ctx
from vzcloud.server.content_response import blob_response
from vzcloud.server.routes import handler
from vzcloud.server.store import Account, Store, iso, new_id

RESOURCE_TYPES = ("file", "folder", "playlist")


# The share object ---------------------------------------------------------------------------


def public_link(ctx: Ctx, key: str) -> str:
    return f"{ctx.api_url}/public/shares/{key}"


def _resources(store: Store, share_uid: str) -> list[sqlite3.Row]:
    """The resources of a share in order, hiding those whose item is not live: item rows
    with the resource's ``resource_uid``, ``resource_name`` and ``resource_type``."""
    with store.tx() as db:
        rows = db.execute(
            "SELECT items.*, share_resources.uid AS resource_uid,"
            " share_resources.name AS resource_name, share_resources.type AS resource_type"
            " FROM share_resources JOIN items ON items.id = share_resources.item_id"
            " WHERE share_uid=? ORDER BY position",
            (share_uid,),
        ).fetchall()
        return [row for row in rows if store.is_live(row["id"])]


def _share(ctx: Ctx, row: sqlite3.Row, owner: Account) -> Share:
    """The wire object of a share row owned by ``owner``."""
    store = ctx.store
    resources = []
    for item in _resources(store, row["uid"]):
        model = store.to_model(owner, item)
        is_file = not item["is_folder"]
        resources.append(ShareResource(
            uid=item["resource_uid"],
            name=item["resource_name"],
            type=item["resource_type"],
            location=model.uri or "",
            size=item["size"] if is_file else 0,
            content_token=item["content_token"] if is_file else None,
            checksum=item["checksum"] if is_file else None,
            last_modified_date=iso(item["modified"]),
        ))
    return Share(
        uid=row["uid"],
        name=row["name"],
        owner=owner.user_id,
        sharer=owner.username,
        total_resource_count=len(resources),
        expires_in=row["expires_in"],
        expiration_date=iso(row["expires"]),
        creation_date=iso(row["created"]),
        last_modified_date=iso(row["modified"]),
        public_invite_key=row["public_key"],
        links=[Link(rel="public", link=public_link(ctx, row["public_key"]))],
        resources=resources,
    )


def _shared_item(store: Store, account: Account, spec: dict[str, Any]) -> tuple[sqlite3.Row, str]:
    """The live item a requested resource names, and its type; 400 malformed, 404 missing
    (also another account's URI or an item in the trash)."""
    location = spec.get("location")
    if not isinstance(location, str) or not location:
        raise BadRequestError("every resource needs a 'location': the item's uri")
    kind = spec.get("type")
    if kind is not None and kind not in RESOURCE_TYPES:
        raise BadRequestError(
            f"resource type must be one of {', '.join(RESOURCE_TYPES)}; got {kind!r}"
        )
    if kind == "playlist":
        raise BadRequestError("sharing playlists is not supported by this server")
    if spec.get("name") is not None and not isinstance(spec["name"], str):
        raise BadRequestError("resource 'name' must be a string")
    if spec.get("size") is not None and (
        isinstance(spec["size"], bool) or not isinstance(spec["size"], int)
    ):
        raise BadRequestError("resource 'size' must be a whole number")
    user_id, path, is_folder = P.parse_uri(location)
    uri_kind = "folder" if is_folder else "file"
    if kind is not None and kind != uri_kind:
        raise BadRequestError(f"resource type {kind!r} does not match its uri {location!r}")
    if user_id != account.user_id:
        raise NotFoundError(f"no such {uri_kind}: {location}")
    try:
        item = store.resolve(account, path)
    except GoneError:
        raise NotFoundError(f"no such {uri_kind} (it is in the trash): {location}") from None
    if bool(item["is_folder"]) != is_folder or item["parent_id"] is None:
        raise NotFoundError(f"no such {uri_kind}: {location}")
    return item, uri_kind


# Cursors ------------------------------------------------------------------------------------


def _cursor_secret(store: Store) -> bytes:
    """A random per-database secret that signs share cursors (made on first use)."""
    with store.tx() as db:
        db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('cursor_secret', ?)",
                   (secrets.token_hex(32),))
        row = db.execute("SELECT value FROM meta WHERE key='cursor_secret'").fetchone()
    return bytes.fromhex(row[0])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_cursor(store: Store, account: Account, created: float, uid: str) -> str:
    """An opaque cursor: the page continues after the share (created, uid)."""
    payload = json.dumps([created, uid], separators=(",", ":")).encode()
    mac = hmac.new(_cursor_secret(store), account.user_id.encode() + b"\0" + payload,
                   hashlib.sha256).digest()[:16]
    return f"{_b64(payload)}.{_b64(mac)}"


def read_cursor(store: Store, account: Account, cursor: str) -> tuple[float, str]:
    """Inverse of ``make_cursor``; BadRequestError for anything it did not make."""
    invalid = BadRequestError("invalid cursor: pass the one from a 'next' link unchanged")
    try:
        payload_text, mac_text = cursor.split(".")
        payload, mac = _unb64(payload_text), _unb64(mac_text)
    except (ValueError, binascii.Error):
        raise invalid from None
    want = hmac.new(_cursor_secret(store), account.user_id.encode() + b"\0" + payload,
                    hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(mac, want):
        raise invalid
    created, uid = json.loads(payload)
    return float(created), str(uid)


# W3C date-times -----------------------------------------------------------------------------

_W3C = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<mo>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?P<f>\.\d+)?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def parse_w3c(name: str, text: str) -> float:
    """A W3C date-time (see the module docstring) -> seconds since the epoch."""
    # A '+' of an unencoded query arrives as a space.
    match = _W3C.match(text.strip().replace(" ", "+"))
    if match is None:
        raise BadRequestError(
            f"parameter {name!r} must be a W3C date-time such as 2015-12-21T10:45:54Z; "
            f"got {text!r}"
        )
    g = match.groupdict()
    tz = g["tz"] or "Z"
    try:
        moment = datetime.fromisoformat(
            f"{g['y']}-{g['mo'] or '01'}-{g['d'] or '01'}T{g['h'] or '00'}:{g['mi'] or '00'}"
            f":{g['s'] or '00'}{g['f'] or ''}{'+00:00' if tz == 'Z' else tz}"
        )
    except ValueError as exc:
        raise BadRequestError(f"parameter {name!r}: {exc}") from None
    return moment.astimezone(UTC).timestamp()


# Handlers ---------------------------------------------------------------------------------


@handler("share")
def share(ctx: Ctx, args: dict[str, Any]) -> Share:
    """201 with the new share; every resource is checked before anything is stored."""
    account = ctx.account
    specs: list[dict[str, Any]] = args["resources"]
    if not specs:
        raise BadRequestError("a share needs at least one resource")
    expires_in: int = args["expiresIn"]
    now = time.time()
    uid = new_id(16)
    with ctx.store.tx() as db:
        checked = [_shared_item(ctx.store, account, spec) for spec in specs]
        db.execute(
            "INSERT INTO shares (uid, account_id, name, expires_in, expires, public_key,"
            " created, modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (uid, account.id, args["name"], expires_in,
             now + expires_in if expires_in else None, secrets.token_urlsafe(24), now, now),
        )
        for position, (spec, (item, kind)) in enumerate(zip(specs, checked, strict=True)):
            db.execute(
                "INSERT INTO share_resources (uid, share_uid, item_id, name, type, position)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (new_id(16), uid, item["id"], spec.get("name") or item["name"], kind, position),
            )
        row = db.execute("SELECT * FROM shares WHERE uid=?", (uid,)).fetchone()
        return _share(ctx, row, account)


@handler("shares")
def shares(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    """One page of the account's shares, newest first (see the module docstring)."""
    account = ctx.account
    where: list[str] = ["account_id=?"]
    params: list[Any] = [account.id]
    since = parse_w3c("since", args["since"]) if args["since"] else None
    until = parse_w3c("until", args["until"]) if args["until"] else None
    if since is not None and until is not None and since > until:
        raise BadRequestError("'since' is after 'until'")
    if since is not None:
        where.append("created >= ?")
        params.append(since)
    if until is not None:
        where.append("created <= ?")
        params.append(until)
    if args["cursor"]:
        created, uid = read_cursor(ctx.store, account, args["cursor"])
        where.append("(created < ? OR (created = ? AND uid < ?))")
        params += [created, created, uid]
    count: int = args["count"]
    with ctx.store.tx() as db:
        rows = db.execute(
            f"SELECT * FROM shares WHERE {' AND '.join(where)}"
            " ORDER BY created DESC, uid DESC LIMIT ?",
            (*params, count + 1),
        ).fetchall()
        page = rows[:count]
        found = [_share(ctx, row, account).to_json() for row in page]
    links = []
    if len(rows) > count:
        last = page[-1]
        query = {k: args[k] for k in ("filter", "since", "until") if args[k]}
        query["count"] = count
        query["cursor"] = make_cursor(ctx.store, account, last["created"], last["uid"])
        links.append(Link(rel="next", link=f"{ctx.api_url}/shares?{urlencode(query)}").to_json())
    return {"shares": {"count": len(found), "links": links, "share": found}}


@handler("unshare")
def unshare(ctx: Ctx, args: dict[str, Any]) -> None:
    """Delete the share; its public link stops working at once."""
    with ctx.store.tx() as db:
        deleted = db.execute(
            "DELETE FROM shares WHERE uid=? AND account_id=?", (args["uid"], ctx.account.id)
        ).rowcount
    if not deleted:
        raise NotFoundError(f"no such share: {args['uid']}")


def _public_share(store: Store, key: str) -> tuple[sqlite3.Row, Account]:
    """The unexpired share with this public key and its owner; 404 unknown, 410 expired."""
    with store.tx() as db:
        row = db.execute("SELECT * FROM shares WHERE public_key=?", (key,)).fetchone()
    if row is None:
        raise NotFoundError("no such share link")
    if row["expires"] is not None and time.time() >= row["expires"]:
        raise GoneError(f"this share link expired at {iso(row['expires'])}")
    owner = store.account_by_id(row["account_id"])
    if owner is None:
        raise NotFoundError("no such share link")
    return row, owner


@handler("public_share")
def public_share(ctx: Ctx, args: dict[str, Any]) -> Share:
    with ctx.store.tx():
        row, owner = _public_share(ctx.store, args["key"])
        return _share(ctx, row, owner)


@handler("public_share_content")
def public_share_content(ctx: Ctx, args: dict[str, Any]) -> Response:
    """A shared file's content (Range supported) as an attachment named like the
    resource; a folder resource is a 400, a hidden or unknown resource a 404."""
    with ctx.store.tx():
        row, _ = _public_share(ctx.store, args["key"])
        for item in _resources(ctx.store, row["uid"]):
            if item["resource_uid"] == args["resource"]:
                break
        else:
            raise NotFoundError(f"this share has no resource {args['resource']}")
    if item["is_folder"]:
        raise BadRequestError("a shared folder has no content of its own; share its files")
    return blob_response(ctx, item, args["Range"], filename=item["resource_name"])
