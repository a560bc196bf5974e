"""The address book: GET/POST /contacts, PUT/DELETE /contacts/{id}.

A contact is the flat JSON of ``vzcloud.api.models.Contact``. The server owns ``id``,
``version``, ``created`` and ``modified``: a client's values for them are ignored on
create (on update, ``version`` is the optimistic-lock token). Keys the model does not
declare are not stored (the address book holds the documented fields only), so what a
client reads back is exactly what the reference describes.

Decided where the reference is silent:
- PUT replaces the whole contact with the body (fields left out are cleared), as the
  SDK sends the whole object; ``version`` must equal the stored one (missing -> 400,
  stale -> 409) and the result carries ``version + 1``. A body ``id`` that differs from
  the URL's is a 400 (a client bug that would otherwise overwrite the wrong contact).
- ``addrbook.updated`` is when the address book last changed, deletions included
  (kept in ``meta`` as ``addrbook_updated:<account id>``; before any change it is the
  account's creation time).
- Default order is creation order; ``sort`` orders by first/last name (case-insensitive,
  contacts without that name last in either direction) or by created/modified time, with
  creation order breaking ties so paging is stable.
- ``query`` is a simple match, not Lucene: the text is split into words (``AND`` words,
  quotes and ``*`` wildcards are dropped, ``field:value`` counts as ``value``) and a contact matches when every word is a
  case-insensitive substring of one of its names, organisation, job title, e-mail
  addresses or phone numbers; a word made of digits and phone punctuation also matches
  phone numbers on digits alone, so ``5551234`` and ``555-1234`` find ``+1 (555) 123-4``.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from dataclasses import fields
from typing import Any

from vzcloud.api.errors import BadRequestError, ConflictError, NotFoundError
from vzcloud.api.models import Contact
from vzcloud.server.app import Ctx
from vzcloud.server.routes import handler
from vzcloud.server.store import Account, Store, iso, new_id

TEXT_FIELDS = (
    "firstname", "lastname", "middlename", "nameprefix", "namesuffix", "birthday",
    "anniversary", "orgname", "jobtitle", "note",
)
LIST_FIELDS = ("tel", "email", "address", "im")
SERVER_FIELDS = ("id", "version", "created", "modified")
# What a query word is matched against.
SEARCHED_TEXT = ("firstname", "lastname", "middlename", "nameprefix", "namesuffix",
                 "orgname", "jobtitle")
MAX_ENTRIES = 100  # per list field: more phone numbers than that is not an address book

assert set(TEXT_FIELDS + LIST_FIELDS + SERVER_FIELDS + ("favorite",)) == {
    f.name for f in fields(Contact) if f.name != "extra"
}, "contact fields out of step with vzcloud.api.models.Contact"


def _contact_data(body: dict[str, Any]) -> dict[str, Any]:
    """The stored fields of a contact body, type-checked; BadRequestError says what is wrong.

    Names and other text fields must be strings (or null), ``favorite`` a boolean, and
    ``tel``/``email``/``address``/``im`` lists of objects whose values are strings,
    numbers, booleans or null.
    """
    data: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise BadRequestError(f"contact field {name!r} must be a string")
        data[name] = value
    favorite = body.get("favorite")
    if favorite is not None:
        if not isinstance(favorite, bool):
            raise BadRequestError("contact field 'favorite' must be true or false")
        data["favorite"] = favorite
    for name in LIST_FIELDS:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise BadRequestError(f"contact field {name!r} must be a list of objects")
        if len(value) > MAX_ENTRIES:
            raise BadRequestError(f"contact field {name!r} has more than {MAX_ENTRIES} entries")
        for entry in value:
            for key, sub in entry.items():
                if isinstance(sub, dict | list):
                    raise BadRequestError(
                        f"contact field {name!r}: {key!r} must be a string, number or boolean"
                    )
        if value:
            data[name] = value
    return data


def _to_contact(row: sqlite3.Row) -> Contact:
    return Contact(
        id=row["id"], version=row["version"], created=iso(row["created"]),
        modified=iso(row["modified"]), **json.loads(row["data"]),
    )


def _own_contact(store: Store, account: Account, contact_id: str) -> sqlite3.Row:
    with store.tx() as db:
        row = db.execute(
            "SELECT * FROM contacts WHERE id=? AND account_id=?", (contact_id, account.id)
        ).fetchone()
    if row is None:
        raise NotFoundError(f"no such contact: {contact_id}")
    return row


def _touch_addrbook(store: Store, account: Account, now: float) -> None:
    with store.tx() as db:
        db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            (f"addrbook_updated:{account.id}", repr(now)),
        )


def _addrbook_updated(store: Store, account: Account) -> float:
    with store.tx() as db:
        row = db.execute(
            "SELECT value FROM meta WHERE key=?", (f"addrbook_updated:{account.id}",)
        ).fetchone()
        if row is not None:
            return float(row[0])
        return float(
            db.execute("SELECT created FROM accounts WHERE id=?", (account.id,)).fetchone()[0]
        )


# Query and sort --------------------------------------------------------------------------

_DROPPED_QUERY_CHARS = re.compile(r"[\"'*]")
_NON_DIGITS = re.compile(r"\D")
_PHONE_LIKE = re.compile(r"^[\d+\-().]*\d[\d+\-().]*$")


def query_words(query: str | None) -> list[str]:
    """The lower-cased words of a contacts query (see the module docstring)."""
    if not query:
        return []
    words = _DROPPED_QUERY_CHARS.sub(" ", query).split()
    # ``field:value`` (Lucene style, as old clients send) matches on its value anywhere.
    values = [w.split(":", 1)[1] if ":" in w else w for w in words if w != "AND"]
    return [v.casefold() for v in values if v]


def matches(data: dict[str, Any], words: list[str]) -> bool:
    """Whether a contact's stored fields match every query word."""
    if not words:
        return True
    texts = [str(data[f]).casefold() for f in SEARCHED_TEXT if data.get(f)]
    texts += [str(e.get("address", "")).casefold() for e in data.get("email", [])]
    phones = [str(e.get("number", "")) for e in data.get("tel", [])]
    texts += [p.casefold() for p in phones]
    phone_digits = [_NON_DIGITS.sub("", p) for p in phones]
    for word in words:
        if any(word in t for t in texts):
            continue
        if _PHONE_LIKE.match(word):
            digits = _NON_DIGITS.sub("", word)
            if any(digits in p for p in phone_digits):
                continue
        return False
    return True


def _sorted(rows: list[tuple[sqlite3.Row, dict[str, Any]]],
            sort: tuple[str, bool] | None) -> list[tuple[sqlite3.Row, dict[str, Any]]]:
    """Rows (already in creation order) ordered by ``sort`` (see the module docstring)."""
    if sort is None:
        return rows
    field, descending = sort
    if field in ("created", "modified"):
        return sorted(rows, key=lambda r: r[0][field], reverse=descending)
    named = [r for r in rows if r[1].get(field)]
    unnamed = [r for r in rows if not r[1].get(field)]
    named.sort(key=lambda r: str(r[1][field]).casefold(), reverse=descending)
    return named + unnamed


# Handlers --------------------------------------------------------------------------------


@handler("contacts")
def contacts(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    """One page of the address book, filtered by ``query``; ``itemcount`` counts every match."""
    account = ctx.account
    with ctx.store.tx() as db:
        rows = db.execute(
            "SELECT * FROM contacts WHERE account_id=? ORDER BY created, rowid", (account.id,)
        ).fetchall()
        updated = _addrbook_updated(ctx.store, account)
    words = query_words(args["query"])
    found = [(row, data) for row in rows if matches(data := json.loads(row["data"]), words)]
    found = _sorted(found, args["sort"])
    start = (args["page"] - 1) * args["count"]
    page = found[start:start + args["count"]]
    return {
        "contactsResponse": {
            "account": {
                "userid": account.user_id,
                "addrbook": {
                    "updated": iso(updated),
                    "contacts": {
                        "itemcount": len(found),
                        "contact": [_to_contact(row).to_json() for row, _ in page],
                    },
                },
            }
        }
    }


@handler("create_contact")
def create_contact(ctx: Ctx, args: dict[str, Any]) -> Contact:
    """201 with the new contact: a fresh ``id`` and ``version`` 1."""
    data = _contact_data(args["contact"])
    now = time.time()
    contact_id = new_id(16)
    with ctx.store.tx() as db:
        db.execute(
            "INSERT INTO contacts (id, account_id, version, data, created, modified)"
            " VALUES (?, ?, 1, ?, ?, ?)",
            (contact_id, ctx.account.id, json.dumps(data), now, now),
        )
        _touch_addrbook(ctx.store, ctx.account, now)
        row = _own_contact(ctx.store, ctx.account, contact_id)
    return _to_contact(row)


def _version(body: dict[str, Any]) -> int:
    value = body.get("version")
    if value is None:
        raise BadRequestError("updating a contact needs its current 'version'")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequestError("contact field 'version' must be a whole number")
    return value


@handler("update_contact")
def update_contact(ctx: Ctx, args: dict[str, Any]) -> Contact:
    """Replace the contact; 409 unless ``version`` is the stored one. Returns version + 1."""
    body = args["contact"]
    contact_id = args["id"]
    if body.get("id") not in (None, contact_id):
        raise BadRequestError(
            f"the body's id {body.get('id')!r} differs from the URL's {contact_id!r}"
        )
    version = _version(body)
    data = _contact_data(body)
    now = time.time()
    with ctx.store.tx() as db:
        row = _own_contact(ctx.store, ctx.account, contact_id)
        if row["version"] != version:
            raise ConflictError(
                f"contact {contact_id} is at version {row['version']}, not {version}: "
                "read it again and reapply the change"
            )
        db.execute(
            "UPDATE contacts SET version=?, data=?, modified=? WHERE id=?",
            (version + 1, json.dumps(data), now, contact_id),
        )
        _touch_addrbook(ctx.store, ctx.account, now)
        row = _own_contact(ctx.store, ctx.account, contact_id)
    return _to_contact(row)


@handler("delete_contact")
def delete_contact(ctx: Ctx, args: dict[str, Any]) -> None:
    with ctx.store.tx() as db:
        _own_contact(ctx.store, ctx.account, args["id"])
        db.execute("DELETE FROM contacts WHERE id=?", (args["id"],))
        _touch_addrbook(ctx.store, ctx.account, time.time())
